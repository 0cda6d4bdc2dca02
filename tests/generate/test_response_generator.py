"""`respond`: answers keep the user's work (truncated answers kept and marked, references kept)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.generate.response_generator import DEFAULT_MAX_TOKENS, ResponseGenerator
from tunesmith.jobs import run_record_job
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.records import Record

REPO = Path(__file__).resolve().parents[2]


def _records(n: int, output: str = "") -> list[Record]:
    return [Record(id=f"r{i}", instruction=f"Question {i}?", output=output) for i in range(n)]


def _run(tmp_path: Path, stage: ResponseGenerator, backend: FakeBackend, n: int = 2):
    return run_record_job(stage, _records(n, output="the reference answer"), out=tmp_path / "run",
                          config=LLMConfig(backend="fake"), backend=backend)  # fmt: skip


def test_truncated_answers_are_kept_and_marked_and_references_kept(tmp_path: Path) -> None:
    backend = FakeBackend(responses=["", "cut off answ"], finish_reason="length")
    run = _run(tmp_path, ResponseGenerator(), backend)
    [kept] = run.read_kept()
    assert kept.output == "cut off answ" and kept.meta["finish_reason"] == "length"
    assert kept.meta["reference_output"] == "the reference answer"
    assert [r["reason"] for r in run.read_rejected()] == ["empty response"]
    assert backend.requests[0].params.max_tokens == DEFAULT_MAX_TOKENS >= 1024


def test_drop_truncated_rejects_cut_answers_with_the_reason(tmp_path: Path) -> None:
    backend = FakeBackend(responses=["cut off answ"], finish_reason="length")
    run = _run(tmp_path, ResponseGenerator(drop_truncated=True, max_tokens=8), backend, n=1)
    assert run.read_kept() == []
    [rejected] = run.read_rejected()
    assert rejected["reason"] == "response truncated at max_tokens=8 (--drop-truncated)"
    assert rejected["meta"]["reference_output"] == "the reference answer"


def test_respond_cli_keeps_the_reference_and_counts_rows(tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"  # a layout no reader knows: read through --map
    rows = [{"prompt": f"Say {w}.", "answer": f"{w}!"} for w in ("hi", "bye", "no")]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    args = [str(data), "--out", str(out), "-b", "fake", "--map", "instruction=prompt",
            "--map", "output=answer", "--limit", "2"]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "tunesmith", "respond", *args],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"kept 2, rejected 0, failed 0 -> {out}" in result.stdout
    kept = [json.loads(x) for x in (out / "kept.jsonl").open()]
    assert sorted(r["meta"]["reference_output"] for r in kept) == ["bye!", "hi!"]
    assert all(r["output"].startswith("fake answer") for r in kept)
    assert (out / "report.html").exists()


def _readme_python_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The Python API") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has a python block"
    code = match.group(1)
    # the block goes on to train on the answers (tested in tests/train): stop before that
    return code.split("\nfrom tunesmith.train", 1)[0]


@pytest.mark.integration
def test_readme_python_example_keeps_its_rows(tmp_path: Path) -> None:
    """The README's own example, run as written on 3 rows with the embedded model."""
    rows = [
        {"instruction": "Name a colour of the sky on a clear day.", "input": "", "output": "Blue."},
        {"instruction": "Write one sentence about autumn.", "input": "", "output": "Leaves fall."},
        {"instruction": "Give a synonym.", "input": "happy", "output": "Glad."},
    ]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", _readme_python_example()], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import pandas as pd

    answers = pd.read_parquet(tmp_path / "answers.parquet")
    assert len(answers) == 3, "every row keeps its answer (none lost to a short max_tokens)"
    kept = [json.loads(x) for x in (tmp_path / "runs" / "answers" / "kept.jsonl").open()]
    assert sorted(r["meta"]["reference_output"] for r in kept) == ["Blue.", "Glad.", "Leaves fall."]
    assert all(r["meta"]["finish_reason"] in ("stop", "length") and r["output"] for r in kept)
