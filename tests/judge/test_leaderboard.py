"""The leaderboard: LC refits with the other models' difficulty, escaping, difficulty files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tunesmith.errors import DataError
from tunesmith.judge.evaluate import read_difficulty, summarize
from tunesmith.judge.leaderboard import matrix, refit_lc, render


def _rows(model: str, prefs: list[float], rng: np.random.Generator) -> list[dict]:  # type: ignore[type-arg]
    return [
        {"id": f"{model}{i}", "instruction": f"q{i}", "input": "", "generator": model,
         "baseline": "base", "judge": "j", "preference": p, "outcome": None, "category": "c",
         "model_output": "x" * int(rng.integers(10, 500)), "baseline_output": "y" * 100,
         "calls": [{"model_is_second": True, "pref_second": p, "scores": [], "reason": "",
                    "text": "<script>window.__x=1</script> [[B]]"}]}
        for i, p in enumerate(prefs)
    ]  # fmt: skip


def _entries() -> list[dict]:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    out = []
    for model in ("a", "b", "c"):
        prefs = [float(rng.choice([1.0, 1.5, 2.0])) for _ in range(40)]
        rows = _rows(model, prefs, rng)
        out.append({"folder": model, "summary": summarize(rows), "rows": rows})
    return out


def test_leaderboard_refits_lc_with_the_other_models_difficulty() -> None:
    entries = _entries()
    before = [e["summary"]["lc_win_rate"] for e in entries]
    refit_lc(entries)
    assert all(e["summary"]["lc_difficulty"] == "other models' judgments" for e in entries)
    assert [e["summary"]["lc_win_rate"] for e in entries] != before
    grid = matrix(entries)
    assert grid["models"] == ["a", "b", "c"] and grid["columns"] == ["j vs base"]


def test_leaderboard_escapes_everything_a_model_wrote() -> None:
    entries = _entries()
    entries[0]["rows"][0]["model_output"] = "<img src=x onerror=alert(1)>"
    page = render(entries)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>window.__x" not in page


def test_difficulty_files(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps({"q0": 1.5, "q1": -0.5}))
    assert read_difficulty(tmp_path / "d.json") == {"q0": 1.5, "q1": -0.5}
    (tmp_path / "d.jsonl").write_text(
        '{"instruction": "q0", "difficulty": 2}\n{"instruction": "q1"}\n'
    )
    with pytest.raises(DataError, match=r"d\.jsonl:2"):
        read_difficulty(tmp_path / "d.jsonl")
    rows = _entries()[0]["rows"]
    given = summarize(rows, difficulty={f"q{i}": (i % 5) - 2.0 for i in range(40)})
    assert given["lc_glm"]["difficulty"] == "given"
    assert given["lc_win_rate"] != summarize(rows)["lc_win_rate"]
