"""``tunesmith select`` as a user meets it: what order it uses, a --score no row has, kept 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tunesmith.errors import ConfigError
from tunesmith.records import Record
from tunesmith.select.select_stage import SelectStage


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunesmith", "select", *args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)  # fmt: skip


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_score_no_row_has_is_an_error_naming_it_and_the_scores_present() -> None:
    recs = [Record(id="x", instruction="a", scores={"ifd": 0.4, "ppl": 9.0}),
            Record(id="y", instruction="b", scores={"ifd": 0.2})]  # fmt: skip
    emb = np.eye(2, dtype=np.float32)
    with pytest.raises(ConfigError, match=r"no row has 'quality' \(scores present: ifd, ppl\)"):
        SelectStage(k=1, score="quality").select(recs, emb)
    with pytest.raises(ConfigError, match="no row has 'quality'"):
        SelectStage(k=1, score="ifd*quality").select(recs, emb)
    # some rows having it is fine: the others are rejected with the reason
    res = SelectStage(k=2, score="ppl").select(recs, emb)
    assert [r.id for r in res.kept] == ["x"] and res.rejected[0].reason == "no ppl score"


def test_the_order_note_says_what_ranks_the_rows() -> None:
    assert "input order" in SelectStage().order_note()
    assert "ranked by q, highest first" in SelectStage(score="q").order_note()
    assert "lowest first" in SelectStage(score="ppl", ascending=True).order_note()
    assert "diversity only" in SelectStage(method="kcenter").order_note()


def test_cli_without_score_says_it_keeps_input_order(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d.jsonl", [{"id": "a", "instruction": "Name a fruit."}])
    res = cli(str(data), "--out", str(tmp_path / "s"), "--k", "1", "--embedder", "missing-model")
    # the note comes before any embedding work (the bogus embedder fails afterwards)
    assert "no score given: deita keeps rows in input order" in res.stderr


def test_cli_unknown_score_is_a_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d.jsonl", [{"id": "a", "instruction": "Name a fruit.",
                                             "scores": {"ifd": 0.5}}])  # fmt: skip
    out = tmp_path / "s"
    res = cli(str(data), "--out", str(out), "--score", "quality")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert "'quality'" in res.stderr and "scores present: ifd" in res.stderr
    assert not out.exists()


def test_cli_kept_zero_names_no_file_that_was_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli import app
    from tunesmith.stages import StageResult

    data = write_rows(tmp_path / "d.jsonl", [{"id": "a", "instruction": "Name a fruit."}])
    monkeypatch.setattr(SelectStage, "run", lambda self, records, llm=None: StageResult())
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["select", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "kept 0" in res.output and "of 1 rows" in res.output
    assert "kept.jsonl" not in res.output or (out / "kept.jsonl").exists()
