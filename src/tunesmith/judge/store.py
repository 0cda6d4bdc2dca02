"""How an evaluation reports to the run driver: judged pairs are the run's kept rows.

Each judgment becomes a :class:`~tunesmith.records.Record` (the instruction, the model's output,
the verdict under ``meta.judgment`` and ``scores.preference``), so the driver's guarantees hold
as for every other run: the resume guard (same judges, models, seed, noise and input data; a
budget, cache or concurrency may change), rows written after the ledger, ``stopped (budget)``
and ``failed`` statuses, failed requests in ``failed.jsonl`` and skipped on resume unless
``retry_failed``. Folder layout::

    manifest.json   resolved config, input fingerprint, status
    kept.jsonl      one row per judged pair
    failed.jsonl    pairs whose judge request failed for good (HTTP 4xx)
    ledger.json     calls, cache hits, tokens, cost
    events.jsonl    judged counts and usage after each batch
    summary.json    win rates, LC win rate, per-category tables, position bias, excerpts
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tunesmith.driver import RunDriver
from tunesmith.errors import DataError
from tunesmith.llm.usage import Ledger
from tunesmith.records import Record
from tunesmith.runs import RunDir
from tunesmith.stages import Failed, StageResult

METHOD = "eval-compare"
_TOP = ("id", "instruction", "input", "model_output")


def to_record(row: Mapping[str, Any]) -> Record:
    """A judgment row as a kept record (model output as ``output``, the verdict in meta)."""
    pref = row.get("preference")
    return Record(
        id=str(row["id"]),
        instruction=row["instruction"],
        input=row.get("input", ""),
        output=row["model_output"],
        meta={"judgment": {k: v for k, v in row.items() if k not in _TOP}},
        scores={"preference": pref} if pref is not None else {},
    )


def to_row(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "instruction": record.instruction,
        "input": record.input,
        "model_output": record.output,
        **dict(record.meta.get("judgment") or {}),
    }


def read_rows(folder: str | Path) -> list[dict[str, Any]]:
    """The judgment rows of an ``eval compare`` folder."""
    path = Path(folder)
    if not (path / "manifest.json").exists():
        raise DataError(path, None, "not an `eval compare` folder (no manifest.json)")
    return [to_row(r) for r in RunDir(path, {}).read_kept()]


class JudgeStore:
    """An evaluation folder opened through the run driver."""

    def __init__(self, driver: RunDriver) -> None:
        self.driver = driver

    @classmethod
    def open(
        cls,
        out: str | Path,
        *,
        identity: Mapping[str, Any],
        settings: Mapping[str, Any],
        inputs: str,
        force_new: bool = False,
        retry_failed: bool = False,
    ) -> JudgeStore:
        """Create or resume ``out``; ``identity`` must match to resume, ``settings`` (LLM
        options, budgets, file paths) may change."""
        driver = RunDriver.open(
            out,
            method=METHOD,
            config={"judging": dict(identity), "settings": dict(settings)},
            inputs=inputs,
            force_new=force_new,
            retry_failed=retry_failed,
            resumable=("settings",),
        )
        return cls(driver)

    @property
    def path(self) -> Path:
        return self.driver.path

    @property
    def ledger(self) -> Ledger:
        return self.driver.ledger

    def rows(self) -> list[dict[str, Any]]:
        return [to_row(r) for r in self.driver.read_kept()]

    def done_ids(self) -> set[str]:
        return self.driver.done_ids()

    def write(self, rows: Iterable[Mapping[str, Any]], batch: int) -> None:
        """Report one batch: judged pairs kept, pairs whose request failed as failed rows."""
        result = StageResult()
        for row in rows:
            error = str(row.get("failed") or "")
            if error.startswith("request failed"):
                result.failed.append(Failed(to_record(row), row.get("status"), error))
            else:
                result.kept.append(to_record(row))
        self.driver.report(result, "judge", event={"batch": batch, **self.driver.counts()})

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        return self.driver.write_artifact("summary.json", dict(summary))

    def finish(self, status: str = "done", **summary: Any) -> None:
        self.driver.finish(status, **summary)
