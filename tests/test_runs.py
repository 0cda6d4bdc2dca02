"""Run folders and the resumable record job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.errors import BudgetExceeded
from tunesmith.generate.response_generator import ResponseGenerator
from tunesmith.jobs import run_record_job
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.records import Record
from tunesmith.runs import RunDir


def _records(n: int) -> list[Record]:
    return [Record(id=f"r{i}", instruction=f"Question number {i}?") for i in range(n)]


def test_write_kept_is_idempotent_by_id(tmp_path: Path) -> None:
    run = RunDir.open(tmp_path / "run", method="t", config={"x": 1})
    assert run.write_kept(_records(3)) == 3
    assert run.write_kept(_records(5)) == 2
    again = RunDir.open(tmp_path / "run", method="t")
    assert again.is_resumed and again.write_kept(_records(5)) == 0
    assert [r.id for r in again.read_kept()] == [f"r{i}" for i in range(5)]


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    run = RunDir.open(tmp_path / "run", method="t")
    run.write_kept(_records(2))
    with run.kept_path.open("a") as fh:
        fh.write('{"id": "r9", "instr')  # a kill in the middle of a write
    assert [r.id for r in RunDir.open(tmp_path / "run", method="t").read_kept()] == ["r0", "r1"]


def test_rejected_rows_carry_stage_score_and_reason(tmp_path: Path) -> None:
    run = RunDir.open(tmp_path / "run", method="t")
    run.write_rejected(
        _records(2), stage="novelty", scores=[0.9, 0.8], reasons=["near r7", "near r8"]
    )
    rows = run.read_rejected()
    assert [(r["rejected_by"], r["score"], r["reason"]) for r in rows] == [
        ("novelty", 0.9, "near r7"),
        ("novelty", 0.8, "near r8"),
    ]


def test_job_resumes_after_budget_stop_without_repeating_calls(tmp_path: Path) -> None:
    backend = FakeBackend(responses=lambda req, i: "an answer")
    config = LLMConfig(backend="fake", max_calls=5, cache_path=str(tmp_path / "c.sqlite"))
    with pytest.raises(BudgetExceeded):
        run_record_job(
            ResponseGenerator(),
            _records(12),
            out=tmp_path / "run",
            config=config,
            batch_size=4,
            backend=backend,
        )
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "stopped (budget)"
    assert backend.calls == 5
    kept_before = RunDir.open(tmp_path / "run", method="respond").kept_ids()
    assert len(kept_before) == 4  # the first full batch was written

    config.max_calls = 100
    run = run_record_job(
        ResponseGenerator(),
        _records(12),
        out=tmp_path / "run",
        config=config,
        batch_size=4,
        backend=backend,
    )
    assert backend.calls == 12, "no completed call is paid twice"
    ids = [r.id for r in run.read_kept()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(12)) and len(ids) == len(set(ids))
    ledger = json.loads((tmp_path / "run" / "ledger.json").read_text())
    assert ledger["total"]["calls"] == 12
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "done"
