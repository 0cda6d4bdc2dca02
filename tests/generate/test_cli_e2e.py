"""`demo` and `compare-generators` end to end: the CLI as a subprocess on the embedded model,
tiny sizes, every printed number checked against the run folders it wrote."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.llm.cache import RequestCache

pytestmark = pytest.mark.integration


def _cli(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "tunesmith", *args], cwd=cwd, env=os.environ,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


def _calls(run: Path) -> int:
    return int(json.loads((run / "ledger.json").read_text())["total"]["calls"])


def test_demo_prints_what_its_run_folder_holds(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    stdout = _cli("demo", "-n", "1", "--prompts-per-batch", "1", "--out", str(out), cwd=tmp_path)
    m = re.search(r"kept (\d+) instructions from (\d+) generated, (\d+) calls", stdout)
    assert m, stdout
    kept, generated, calls = map(int, m.groups())
    rows = _jsonl(out / "kept.jsonl")
    assert kept == len({r["instruction"] for r in rows}) >= 1
    assert calls == _calls(out) > 0 and generated >= kept
    # Self-Instruct asks one classification and one instance call per bootstrapped instruction
    rounds = [e for e in _jsonl(out / "events.jsonl") if e.get("stage") == "bootstrap"]
    assert calls == len(rounds) + 2 * rounds[-1]["kept"]
    if kept > 1:
        assert f"({kept} for 1 asked: " in stdout, "an overshoot is explained"
    assert f"kept {len(rows)}, rejected {len(_jsonl(out / 'rejected.jsonl'))}, failed 0" in stdout
    # the report counts what the console counts (instructions; Self-Instruct keeps a row per instance)
    page = (out / "report.html").read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert f"{generated} generated instructions {kept} kept instructions ({len(rows)} rows)" in text


def test_compare_generators_shares_identical_requests_and_agrees_with_its_folders(
    tmp_path: Path,
) -> None:
    out = tmp_path / "cmp"
    args = ["compare-generators", "-n", "2", "--methods", "alpaca,sedi", "--prompts-per-batch",
            "1", "--max-tokens", "240", "--max-rounds", "2", "--out", str(out)]  # fmt: skip
    stdout = _cli(*args, cwd=tmp_path)
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["alpaca", "sedi"]
    for row in rows:
        run = Path(row["run"])
        assert row["kept"] == len({r["instruction"] for r in _jsonl(run / "kept.jsonl")})
        assert row["calls"] == _calls(run) and row["calls"] <= 2
        line = next(x for x in stdout.splitlines() if x.split()[:1] == [row["method"]])
        assert line.split()[1:6] == [row["status"], str(row["generated"]), str(row["kept"]),
                                     f"{row['keep_rate']:.2f}", str(row["calls"])]  # fmt: skip
        assert row["status"] == "reached" or f"{row['method']}: {row['why']}" in stdout
    # SeDi's first prompt is Alpaca's (same template, same seed sampling): asked once, paid once
    assert rows[1]["shared"] >= 1
    cache = RequestCache(out / "shared_requests.sqlite")
    paid = len(cache)
    cache.close()
    assert paid == sum(r["calls"] for r in rows) - sum(r["shared"] for r in rows)
    assert stdout.startswith("SeDi-Instruct vs Alpaca-style on identical prompts: ")
    assert (out / "report.html").exists()
    # rerun: resumes, pays nothing, prints the same numbers
    assert _cli(*args, cwd=tmp_path).splitlines()[:3] == stdout.splitlines()[:3]
