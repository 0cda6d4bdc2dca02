"""`tunesmith score ...` and `tunesmith filter ...` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()
ROWS = [
    {"instruction": "Name three primary colors.", "input": "", "output": "Red, blue and yellow."},
    {"instruction": "Give a tip for staying healthy.", "input": "",
     "output": "As an AI language model, I recommend sleep."},
    {"instruction": "Describe the image below.", "input": "", "output": "A cat on a mat."},
    {"instruction": "Write a short story about a robot who learns to paint landscapes in the "
     "mountains during a long winter.", "input": "", "output": "Once, a robot painted snow."},
]  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_filter_heuristics_writes_reasons(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "h"
    assert "kept 2, rejected 2" in invoke(
        "filter", "heuristics", data, "--out", out, "--blacklist", "image"
    )
    reasons = {r["instruction"][:10]: r["reason"] for r in rows(out / "rejected.jsonl")}
    assert reasons["Give a tip"].startswith("identity_string")
    assert reasons["Describe t"] == "blacklisted_keyword: 'image'"
    assert all(r["rejected_by"] == "heuristics" for r in rows(out / "rejected.jsonl"))
    assert all(r["scores"]["heuristics"] == [] for r in rows(out / "kept.jsonl"))


def test_filter_decontam_catches_the_planted_row(data: Path, tmp_path: Path) -> None:
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps([{"instruction": "write a SHORT story about a robot who learns to "
                  "paint landscapes in the mountains during a long winter"}]))  # fmt: skip
    out = tmp_path / "d"
    assert "kept 3, rejected 1" in invoke("filter", "decontam", data, "--out", out, "--eval", ev)
    (rej,) = rows(out / "rejected.jsonl")
    assert rej["instruction"].startswith("Write a short story") and "eval.json#0" in rej["reason"]


def test_missing_eval_file_is_a_one_line_error(data: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tunesmith", "filter", "decontam", str(data), "--out",
         str(tmp_path / "d"), "--eval", str(tmp_path / "nope.jsonl")],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nope.jsonl" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_score_quality_on_the_fake_backend_counts_parse_failures_and_resumes(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "q"
    args = ("score", "quality", data, "--out", out, "--backend", "fake", "-k", "4")
    assert "(4 parse failures)" in invoke(*args)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["parse_failures"] == 4
    assert "judge_score/humpback" in manifest["prompts"]
    calls = json.loads((out / "ledger.json").read_text())
    invoke(*args)  # resume: every row is done, nothing is asked again
    assert json.loads((out / "ledger.json").read_text()) == calls
    assert len(rows(out / "rejected.jsonl")) == 4


@pytest.mark.integration
def test_score_ifd_top_share_then_filter_ppl(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    out = tmp_path / "ifd"
    args = ("score", "ifd", data, "--out", out, "--top-share", "0.5", "--runtime", "llama-cpp")
    assert "kept 2, rejected 2" in invoke(*args)
    scored = rows(out / "scored" / "kept.jsonl")
    assert len(scored) == 4 and all({"ifd", "rifd"} <= set(r["scores"]) for r in scored)
    best = sorted(r["scores"]["ifd"] for r in scored)[2:]
    assert sorted(r["scores"]["ifd"] for r in rows(out / "kept.jsonl")) == best
    assert "kept 2, rejected 2" in invoke(*args)  # rerun: resumed, same decision
    assert len(rows(out / "kept.jsonl")) == 2
    assert (out / "report.html").is_file()

    # filter ppl scores the IFD-scored rows (transformers runtime), keeping their IFD scores
    ppl_out = tmp_path / "ppl"
    invoke("filter", "ppl", out / "scored" / "kept.jsonl", "--out", ppl_out, "--threshold", "1e9")
    kept = rows(ppl_out / "kept.jsonl")
    assert len(kept) == 4 and all(r["scores"]["ppl"] > 1 and "ifd" in r["scores"] for r in kept)
    assert (ppl_out / "report.html").is_file()
    strict = tmp_path / "strict"
    invoke("filter", "ppl", ppl_out / "kept.jsonl", "--out", strict, "--threshold", "1")
    assert len(rows(strict / "rejected.jsonl")) == 4  # reused scores, all above 1
