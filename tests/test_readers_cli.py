"""What a user sees when `convert` and `stats` read their files: published formats load, columns
are kept, and every bad or empty input is one line naming the file (and line), exit 2, no
traceback. Run as a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], starts: str) -> str:
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {starts}"), err
    return err


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_convert_vicuna_questions_keeps_every_instruction(tmp_path: Path) -> None:
    src = FIXTURES / "vicuna_question.jsonl"
    result = _cli("convert", str(src), str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "wrote 3 rows" in result.stdout
    rows = _jsonl(tmp_path / "out.jsonl")
    assert [r["instruction"] for r in rows] == [q["text"] for q in _jsonl(src)]
    assert "read instruction <- text (3 rows)" in result.stderr  # the rename is said
    assert [r["meta"]["extra"]["question_id"] for r in rows] == [1, 2, 3]


def test_convert_alpaca_eval_to_alpaca_writes_its_columns_back(tmp_path: Path) -> None:
    src = FIXTURES / "alpaca_eval.json"
    result = _cli("convert", str(src), str(tmp_path / "out.json"), "--style", "alpaca")
    assert result.returncode == 0, result.stderr
    back = json.loads((tmp_path / "out.json").read_text())
    assert back == [{"input": "", **row} for row in json.loads(src.read_text())]


def test_convert_says_what_alpaca_style_leaves_out(tmp_path: Path) -> None:
    result = _cli(
        "convert", str(FIXTURES / "lima.jsonl"), str(tmp_path / "o.json"), "--style", "alpaca"
    )
    assert result.returncode == 0, result.stderr
    assert "alpaca style leaves out 1 rows have more turns" in result.stderr


def test_convert_with_a_field_map_and_its_mistakes(tmp_path: Path) -> None:
    src = tmp_path / "custom.jsonl"
    src.write_text(json.dumps({"ask": "Name a fruit.", "reply": "Plum.", "lang": "en"}) + "\n")
    missing = _cli("convert", str(src), str(tmp_path / "o.jsonl"))
    err = _one_line_error(
        missing, f"{src}:1: no instruction column found (columns: ask, reply, lang)"
    )
    assert "--map instruction=ask" in err
    assert not (tmp_path / "o.jsonl").exists()
    ok = _cli(
        "convert", str(src), str(tmp_path / "o.jsonl"), "--map", "instruction=ask,output=reply"
    )
    assert ok.returncode == 0, ok.stderr
    (row,) = _jsonl(tmp_path / "o.jsonl")
    assert (row["instruction"], row["output"], row["meta"]["extra"]) == (
        "Name a fruit.",
        "Plum.",
        {"lang": "en"},
    )
    bad = _cli("convert", str(src), str(tmp_path / "o.jsonl"), "--map", "instrution=ask")
    assert "did you mean 'instruction'" in _one_line_error(bad, "field map: unknown target")


def test_convert_refuses_empty_instructions_unless_allowed(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text('{"instruction": "Hi."}\n{"instruction": "", "output": "orphan"}\n')
    _one_line_error(
        _cli("convert", str(src), str(tmp_path / "o.jsonl")), f"{src}:2: field 'instruction'"
    )
    ok = _cli("convert", str(src), str(tmp_path / "o.jsonl"), "--allow-empty-instruction")
    assert ok.returncode == 0 and len(_jsonl(tmp_path / "o.jsonl")) == 2


def test_stats_on_unrecognised_rows_is_an_error_not_zeros(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text(
        "".join(
            json.dumps({"qid": i, "body": f"Tell me about the number {i}."}) + "\n"
            for i in range(3)
        )
    )
    err = _one_line_error(
        _cli("stats", str(src), "--metrics", "lengths", "--json"), f"{src}:1: no instruction"
    )
    assert "--map instruction=body" in err
    ok = _cli("stats", str(src), "--metrics", "lengths", "--json", "--map", "instruction=body")
    assert ok.returncode == 0, ok.stderr
    (row,) = json.loads(ok.stdout)
    assert row["size"] == 3 and row["avg_instruction_words"] == 6.0


def test_stats_notes_a_field_that_is_empty_everywhere(tmp_path: Path) -> None:
    result = _cli(
        "stats",
        str(FIXTURES / "koala_test_set.jsonl"),
        "--metrics",
        "lengths",
        "--json",
        "--field",
        "output",
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert any("every row's output is empty" in note for note in row["notes"])
    assert "read instruction <- prompt (2 rows)" in row["notes"]


def _empty(tmp_path: Path, kind: str) -> Path:
    if kind in ("jsonl", "json", "parquet"):
        path = tmp_path / f"empty.{kind}"
        path.write_bytes(b"")
    elif kind == "json-array":
        path = tmp_path / "empty.json"
        path.write_text("[]\n")
    elif kind == "parquet-no-rows":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "empty.parquet"
        pq.write_table(pa.table({"instruction": pa.array([], pa.string())}), path)
    else:
        import datasets

        path = tmp_path / "empty_hf"
        datasets.Dataset.from_dict({"instruction": []}).save_to_disk(str(path))
    return path


@pytest.mark.parametrize(
    "kind", ["jsonl", "json", "json-array", "parquet", "parquet-no-rows", "hf"]
)
@pytest.mark.parametrize("command", ["convert", "stats"])
def test_an_empty_input_is_the_same_error_in_every_format(
    tmp_path: Path, kind: str, command: str
) -> None:
    path = _empty(tmp_path, kind)
    args = (
        [str(path), str(tmp_path / "o.jsonl")]
        if command == "convert"
        else [str(path), "--metrics", "lengths"]
    )
    err = _one_line_error(_cli(command, *args), f"{path}: no rows to read")
    assert "empty" in err


@pytest.mark.parametrize("command", ["convert", "stats"])
def test_bad_bytes_are_one_line(tmp_path: Path, command: str) -> None:
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"instruction": "ok"}\n{"instruction": "na\xefve"}\n')
    tail = [str(tmp_path / "o.jsonl")] if command == "convert" else ["--metrics", "lengths"]
    _one_line_error(_cli(command, str(jsonl), *tail), f"{jsonl}:2: invalid UTF-8 (byte 0xef")
    good = tmp_path / "good.parquet"
    assert _cli("convert", str(FIXTURES / "koala_test_set.jsonl"), str(good)).returncode == 0
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(good.read_bytes()[:-40])
    _one_line_error(_cli(command, str(bad), *tail), f"{bad}: not a readable Parquet file")
