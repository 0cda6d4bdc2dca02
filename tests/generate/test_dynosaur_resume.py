"""Dynosaur after a real SIGKILL: no design call is paid twice, no row lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SHARED_DATA
from tests.generate.test_dynosaur import designer_fake
from tests.generate.test_resume import cache_rows, lines
from tunesmith.generate.dynosaur_run import run_dynosaur
from tunesmith.llm.factory import LLMConfig

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.generate.test_dynosaur import designer_fake
from tunesmith.generate.dynosaur_run import run_dynosaur
from tunesmith.llm.factory import LLMConfig

fake = designer_fake()
answer = fake.responses

def slow(request, sample):
    time.sleep(0.15)
    return answer(request, sample)

fake.responses = slow
run_dynosaur(sys.argv[3], out=sys.argv[1], params={{"batch_size": 7}},
             config=LLMConfig(backend="fake", cache_path=sys.argv[2]), backend=fake)
"""


def make_datasets(root: Path, n: int) -> Path:
    """``n`` small datasets, each with a card (so both design prompts are sent)."""
    for d in range(n):
        folder = root / f"set{d}"
        folder.mkdir(parents=True)
        rows = [{"instruction": f"Task {d}-{i}?", "output": f"Answer {d}-{i}."} for i in range(20)]
        (folder / f"set{d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "README.md").write_text(f"# set{d}\n\nQuestions and answers, part {d}.\n")
    return root


def run_here(data: Path, out: Path, cache: Path) -> int:
    fake = designer_fake()
    run_dynosaur(data, out=out, params={"batch_size": 7}, backend=fake,
                 config=LLMConfig(backend="fake", cache_path=str(cache)))  # fmt: skip
    return fake.calls


def test_dynosaur_resumes_after_sigkill(tmp_path: Path) -> None:
    data = make_datasets(tmp_path / "data", 6)
    reference = run_here(data, tmp_path / "ref", tmp_path / "ref.sqlite")
    assert reference == 12  # two design prompts per dataset, none per row
    out, cache = tmp_path / "killed", tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TUNESMITH_SHARED_DATA": str(SHARED_DATA)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=str(REPO)), str(out),
                             str(cache), str(data)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while cache_rows(cache) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "ended early"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = cache_rows(cache)
    assert 4 < done_before < reference
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    resumed = run_here(data, out, cache)
    assert resumed == reference - done_before
    assert lines(out / "kept.jsonl") == lines(tmp_path / "ref" / "kept.jsonl")
    assert sorted(lines(out / "rejected.jsonl")) == sorted(
        lines(tmp_path / "ref" / "rejected.jsonl")
    )
    assert json.loads((out / "tasks.json").read_text()) == json.loads(
        (tmp_path / "ref" / "tasks.json").read_text())  # fmt: skip
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["calls"] <= reference <= summary["calls"] + summary["cache_hits"]
    assert summary["rows_produced"] == 6 * 20 and summary["design_calls"] == reference


def test_datasets_are_designed_concurrency_over_two_at_a_time(tmp_path: Path) -> None:
    batches: list[int] = []
    fake = designer_fake()
    complete = fake.complete

    def counting(requests, on_done):  # type: ignore[no-untyped-def]
        batches.append(len(requests))
        complete(requests, on_done)

    fake.complete = counting  # type: ignore[method-assign]
    data = make_datasets(tmp_path / "data", 3)
    config = LLMConfig(backend="fake", options={"concurrency": 4})
    run = run_dynosaur(data, out=tmp_path / "run", config=config, backend=fake)
    assert batches == [4, 2]  # two datasets (two prompts each), then the third
    again = run_here(data, tmp_path / "one", tmp_path / "one.sqlite")  # concurrency 1
    assert again == 6
    assert lines(run.path / "kept.jsonl") == lines(tmp_path / "one" / "kept.jsonl")
