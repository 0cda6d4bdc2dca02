"""Real runs on the embedded SmolLM2 through the CLI (tiny sizes): Self-Instruct killed with
SIGKILL and resumed, and SeDi-Instruct end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.generate.test_resume import cache_rows, lines

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "TUNESMITH_CACHE": str(cache), "TUNESMITH_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tunesmith", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ledger_calls(out: Path) -> int:
    path = out / "ledger.json"
    return json.loads(path.read_text())["total"]["calls"] if path.exists() else 0


def test_self_instruct_cli_on_embedded_model_survives_sigkill(tmp_path):
    pytest.importorskip("llama_cpp")
    out, cache = tmp_path / "si", tmp_path / "requests.sqlite"
    args = (
        "generate",
        "self-instruct",
        "--out",
        str(out),
        "-n",
        "4",
        "--prompts-per-batch",
        "2",
        "--max-tokens",
        "96",
        "--instance-max-tokens",
        "96",
        "--max-rounds",
        "3",
    )
    proc = cli(*args, cache=cache)
    deadline = time.monotonic() + 240
    while cache_rows(cache) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rows_at_kill, calls_at_kill = cache_rows(cache), ledger_calls(out)
    assert rows_at_kill >= 3
    stdout, stderr = cli(*args, cache=cache).communicate(timeout=400)
    assert "kept" in stdout, stderr
    # every answer in this test's own cache was paid by this run: the ledger counts each once
    # (calls answered after the last checkpoint are caught up on resume), none paid twice
    assert calls_at_kill <= rows_at_kill
    assert ledger_calls(out) == cache_rows(cache)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["resumed"] == 1
    kept = [json.loads(x) for x in lines(out / "kept.jsonl")]
    assert kept, stdout
    assert all(r["output"] and r["meta"]["method"] == "self_instruct" for r in kept)
    assert len({r["id"] for r in kept}) == len(kept)
    events = [json.loads(x) for x in lines(out / "events.jsonl")]
    assert any(e["stage"] == "bootstrap" for e in events)
    # An uninterrupted run over the same answers (all replayed from the cache, no new call) must
    # give exactly these rows: a row lost or duplicated across the kill would show here.
    ref = tmp_path / "ref"
    ref_args = tuple(str(ref) if a == str(out) else a for a in args)
    stdout, stderr = cli(*ref_args, cache=cache).communicate(timeout=400)
    assert ledger_calls(ref) == 0, stderr
    assert lines(out / "kept.jsonl") == lines(ref / "kept.jsonl")
    assert sorted(lines(out / "rejected.jsonl")) == sorted(lines(ref / "rejected.jsonl"))


def test_sedi_cli_on_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp")
    out = tmp_path / "sedi"
    proc = cli(
        "generate",
        "sedi",
        "--out",
        str(out),
        "-n",
        "3",
        "--prompts-per-batch",
        "2",
        "--max-tokens",
        "200",
        "--max-rounds",
        "1",
        "--train-batch-size",
        "2",
        cache=tmp_path / "requests.sqlite",
    )
    _, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr
    scores = json.loads((out / "seed_scores.json").read_text())
    assert sum(r["seed_gen"] for r in scores) > 0
    kept = [json.loads(x) for x in lines(out / "kept.jsonl")]
    order = json.loads((out / "batches.json").read_text())
    assert sorted(i for b in order["batches"] for i in b) == sorted(r["id"] for r in kept)
    assert json.loads((out / "manifest.json").read_text())["summary"]["calls"] == 2
