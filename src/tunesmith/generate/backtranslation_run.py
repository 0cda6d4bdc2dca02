"""``run_backtranslation``: Humpback into a run folder, through the run driver (resumable).

The glue behind ``tunesmith generate backtranslate UNLABELLED --seeds SEEDS --out RUN``: reads the
documents and seed pairs (bad input fails before a folder is made), opens or resumes the run
folder (only with the same resolved config and data), builds the cached, budgeted clients on the
run's ledger, and runs :class:`~tunesmith.generate.backtranslation.Backtranslation`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.driver import RunDriver, fingerprint
from tunesmith.errors import ConfigError, DataError
from tunesmith.generate.backtranslation import Backtranslation, Trainer
from tunesmith.generate.pipeline import check_params
from tunesmith.generate.segments import Document, read_documents
from tunesmith.jobs import llm_concurrency
from tunesmith.llm.base import Backend
from tunesmith.llm.factory import LLMConfig
from tunesmith.records import Record
from tunesmith.runs import RunDir


def training_available() -> bool:
    """Whether ``tunesmith train sft`` (``tunesmith.train.sft``) is part of this install."""
    import importlib.util

    try:
        return importlib.util.find_spec("tunesmith.train.sft") is not None
    except ImportError:
        return False


def sft_trainer(
    folder: str | os.PathLike[str], *, model: str | None = None, max_steps: int = 0,
    threads: int | None = None,
) -> Trainer:  # fmt: skip
    """M_i for iteration i + 1, trained by ``tunesmith train sft`` on seed + A_k into
    ``folder/m<i>`` (a rerun resumes or reuses that training run) and served by the
    ``transformers`` backend. ``model`` is the base model (default: the embedded SmolLM2)."""

    def train(mix: list[Record], i: int) -> LLMConfig:
        if not training_available():
            raise ConfigError("training M1 needs 'tunesmith train sft', which this install lacks; "
                              "train it yourself and pass --curator-model")  # fmt: skip
        from tunesmith.train.sft import SFTConfig, train_sft  # type: ignore[import-not-found]

        cfg = SFTConfig(model=model, max_steps=max_steps)
        summary = train_sft(mix, Path(folder) / f"m{i}", cfg, threads=threads,
                            data_source=f"seed + curated pairs of iteration {i}")  # fmt: skip
        return LLMConfig(backend="transformers", model=str(summary["model_dir"]),
                         options={"threads": threads} if threads else {})  # fmt: skip

    return train


def run_backtranslation(
    unlabelled: str | os.PathLike[str],
    *,
    seeds: str | os.PathLike[str],
    out: str | Path,
    config: LLMConfig,
    params: Mapping[str, Any] | None = None,
    text_field: str | None = None,
    backward: LLMConfig | None = None,
    curators: Sequence[LLMConfig] = (),
    trainer: Trainer | None = None,
    backend: Backend | None = None,
    force_new: bool = False,
    retry_failed: bool = False,
) -> RunDir:
    """Instruction backtranslation of ``unlabelled`` into run folder ``out``.

    Args:
        unlabelled: documents: a JSONL/JSON/Parquet/datasets file, a text file, or a folder.
        seeds: seed (instruction, output) pairs, any dataset tunesmith reads.
        out: the run folder; rerun the same call to resume.
        config: the forward seed model M0 (and the backward model unless ``backward``).
        params: :class:`Backtranslation` options (``iterations``, ``min_score`` ...).
        text_field: the column holding each document's text (default: text, content, output ...).
        backward: a separate backward model M_yx (e.g. one trained by ``train sft --reverse``).
        curators: M1, M2 ... for iterations 2, 3 ... (``--curator-model``).
        trainer: trains M_i on seed + A_k when ``curators`` is short (see the generator).
        backend: an already-built backend for M0 (tests, notebooks).
        force_new, retry_failed: the driver's resume flags.
    """
    params = dict(params or {})
    check_params("backtranslation", params)
    gen = Backtranslation(**params)
    documents, seed_rows = _read_inputs(gen, unlabelled, seeds, text_field)
    run_config = {"method": "backtranslation", "data": str(unlabelled), "seeds": str(seeds),
                  "text_field": text_field, "params": params,
                  **_models_config(config, backward, curators, trainer)}  # fmt: skip
    driver = RunDriver.open(out, method="backtranslation", config=run_config,
                            inputs=fingerprint([*(d.text for d in documents), *seed_rows]),
                            prompts=gen.prompt_hashes(), force_new=force_new,
                            retry_failed=retry_failed)  # fmt: skip
    with driver:
        summary = _run(gen, driver, documents, seed_rows, config, backend, backward,
                       curators=curators, trainer=trainer)  # fmt: skip
        driver.finish("done", **summary)
    return driver.run


def _models_config(
    config: LLMConfig,
    backward: LLMConfig | None,
    curators: Sequence[LLMConfig],
    trainer: Trainer | None,
) -> dict[str, Any]:
    """The models of the run as the manifest's config records them (M0, M_yx, M1 ...)."""
    return {
        "llm": config.to_manifest(),
        "backward": backward.to_manifest() if backward else None,
        "curators": [c.to_manifest()["model"] for c in curators],
        "trains_curators": trainer is not None,
    }


def _read_inputs(
    gen: Backtranslation,
    unlabelled: str | os.PathLike[str],
    seeds: str | os.PathLike[str],
    text_field: str | None,
) -> tuple[list[Document], list[Record]]:
    """The documents and seed pairs; too few seeds for the few-shot prompt is a DataError."""
    from tunesmith.io import read_records

    documents = read_documents(unlabelled, text_field=text_field)
    seed_rows = read_records(seeds)
    if gen.predictor.mode == "few-shot" and len(seed_rows) < gen.predictor.num_examples:
        raise DataError(seeds, None, f"{len(seed_rows)} seed pairs, the prompt shows "
                        f"{gen.predictor.num_examples}")  # fmt: skip
    return documents, seed_rows


def _run(
    gen: Backtranslation,
    driver: RunDriver,
    documents: list[Document],
    seed_rows: list[Record],
    config: LLMConfig,
    backend: Backend | None,
    backward: LLMConfig | None,
    *,
    curators: Sequence[LLMConfig],
    trainer: Trainer | None,
) -> dict[str, Any]:
    """Run ``gen`` on the driver's cached, budgeted clients (closed afterwards); its summary."""
    llm = driver.make_llm(config, backend)
    backward_llm = driver.make_llm(backward) if backward else None
    try:
        return gen.run(documents, seed_rows, llm, driver, backward_llm=backward_llm,
                       curators=curators, trainer=trainer,
                       concurrency=llm_concurrency(config))  # fmt: skip
    finally:
        llm.close()
        if backward_llm is not None:
            backward_llm.close()
