"""``tunesmith dedup`` through the real command line, on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rouge_score import rouge_scorer

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

ROWS = [
    {"id": "r1", "instruction": "Give three tips for staying healthy.", "output": "Eat well."},
    {"id": "r2", "instruction": "Give 3 tips for staying healthy!", "output": "Sleep."},
    {"id": "r3", "instruction": "Name the largest river in Africa.", "output": "The Nile."},
    {"id": "r4", "instruction": "Classify the sentiment of this review.", "input": "Great!"},
    {"id": "r5", "instruction": "List five rivers of South America.", "output": "Amazon."},
]
SEEDS = [
    {
        "id": "seed_task_0",
        "name": "sentiment",
        "instruction": "Classify the sentiment of the review.",
        "instances": [{"input": "Awful food.", "output": "Negative"}],
        "is_classification": True,
    }
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dedup_writes_kept_rejected_and_summary(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "data.jsonl", ROWS)
    seeds = _write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    out = tmp_path / "out"
    result = _cli("dedup", str(data), "--threshold", "0.7", "--out", str(out), "--pool", str(seeds))
    assert result.returncode == 0, result.stderr
    assert "kept 3, rejected 2, failed 0" in result.stdout
    assert (out / "report.html").exists(), "dedup writes its report like every run command"
    kept = _jsonl(out / "kept.jsonl")
    assert [r["id"] for r in kept] == ["r1", "r3", "r5"]
    assert kept[0]["scores"]["rouge_l_max"] == 0.0
    rejected = {r["id"]: r for r in _jsonl(out / "rejected.jsonl")}
    assert set(rejected) == {"r2", "r4"}
    r2 = rejected["r2"]
    assert r2["rejected_by"] == "novelty" and r2["meta"]["rouge_l_nearest"] == "r1"
    assert (
        r2["score"]
        == SCORER.score(ROWS[1]["instruction"], ROWS[0]["instruction"])["rougeL"].fmeasure
    )
    assert "vs r1" in r2["reason"]
    assert "vs pool[0]" in rejected["r4"]["reason"]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"] == 5 and summary["kept"] == 3 and summary["rejected"] == 2
    assert summary["threshold"] == 0.7 and summary["pool"] == 1 and summary["elapsed_s"] >= 0


def test_dedup_top_k_and_other_field(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "data.jsonl", ROWS)
    out = tmp_path / "out"
    result = _cli("dedup", str(data), "--out", str(out), "--field", "output", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    kept = _jsonl(out / "kept.jsonl")
    assert len(kept[1]["scores"]["rouge_l_top"]) == 1 and "rouge_l_mean" in kept[1]["scores"]


def test_bad_input_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{"instruction": 3}\n', encoding="utf-8")
    result = _cli("dedup", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "bad.jsonl:2" in result.stderr and "instruction" in result.stderr


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "data.jsonl", ROWS)
    for args in (["--threshold", "1.5"], ["--field", "title"], ["--top-k", "-1"]):
        result = _cli("dedup", str(data), "--out", str(tmp_path / "o"), *args)
        assert result.returncode != 0, args
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "data.jsonl", [ROWS[0], {**ROWS[2], "id": "r1"}])
    result = _cli("dedup", str(data), "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "duplicate id 'r1'" in result.stderr


def test_dedup_mode_minhash_end_to_end_and_in_the_resume_guard(tmp_path: Path) -> None:
    """The approximate mode on real files: same rows as exact here (near-duplicates LSH always
    proposes), the mode in summary and manifest, and a folder of one mode refuses the other."""
    data = _write_jsonl(tmp_path / "data.jsonl", ROWS)
    seeds = _write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    runs = {}
    for mode in ("exact", "minhash"):
        out = tmp_path / mode
        args = ("dedup", str(data), "--out", str(out), "--pool", str(seeds), "--mode", mode)
        result = _cli(*args)
        assert result.returncode == 0, result.stderr
        assert f"threshold 0.7, {mode}," in result.stdout
        runs[mode] = out
    assert _jsonl(runs["minhash"] / "rejected.jsonl") == _jsonl(runs["exact"] / "rejected.jsonl")
    kept = {m: _jsonl(runs[m] / "kept.jsonl") for m in runs}
    assert [r["id"] for r in kept["minhash"]] == [r["id"] for r in kept["exact"]]
    for approx, exact in zip(kept["minhash"], kept["exact"], strict=True):
        # a kept row's max is over the proposed pairs only: a lower bound of the exact max
        assert approx["scores"]["rouge_l_max"] <= exact["scores"]["rouge_l_max"]
    summary = json.loads((runs["minhash"] / "summary.json").read_text(encoding="utf-8"))
    assert summary["mode"] == "minhash" and summary["rejected"] == 2
    manifest = json.loads((runs["minhash"] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["mode"] == "minhash"
    again = _cli("dedup", str(data), "--out", str(runs["minhash"]), "--pool", str(seeds))
    assert again.returncode != 0 and "different" in again.stderr and "Traceback" not in again.stderr
    bad = _cli("dedup", str(data), "--out", str(tmp_path / "bad"), "--mode", "fuzzy")
    assert bad.returncode != 0 and "unknown novelty mode 'fuzzy'" in bad.stderr


def test_recipe_dedup_mode_minhash_runs_and_bad_mode_names_the_line(tmp_path: Path) -> None:
    rows = [
        *ROWS,
        {"id": "r6", "instruction": "GIVE THREE TIPS FOR STAYING HEALTHY", "output": "."},
    ]
    _write_jsonl(tmp_path / "data.jsonl", rows)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data: data.jsonl\nstages:\n  - dedup:\n      mode: minhash\n")
    result = _cli("run", str(recipe), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    kept = [r["id"] for r in _jsonl(tmp_path / "run" / "kept.jsonl")]
    assert kept == ["r1", "r3", "r4", "r5"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["stages"] == [{"dedup": {"mode": "minhash"}}]
    recipe.write_text("data: data.jsonl\nstages:\n  - dedup:\n      mode: fuzzy\n")
    bad = _cli("run", str(recipe), "--out", str(tmp_path / "run2"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "recipe.yaml:3" in bad.stderr and "unknown novelty mode 'fuzzy'" in bad.stderr
