"""``tunesmith generate difftune`` end to end on a tiny trained model, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app

FAST = ["--sampling-steps", "5", "--num-beams", "2", "--batch-size", "4"]


def rows(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def generate(model: Path, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["generate", "difftune", "--model", str(model), "--out",
                                      str(out), *FAST, *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def test_generate_keeps_n_with_responses_and_resumes(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    printed = generate(trained, out, "-n", "3", "--ppl-threshold", "1e9", "--backend", "fake")
    kept = rows(out / "kept.jsonl")
    assert len(kept) == 3 and "kept 3 of 3" in printed
    assert all(r["instruction"] and r["output"] for r in kept)
    assert all(r["meta"]["strategy"] == "high_variance" and "ppl" in r["scores"] for r in kept)
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["status"] == "done" and manifest["config"]["params"]["sampling"]["num_beams"] == 2
    )
    assert json.loads((out / "ledger.json").read_text())
    assert (out / "report.html").exists()
    rejected = rows(out / "rejected.jsonl")
    assert all(r["rejected_by"] == "duplicate" for r in rejected)  # only repeats are dropped
    generate(trained, out, "-n", "3", "--ppl-threshold", "1e9", "--backend", "fake")
    assert rows(out / "kept.jsonl") == kept  # a rerun resumes and adds nothing


def test_perplexity_filter_rejects_with_the_score_and_resamples(
    trained: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    generate(
        trained,
        out,
        "-n",
        "2",
        "--ppl-threshold",
        "1",
        "--max-rounds",
        "2",
        "--no-respond",
        "--no-report",
    )
    assert not rows(out / "kept.jsonl")
    rejected = [r for r in rows(out / "rejected.jsonl") if r["rejected_by"] == "ppl"]
    assert rejected and all(r["score"] > 1 and r["scores"]["ppl"] == r["score"] for r in rejected)
    assert {r["meta"]["round"] for r in rejected} == {0, 1}  # resampled once more
    assert json.loads((out / "state.json").read_text())["round"] == 2


def test_strategies_and_novelty(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    generate(trained, out, "-n", "2", "--strategy", "student_t", "--ppl-threshold", "1e9",
             "--novelty", "0.0", "--sampler", "ddim", "--no-respond", "--no-report")  # fmt: skip
    kept = rows(out / "kept.jsonl")
    # novelty 0.0 keeps only instructions sharing no word with earlier kept ones
    assert kept and all(r["meta"]["strategy"] == "student_t" for r in kept)
    assert all(r["rejected_by"] in ("novelty", "duplicate") for r in rows(out / "rejected.jsonl"))


def test_bad_options_are_one_line_errors(trained: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "difftune", "-m", str(tmp_path), "-o",
                                      str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code != 0 and "not a trained DiffTune model" in str(result.exception)
    result = CliRunner().invoke(app, ["generate", "difftune", "-m", str(trained), "-o",
                                      str(tmp_path / "r"), "--strategy", "uniform"])  # fmt: skip
    assert result.exit_code != 0 and "unknown noise strategy" in str(result.exception)


@pytest.mark.integration
def test_responses_from_the_embedded_model(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    generate(trained, out, "-n", "2", "--ppl-threshold", "1e9", "--max-tokens", "48")
    kept, rejected = rows(out / "kept.jsonl"), rows(out / "rejected.jsonl")
    assert (
        len(kept)
        + len([r for r in rejected if r["rejected_by"] in ("respond", "invalid_response")])
        == 2
    )
    assert all(r["output"].strip() for r in kept)


def test_registered_as_a_generator() -> None:
    from tunesmith import registry
    from tunesmith.generate.diff_tune import DiffTune

    assert registry.generators.get("difftune") is DiffTune
