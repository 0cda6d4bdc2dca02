"""The run driver: the resume guard, torn lines, failed rows, whole-run errors, in-flight batches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tunesmith.driver import RunDriver
from tunesmith.errors import BackendError, ConfigError, DataError
from tunesmith.filters.heuristic_filter import HeuristicFilter
from tunesmith.generate.response_generator import ResponseGenerator
from tunesmith.jobs import run_record_job
from tunesmith.llm.base import Completion, OnDone, Request
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.llm.usage import Ledger
from tunesmith.records import Record
from tunesmith.runs import RunDir
from tunesmith.stages import Stage, StageResult

ROWS = [
    Record(id="a", instruction="Name a colour.", output="Red."),
    Record(id="b", instruction="Name a fruit.", output="A ripe yellow banana from Peru."),
    Record(id="c", instruction="Name a city.", output="Lima is the capital of Peru."),
]


def _records(n: int) -> list[Record]:
    return [Record(id=f"r{i}", instruction=f"Question number {i}?") for i in range(n)]


def _fake(tmp_path: Path, **kw: object) -> LLMConfig:
    return LLMConfig(backend="fake", cache_path=str(tmp_path / "cache.sqlite"), **kw)  # type: ignore[arg-type]


# -- the resume guard ---------------------------------------------------------------------------
def test_resume_with_other_stage_parameters_is_refused(tmp_path: Path) -> None:
    """The defect of issue 9: this used to return the old 3 kept / 0 rejected silently."""
    first = run_record_job(
        HeuristicFilter(min_output_words=1), ROWS, out=tmp_path / "r", config=None
    )
    assert len(first.kept_ids()) == 3
    with pytest.raises(
        ConfigError, match=r"'params\.min_output_words' \(1 there, 4 now\).*--force-new"
    ):
        run_record_job(HeuristicFilter(min_output_words=4), ROWS, out=tmp_path / "r", config=None)
    again = run_record_job(
        HeuristicFilter(min_output_words=4), ROWS, out=tmp_path / "r", config=None, force_new=True
    )
    assert again.kept_ids() == {"b", "c"} and again.rejected_ids() == {"a"}
    assert again.manifest["config"]["params"]["min_output_words"] == 4
    (old,) = tmp_path.glob("r.replaced-*")  # the old run is set aside, not deleted
    assert (
        json.loads((old / "manifest.json").read_text())["config"]["params"]["min_output_words"] == 1
    )


def test_resume_with_other_input_data_or_model_is_refused(tmp_path: Path) -> None:
    cfg = _fake(tmp_path)
    run_record_job(ResponseGenerator(), _records(3), out=tmp_path / "r", config=cfg)
    with pytest.raises(ConfigError, match="different input data"):
        run_record_job(ResponseGenerator(), _records(4), out=tmp_path / "r", config=cfg)
    other = _fake(tmp_path, model="another-model")
    with pytest.raises(ConfigError, match=r"'llm\.model' \('fake-model' there, 'another-model'"):
        run_record_job(ResponseGenerator(), _records(3), out=tmp_path / "r", config=other)


def test_budget_cache_and_concurrency_may_change_on_resume(tmp_path: Path) -> None:
    backend = FakeBackend()
    run_record_job(ResponseGenerator(), _records(3), out=tmp_path / "r", config=_fake(tmp_path),
                   backend=backend)  # fmt: skip
    changed = _fake(tmp_path, max_calls=100, options={"concurrency": 4})
    run = run_record_job(ResponseGenerator(), _records(3), out=tmp_path / "r", config=changed,
                         backend=backend)  # fmt: skip
    assert run.manifest["resumed"] == 1 and run.manifest["status"] == "done"


def test_a_changed_prompt_template_is_refused(tmp_path: Path) -> None:
    RunDriver.open(tmp_path / "r", method="m", config={}, prompts={"x/y": "a" * 64})
    with pytest.raises(ConfigError, match="different prompt 'x/y'"):
        RunDriver.open(tmp_path / "r", method="m", config={}, prompts={"x/y": "b" * 64})


# -- torn lines ---------------------------------------------------------------------------------
def test_only_a_torn_last_line_is_dropped_and_its_row_redone(tmp_path: Path) -> None:
    backend = FakeBackend(responses=lambda r, i: "an answer")
    cfg = _fake(tmp_path)
    run_record_job(
        ResponseGenerator(), _records(2), out=tmp_path / "r", config=cfg, backend=backend
    )
    kept = tmp_path / "r" / "kept.jsonl"
    lines = kept.read_text().splitlines()
    kept.write_text(lines[0] + "\n" + lines[1][:25])  # killed while writing r1
    run = run_record_job(ResponseGenerator(), _records(2), out=tmp_path / "r", config=cfg,
                         backend=backend)  # fmt: skip
    assert [r.id for r in run.read_kept()] == ["r0", "r1"]
    assert all(json.loads(line) for line in kept.read_text().splitlines())


def test_an_undecodable_line_before_the_last_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    run = RunDir.open(tmp_path / "r", method="t")
    run.write_kept(_records(3))
    lines = run.kept_path.read_text().splitlines()
    run.kept_path.write_text("\n".join([lines[0], "{not json", lines[2]]) + "\n")
    with pytest.raises(DataError, match=r"kept\.jsonl:2: undecodable JSON line"):
        RunDir.open(tmp_path / "r", method="t").read_kept()


# -- failed rows --------------------------------------------------------------------------------
class RejectsOneRow(FakeBackend):
    """Answers every request except the one mentioning ``bad``, which fails for good (HTTP 400)."""

    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        for i, req in enumerate(requests):
            self.calls += 1
            self.requests.append(req)
            comp = Completion(text="an answer", prompt_tokens=3, completion_tokens=2)
            if "bad" in str(req.payload()):
                comp = Completion(text="")
                comp.error, comp.error_status = "context length exceeded", 400  # type: ignore[attr-defined]
            on_done(i, [comp])


def test_a_failed_row_is_recorded_skipped_on_resume_and_retried_on_request(tmp_path: Path) -> None:
    rows = [*_records(3), Record(id="bad", instruction="A bad question?")]
    cfg = LLMConfig(backend="fake", use_cache=False)
    backend = RejectsOneRow()
    run = run_record_job(ResponseGenerator(), rows, out=tmp_path / "r", config=cfg,
                         backend=backend)  # fmt: skip
    assert run.kept_ids() == {"r0", "r1", "r2"} and run.manifest["status"] == "done"
    (row,) = run.read_failed()
    assert (row["id"], row["status"], row["message"]) == ("bad", 400, "context length exceeded")
    assert run.manifest["summary"]["failed"] == 1
    calls = backend.calls
    run_record_job(ResponseGenerator(), rows, out=tmp_path / "r", config=cfg, backend=backend)
    assert backend.calls == calls, "a rerun sends nothing new"
    run_record_job(ResponseGenerator(), rows, out=tmp_path / "r", config=cfg, backend=backend,
                   retry_failed=True)  # fmt: skip
    assert backend.calls == calls + 1 and [r["id"] for r in run.read_failed()] == ["bad"]


class Explodes(Stage):
    name = "explodes"

    def run(self, records: Sequence[Record], llm: object = None) -> StageResult:
        raise BackendError("server unreachable after 5 retries")


def test_a_whole_run_error_marks_the_run_failed_with_the_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError):
        run_record_job(Explodes(), _records(2), out=tmp_path / "r", config=None)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "BackendError: server unreachable after 5 retries"


# -- requests in flight ---------------------------------------------------------------------------
class CountsBatches(FakeBackend):
    def __init__(self) -> None:
        super().__init__(responses=lambda r, i: "an answer")
        self.batches: list[int] = []

    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        self.batches.append(len(requests))
        super().complete(requests, on_done)


def test_a_batch_holds_at_least_concurrency_rows(tmp_path: Path) -> None:
    """``--concurrency 8 --batch-size 2`` keeps 8 requests in flight, not 2 (issue 16)."""
    backend = CountsBatches()
    cfg = _fake(tmp_path, options={"concurrency": 8})
    run_record_job(ResponseGenerator(), _records(10), out=tmp_path / "r", config=cfg,
                   batch_size=2, backend=backend)  # fmt: skip
    assert backend.batches == [8, 2]
    plain = CountsBatches()
    plain_cfg = LLMConfig(backend="fake", use_cache=False)
    run_record_job(ResponseGenerator(), _records(4), out=tmp_path / "p", config=plain_cfg,
                   batch_size=2, backend=plain)  # fmt: skip
    assert plain.batches == [2, 2]


# -- reports ---------------------------------------------------------------------------------------
def test_report_writes_ledger_rows_and_one_event_per_batch(tmp_path: Path) -> None:
    from tunesmith.stages import Failed, Rejected

    driver = RunDriver.open(tmp_path / "r", method="m", config={})
    result = StageResult(kept=_records(1), rejected=[Rejected(Record(id="x", instruction="x"), 0.9, "near", "rouge_l")],
                         failed=[Failed(Record(id="y", instruction="y"), 404, "no such model")])  # fmt: skip
    driver.report(result, "gen", event={"batch": 0})
    driver.report(result, "gen", event={"batch": 0})  # a replayed batch: nothing new
    assert (tmp_path / "r" / "ledger.json").exists()
    assert [r["rejected_by"] for r in driver.run.read_rejected()] == ["rouge_l"]
    assert [(r["id"], r["failed_in"]) for r in driver.run.read_failed()] == [("y", "gen")]
    (event,) = driver.read_events()
    assert event["stage"] == "gen" and {"calls", "cost_usd", "failed"} <= set(event)
    assert driver.done_ids() == {"r0", "x", "y"}


def test_ledger_totals_is_the_one_usage_summary() -> None:
    ledger = Ledger()
    ledger.record("a", Completion(text="x", prompt_tokens=3, completion_tokens=2, cost_usd=0.5))
    ledger.record("b", Completion(text="y", prompt_tokens=1, completion_tokens=1, cached=True))
    assert ledger.totals() == {"calls": 1, "cache_hits": 1, "prompt_tokens": 3,
                               "completion_tokens": 2, "cost_usd": 0.5, "latency_s": 0.0,
                               "failed": 0}  # fmt: skip


# -- generation and dedup through the driver ----------------------------------------------------
class Unreachable(FakeBackend):
    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        raise BackendError("cannot reach http://127.0.0.1:9 after 5 retries")


def test_a_generation_that_dies_says_failed_and_why(tmp_path: Path) -> None:
    from tunesmith.generate.pipeline import run_generation

    with pytest.raises(BackendError):
        run_generation("alpaca", seeds=None, out=tmp_path / "g", config=LLMConfig(backend="fake"),
                       params={"num_instructions": 2}, backend=Unreachable())  # fmt: skip
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "cannot reach" in manifest["error"]


def test_dedup_into_a_folder_of_other_data_is_refused(tmp_path: Path) -> None:
    from tunesmith.filters.novelty import dedup_to_folder

    data = tmp_path / "d.json"
    data.write_text(json.dumps([r.to_dict() for r in ROWS]))
    dedup_to_folder(data, tmp_path / "out", threshold=0.7)
    data.write_text(json.dumps([r.to_dict() for r in ROWS[:2]]))
    with pytest.raises(ConfigError, match="different input data"):
        dedup_to_folder(data, tmp_path / "out", threshold=0.7)
    summary = dedup_to_folder(data, tmp_path / "out", threshold=0.7, force_new=True)
    assert summary["rows"] == 2
