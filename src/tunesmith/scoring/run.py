"""Scoring jobs into run folders: resumable scoring, then an optional global decision.

A range decision is per row, so it runs inside the (resumable) scoring job. A top-share
decision needs every row's score, so it runs in two steps: the scoring stage writes all rows
with their scores into ``OUT/scored`` (resumable, per batch), then a model-free
:class:`~tunesmith.filters.score_decision.ScoreDecision` decides over all of them at once into ``OUT``.
Rerunning the same command resumes the scoring and never rescores a finished row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.filters.score_decision import ScoreDecision
from tunesmith.jobs import run_record_job
from tunesmith.llm.factory import LLMConfig
from tunesmith.records import Record
from tunesmith.runs import RunDir
from tunesmith.stages import Stage


def run_scoring_job(
    stage: Stage,
    records: Sequence[Record],
    *,
    out: str | Path,
    decision: ScoreDecision | None = None,
    config: LLMConfig | None = None,
    batch_size: int = 64,
    method: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
    prompt_hashes: Mapping[str, str] | None = None,
) -> RunDir:
    """Run ``stage`` over ``records`` into ``out``; with ``decision``, decide globally after.

    Args:
        stage: a scoring stage (it should not decide itself when ``decision`` is given).
        records: the dataset.
        out: run folder (rerun to resume).
        decision: a global decision (top share) applied to all scored rows at the end.
        config: LLM settings for LLM stages (None for model-scoring stages).
        batch_size: rows per checkpointed batch.
        method, extra_config: written to the manifest.
        prompt_hashes: template hashes noted in the manifest.
    """
    target = Path(out) / "scored" if decision is not None else Path(out)
    run = run_record_job(
        stage,
        records,
        out=target,
        config=config,
        batch_size=batch_size,
        method=method,
        extra_config=extra_config,
    )
    for name, sha in (prompt_hashes or {}).items():
        run.note_prompt(name, sha)
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
    )
    for name, sha in (prompt_hashes or {}).items():
        final.note_prompt(name, sha)
    return final
