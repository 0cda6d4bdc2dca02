"""Run a per-record stage over a dataset into a run folder, resumably and within budget.

Both jobs go through the run driver (:mod:`tunesmith.driver`): it guards resume, writes kept,
rejected and failed rows after every batch, keeps the ledger and records how the run ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.driver import RunDriver, fingerprint
from tunesmith.llm.base import Backend
from tunesmith.llm.factory import LLMConfig
from tunesmith.progress import live_progress
from tunesmith.records import Record
from tunesmith.runs import RunDir
from tunesmith.stages import Stage, StageResult, run_stage_batches


def run_record_job(
    stage: Stage,
    records: Sequence[Record],
    *,
    out: str | Path,
    config: LLMConfig | None,
    batch_size: int = 16,
    method: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
    force_new: bool = False,
    retry_failed: bool = False,
) -> RunDir:
    """Run ``stage`` over ``records`` into run folder ``out``.

    Rows already kept or rejected in ``out`` are skipped (resume), and so are rows that failed
    for good unless ``retry_failed``; a folder made with other settings or data is refused
    unless ``force_new``. An LLM batch holds at least ``concurrency`` rows, so that many
    requests stay in flight; ``batch_size`` only sets how often rows are checkpointed. On
    BudgetExceeded the finished batches stay written, the manifest says ``stopped (budget)``,
    and the error propagates so the CLI exits non-zero.
    """
    manifest_config = {"stage": stage.name, "params": stage_params(stage), **(extra_config or {})}
    if config is not None:
        manifest_config["llm"] = config.to_manifest()
    driver = RunDriver.open(
        out,
        method=method or stage.name,
        config=manifest_config,
        inputs=fingerprint(records),
        prompts=stage_prompts(stage),
        force_new=force_new,
        retry_failed=retry_failed,
    )
    with driver:
        run_job_batches(driver, stage, records, config=config, batch_size=batch_size,
                        backend=backend)  # fmt: skip
        driver.finish("done", **driver.counts(), usage=driver.ledger.to_dict()["total"])
    return driver.run


def run_job_batches(
    driver: RunDriver,
    stage: Stage,
    records: Sequence[Record],
    *,
    config: LLMConfig | None,
    batch_size: int,
    backend: Backend | None = None,
) -> None:
    """Run ``stage`` over the rows ``driver`` has not done yet, reporting each batch to it."""
    uses_llm = config is not None and stage.uses_llm
    llm = driver.make_llm(config, backend) if uses_llm and config is not None else None
    done = driver.done_ids()
    remaining = sum(1 for r in records if r.id not in done)
    try:
        with live_progress(stage.name, remaining, driver.ledger) as progress:
            if llm is not None:
                llm.on_progress = progress.refresh

            def on_batch(result: StageResult) -> None:
                driver.report(result, stage.name)
                progress.advance(len(result.kept) + len(result.rejected) + len(result.failed))

            size = max(batch_size, llm_concurrency(config)) if uses_llm else batch_size
            run_stage_batches(stage, records, llm=llm, batch_size=size, done_ids=done,
                              on_batch=on_batch)  # fmt: skip
    finally:
        if llm is not None:
            llm.close()


def llm_concurrency(config: LLMConfig | None) -> int:
    """Requests the backend keeps in flight (1 when it does not say)."""
    if config is None:
        return 1
    value = config.options.get("concurrency")
    return int(value) if isinstance(value, int | float) and value > 0 else 1


def run_scoring_job(
    stage: Stage,
    records: Sequence[Record],
    *,
    out: str | Path,
    decision: Stage | None = None,
    config: LLMConfig | None = None,
    batch_size: int = 64,
    method: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
    prompt_hashes: Mapping[str, str] | None = None,
    force_new: bool = False,
    retry_failed: bool = False,
) -> RunDir:
    """Score ``records`` into ``out``; with a global ``decision`` (a top share), in two steps.

    A range decision is per row, so it runs inside the (resumable) scoring job. A top-share
    decision needs every row's score: the scoring stage writes all rows with their scores into
    ``OUT/scored`` (resumable, per batch), then the model-free ``decision`` stage decides over
    all of them at once into ``OUT``. Rerunning resumes and never rescores a finished row.
    """
    target = Path(out) / "scored" if decision is not None else Path(out)
    common: dict[str, Any] = {"force_new": force_new, "retry_failed": retry_failed}
    run = run_record_job(stage, records, out=target, config=config, batch_size=batch_size,
                         method=method, extra_config=extra_config, **common)  # fmt: skip
    _note_prompts(run, prompt_hashes)
    if decision is None:
        return run
    scored = run.read_kept()
    final = run_record_job(
        decision,
        scored,
        out=out,
        config=None,
        batch_size=max(1, len(scored)),
        method=method or decision.name,
        extra_config={**(extra_config or {}), "scored_run": str(target)},
        **common,
    )
    _note_prompts(final, prompt_hashes)
    return final


def _note_prompts(run: RunDir, hashes: Mapping[str, str] | None) -> None:
    for name, sha in (hashes or {}).items():
        run.note_prompt(name, sha)


def stage_params(stage: Stage) -> dict[str, Any]:
    """A stage's explicit parameters (its public JSON-able attributes), for the manifest."""
    return {
        k: v
        for k, v in vars(stage).items()
        if not k.startswith("_")
        and isinstance(v, str | int | float | bool | type(None) | list | dict)
    }


def stage_prompts(stage: Any) -> dict[str, str]:
    """The prompt templates a stage uses (key -> sha256), for the manifest and resume guard."""
    from tunesmith.prompts import PromptTemplate

    declared = getattr(stage, "prompt_hashes", None)
    if isinstance(declared, Mapping):
        return dict(declared)
    return {t.key: t.sha256 for t in vars(stage).values() if isinstance(t, PromptTemplate)}
