"""Backtranslation after a real SIGKILL: no finished call is paid twice, no row lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SHARED_DATA, shared_file
from tests.generate.test_backtranslation import humpback_fake, write_docs
from tests.generate.test_resume import cache_rows, lines
from tunesmith.generate.backtranslation_run import run_backtranslation
from tunesmith.llm.factory import LLMConfig

REPO = Path(__file__).resolve().parents[2]
SCORES = {"t0": 5, "t3": 5, "t4": 4, "t7": 5, "t9": 5}
PARAMS = {"batch_size": 2}
CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.generate.test_backtranslation import humpback_fake
from tunesmith.generate.backtranslation_run import run_backtranslation
from tunesmith.llm.factory import LLMConfig

fake = humpback_fake({scores!r})
answer = fake.responses

def slow(request, sample):
    time.sleep(0.05)
    return answer(request, sample)

fake.responses = slow
run_backtranslation(sys.argv[3], seeds=sys.argv[4], out=sys.argv[1], params={params!r},
                    config=LLMConfig(backend="fake", cache_path=sys.argv[2]), backend=fake)
"""


def run_here(docs: Path, seeds: Path, out: Path, cache: Path) -> int:
    fake = humpback_fake(SCORES)
    run_backtranslation(docs, seeds=seeds, out=out, params=PARAMS, backend=fake,
                        config=LLMConfig(backend="fake", cache_path=str(cache)))  # fmt: skip
    return fake.calls


def test_backtranslation_resumes_after_sigkill(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    docs = write_docs(tmp_path / "docs.jsonl", 10)
    reference = run_here(docs, seeds, tmp_path / "ref", tmp_path / "ref.sqlite")
    assert reference == 20  # 10 predictions + 10 ratings
    out, cache = tmp_path / "killed", tmp_path / "killed.sqlite"
    script = CHILD.format(repo=str(REPO), scores=SCORES, params=PARAMS)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TUNESMITH_SHARED_DATA": str(SHARED_DATA)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(out), str(cache), str(docs),
                             str(seeds)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    # kill during self-curation: the backward phase is done, some ratings are not
    while cache_rows(cache) < 13 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "ended early"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = cache_rows(cache)
    assert 12 < done_before < reference
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    resumed = run_here(docs, seeds, out, cache)
    assert resumed == reference - done_before  # no finished call was paid again
    for name in ("kept.jsonl", "augment/kept.jsonl", "iterations/1/kept.jsonl"):
        assert lines(out / name) == lines(tmp_path / "ref" / name), name
    assert sorted(lines(out / "rejected.jsonl")) == sorted(
        lines(tmp_path / "ref" / "rejected.jsonl")
    )
    summary = json.loads((out / "backtranslation.json").read_text())
    # the ledger kept counting across the kill; a call answered after the last checkpoint is in
    # the cache but not yet in the saved ledger, and replays on resume as a cache hit
    assert summary["calls"] <= reference <= summary["calls"] + summary["cache_hits"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"
