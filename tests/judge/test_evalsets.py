"""Evaluation sets in the shapes the field publishes them, and `eval generate` on the fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import shared_file
from tunesmith.cli import app
from tunesmith.errors import DataError
from tunesmith.judge.evalsets import read_eval_set


def _jsonl(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("row", "instruction", "category"),
    [
        ({"instruction": "Q?", "output": "A", "generator": "gpt4", "dataset": "helpful_base"}, "Q?", "helpful_base"),
        ({"question_id": 81, "category": "writing", "turns": ["Write a blog.", "Rewrite it."]}, "Write a blog.", "writing"),
        ({"question_id": 1, "text": "How can I sleep better?", "category": "generic"}, "How can I sleep better?", "generic"),
        ({"id": 3, "prompt": "Explain rain."}, "Explain rain.", None),
        ({"idx": 7, "Skill": "Math", "Instruction": "Add 2 and 3."}, "Add 2 and 3.", "Math"),
        ({"conversations": ["Tell me a joke.", "Why did the ..."], "source": "lima"}, "Tell me a joke.", None),
    ],
)  # fmt: skip
def test_each_published_shape(
    tmp_path: Path, row: dict, instruction: str, category: str | None
) -> None:  # type: ignore[type-arg]
    [rec] = read_eval_set(_jsonl(tmp_path / "set.jsonl", [row]))
    assert rec.instruction == instruction
    assert rec.meta.get("category") == category
    if "generator" in row:
        assert rec.meta["generator"] == "gpt4" and rec.output == "A"
    if isinstance(row.get("conversations"), list):
        assert rec.output == "Why did the ..."  # LIMA's answer: usable as a baseline's output
    if "question_id" in row:
        assert rec.id == str(row["question_id"])


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"turns": []}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2:"):
        read_eval_set(path)
    path = _jsonl(tmp_path / "none.jsonl", [{"foo": "bar"}])
    with pytest.raises(DataError, match=r"none\.jsonl:1:"):
        read_eval_set(path)


def test_user_oriented_252_real_file() -> None:
    path = shared_file("self_instruct_user_oriented_252", "user_oriented_instructions.jsonl")
    records = read_eval_set(path)
    assert len(records) == 252
    assert records[0].id == "user_oriented_task_0" and records[0].input  # first instance's input
    assert all(r.instruction.strip() for r in records)


def test_eval_generate_writes_alpaca_eval_outputs(tmp_path: Path) -> None:
    evalset = _jsonl(tmp_path / "q.jsonl", [
        {"question_id": i, "turns": [f"Question {i}?"], "category": "c"} for i in range(3)
    ])  # fmt: skip
    out = tmp_path / "gen"
    res = CliRunner().invoke(app, ["eval", "generate", str(evalset), "--out", str(out),
                                   "--backend", "fake", "--name", "mine"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "outputs.json").read_text())
    assert [r["instruction"] for r in rows] == [f"Question {i}?" for i in range(3)]
    assert all(r["generator"] == "mine" and r["output"].startswith("fake answer") for r in rows)
    assert [r["dataset"] for r in rows] == ["c"] * 3
    # the folder reads back as an outputs file for eval compare
    assert [r.meta["generator"] for r in read_eval_set(out)] == ["mine"] * 3


@pytest.mark.integration
def test_eval_generate_through_transformers(tmp_path: Path) -> None:
    """Any backend: the local transformers runtime (as for a tuned model folder) writes the
    outputs file, greedy answers equal to the backend's own."""
    pytest.importorskip("transformers")
    from tunesmith.llm.base import Request, SamplingParams
    from tunesmith.llm.transformers import TransformersBackend

    evalset = _jsonl(tmp_path / "q.jsonl", [{"question_id": 1, "turns": ["Name a fruit."]}])
    out = tmp_path / "tf"
    res = CliRunner().invoke(app, ["eval", "generate", str(evalset), "--out", str(out),
                                   "--backend", "transformers", "--max-tokens", "5",
                                   "--temperature", "0", "--name", "tuned"])  # fmt: skip
    assert res.exit_code == 0, res.output
    [row] = json.loads((out / "outputs.json").read_text())
    backend = TransformersBackend(threads=1)
    got: dict[int, str] = {}
    req = Request.chat([{"role": "user", "content": "Name a fruit."}],
                       SamplingParams(temperature=0, top_p=0.9, max_tokens=5))  # fmt: skip
    backend.complete([req], lambda i, c: got.__setitem__(i, c[0].text))
    assert row["generator"] == "tuned" and row["output"] == got[0].strip() != ""
