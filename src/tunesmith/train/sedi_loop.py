"""Run SeDi-Instruct's generate-and-train loop into one run folder (``tunesmith train sedi-loop``).

The folder holds the generation files (kept.jsonl, rejected.jsonl, ledger.json, events.jsonl,
seed_scores.json, batches.json) and the training files (train_log.jsonl, step_rows.jsonl,
seed_history.jsonl, checkpoints/, model/). See :mod:`tunesmith.train.feedback` for the method.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.llm.base import Backend
from tunesmith.llm.factory import LLMConfig
from tunesmith.records import Record
from tunesmith.train.batching import quadrant_dims
from tunesmith.train.data import resolve_template
from tunesmith.train.feedback import (
    FeedbackCallback,
    FeedbackConfig,
    FeedbackStream,
    SeedFeedback,
    diverse_order,
    encoder_for,
)
from tunesmith.train.folder import TrainFolder
from tunesmith.train.sft import SFTConfig, build_trainer, load_model, run_training


def run_sedi_feedback(
    out: str | os.PathLike[str],
    *,
    llm_config: LLMConfig,
    sft: SFTConfig,
    feedback: FeedbackConfig,
    seeds: str | os.PathLike[str] | None = None,
    gen_params: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
    embedder: Callable[[list[str]], Any] | None = None,
    threads: int | None = None,
    progress: bool = True,
    force_new: bool = False,
) -> dict[str, Any]:
    """Generate with SeDi-Instruct while training on what it keeps, steering the seeds by the
    gradient norm of the training batches; rerun the same call to resume.

    Args:
        out: the run folder.
        llm_config: the teacher LLM (generation); ``backend`` overrides its backend (tests).
        sft: the training settings; ``batch_size`` must be a power of two (it is the number of
            PCA-quadrant clusters); ``max_steps`` defaults to ``num_instructions // batch_size``.
        feedback: the loop's settings (:class:`FeedbackConfig`).
        seeds: seed tasks (None/"default": the packaged ones).
        gen_params: Sedi options (max_tokens, prompts_per_batch, num_tasks ...).
        embedder: texts -> vectors for the diverse batches (default: the packaged MiniLM).
        force_new: set a run already in ``out`` aside and start over.

    Returns:
        The run summary: steps, final loss, kept rows, calls, seed replacements, model folder.
    """
    import torch  # first: a missing ``hf`` extra fails before the run folder is made

    sft, params = _settings(sft, feedback, gen_params)
    folder, tasks = _open_folder(out, seeds, llm_config, sft, feedback, params, force_new)
    if folder.is_done:
        return dict(folder.manifest.get("summary") or {})
    torch.set_num_threads(int(threads or os.environ.get("TUNESMITH_THREADS", "1")))
    return _train(folder, tasks, llm_config, sft, feedback, params,
                  backend=backend, embedder=embedder, progress=progress)  # fmt: skip


def _train(
    folder: TrainFolder, tasks: list[Any], llm_config: LLMConfig, sft: SFTConfig,
    feedback: FeedbackConfig, params: Mapping[str, Any], *, backend: Backend | None,
    embedder: Callable[[list[str]], Any] | None, progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """Train on the generator's stream with the seed feedback on; the run summary."""
    model, tok = load_model(sft)
    llm = folder.driver.make_llm(llm_config, backend=backend)
    # the driver records "stopped (budget)" or "failed" (+ error) if anything below raises
    with folder.driver:
        try:
            gen, fb, stream = _build_stream(
                tasks, llm, folder, tok, sft, feedback, params, embedder
            )
            trainer = build_trainer(model, tok, stream, sft, folder, progress=progress)
            trainer.add_callback(FeedbackCallback(fb, trainer.step_info))
            summary = run_training(trainer, folder, model, tok, examples=[])
        finally:
            folder.driver.save_ledger()
            llm.close()
        totals = folder.driver.ledger.totals()
        extra = {"rows": len(fb.rows), "kept": len(gen.state.kept),
                 "seed_replacements": len(fb.journal), "calls": totals.get("calls", 0),
                 "cache_hits": totals.get("cache_hits", 0)}  # fmt: skip
        folder.write_artifact("seed_scores.json", gen.table.to_rows())
        folder.finish("done", **extra)
    return {**summary, **extra}


def _settings(
    sft: SFTConfig, feedback: FeedbackConfig, gen_params: Mapping[str, Any] | None
) -> tuple[SFTConfig, dict[str, Any]]:
    """The checked training settings (steps default to kept rows // batch size; sequential
    order, since the stream's order is the batch order) and the generator's set parameters."""
    from tunesmith.generate.pipeline import check_params

    quadrant_dims(sft.batch_size)  # a power of two, or a one-line ConfigError
    params = {k: v for k, v in dict(gen_params or {}).items() if v is not None}
    check_params("sedi", params)
    if sft.max_steps <= 0:
        sft = dataclasses.replace(
            sft, max_steps=max(1, feedback.num_instructions // sft.batch_size)
        )
    sft = dataclasses.replace(sft, order="sequential")
    sft.check()
    return sft, params


def _open_folder(
    out: str | os.PathLike[str], seeds: str | os.PathLike[str] | None, llm_config: LLMConfig,
    sft: SFTConfig, feedback: FeedbackConfig, params: Mapping[str, Any], force_new: bool,
) -> tuple[TrainFolder, list[Any]]:  # fmt: skip
    """Open (or resume) the run folder; its config is the seeds, generator, loop, training and
    LLM settings, and the seed tasks are its input fingerprint."""
    from tunesmith.driver import fingerprint
    from tunesmith.generate.seeds import load_seeds, resolve_seeds_path

    seeds_path = resolve_seeds_path(seeds)
    tasks = load_seeds(seeds_path)
    config = {
        "seeds": str(seeds_path),
        "generate": {k: str(v) if isinstance(v, Path) else v for k, v in params.items()},
        "feedback": dataclasses.asdict(feedback),
        "sft": sft.to_dict(),
        "llm": llm_config.to_manifest(),  # the driver compares only backend and model
    }
    folder = TrainFolder.open(
        out, method="sedi-feedback", config=config, inputs=fingerprint(tasks), force_new=force_new
    )
    return folder, tasks


def _build_stream(
    tasks: list[Any],
    llm: Any,
    folder: TrainFolder,
    tok: Any,
    sft: SFTConfig,
    feedback: FeedbackConfig,
    params: Mapping[str, Any],
    embedder: Callable[[list[str]], Any] | None,
) -> tuple[Any, SeedFeedback, FeedbackStream]:
    """The SeDi generator, its feedback journal, and the training stream over its chunks."""
    from tunesmith.generate.sedi import Sedi

    gen = Sedi(train_batch_size=sft.batch_size, embedder=embedder, **params)
    rows: dict[str, Record] = {}
    fb = SeedFeedback(gen, folder, feedback, rows)
    per_chunk = feedback.rows_per_chunk or feedback.every * sft.batch_size
    if per_chunk < sft.batch_size:
        raise ConfigError(f"rows_per_chunk ({per_chunk}) must be at least the batch size")

    def generate_chunk(chunk: int) -> list[Record]:
        before = len(gen.state.kept) if chunk else 0
        more = min(per_chunk, feedback.num_instructions - before)
        if more <= 0:
            return []
        if chunk == 0:
            gen.num_instructions = more
            gen.run(tasks, llm, folder.driver)
        else:
            gen.extend(more, llm, folder.driver)
        return list(gen.state.kept[before:])

    stream = FeedbackStream(
        generate_chunk,
        encoder_for(tok, resolve_template(sft.template, tok), sft.max_length),
        diverse_order(sft.batch_size, sft.seed, embedder),
        sft.batch_size,
        fb,
    )
    return gen, fb, stream
