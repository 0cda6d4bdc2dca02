"""``tunesmith generate backtranslate`` and ``generate dynosaur`` as a user meets them (fake
backend), and both methods as recipe stages / through the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import shared_file
from tests.generate.test_backtranslation import write_docs
from tunesmith import registry
from tunesmith.cli import app

runner = CliRunner()


def test_generate_backtranslate_runs_and_writes_its_report(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    docs = write_docs(tmp_path / "docs.jsonl", 2)
    out = tmp_path / "run"
    args = ["generate", "backtranslate", str(docs), "--seeds", str(seeds), "--out", str(out),
            "--backend", "fake", "--examples", "2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # the fake never writes "Score: n": both pairs fail curation, none is kept
    assert (
        "3 documents -> 2 segments -> 2 instructions -> kept 0 rated >= 5 (4 calls" in result.output
    )
    assert (out / "report.html").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["method"] == "backtranslation"
        and manifest["config"]["params"]["num_examples"] == 2
    )
    again = runner.invoke(app, [*args, "--min-score", "4"])
    assert again.exit_code != 0 and "min_score" in str(again.exception)


def test_backtranslate_seed_is_the_rng_seed_and_errors_are_one_line(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", 1)
    proc = subprocess.run(
        [sys.executable, "-c", "from tunesmith.cli import main; main()", "generate",
         "backtranslate", str(docs), "--seeds", str(docs), "--seed", "data.json", "--out",
         str(tmp_path / "r"), "--backend", "fake"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: --seed is the RNG seed (an integer); give the seed data with --seeds"
    )
    assert not (tmp_path / "r").exists()
    help_text = runner.invoke(app, ["generate", "backtranslate", "--help"]).output
    assert "--seeds" in help_text and "--iterations" in help_text
    # every method with its own command is reached through `generate` (DiffTune's too)
    for method, option in (("dynosaur", "--card"), ("difftune", "--strategy")):
        assert option in runner.invoke(app, ["generate", method, "--help"]).output, method


def test_generate_dynosaur_on_the_dolly_folder(tmp_path: Path) -> None:
    folder = shared_file("dolly_3k_alpagasus", "dolly_3k.json").parent
    out = tmp_path / "run"
    result = runner.invoke(app, ["generate", "dynosaur", str(folder), "--out", str(out),
                                 "--backend", "fake", "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # the fake answers no JSON: both designs are rejected, nothing is produced
    assert "1 datasets, 0 tasks (2 invalid designs rejected), 0 rows" in result.output
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected] == ["broken JSON: no list or object in the reply"] * 2
    assert runner.invoke(app, ["generate", "sedi", "--help"]).exit_code == 0  # others unchanged


def test_registry_and_recipe_stages(tmp_path: Path) -> None:
    from tunesmith.llm.fake import FakeBackend
    from tunesmith.recipes import load_recipe, run_recipe

    assert registry.generators.key("backtranslate") == "backtranslation"
    assert registry.stages.key("backtranslate") == "instruction_predictor"
    dolly = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    rows = json.loads(dolly.read_text())[:4]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    (tmp_path / "recipe.yaml").write_text(
        f"data: data.json\nstages:\n  - backtranslate: {{seeds: {dolly}, num_examples: 2}}\n"
        "  - self_curation: {min_score: 4}\n"
    )

    def respond(request, sample):  # type: ignore[no-untyped-def]
        return "Instruction: Say it." if request.tag == "backtranslate" else "Good.\nScore: 4"

    run = run_recipe(load_recipe(tmp_path / "recipe.yaml"), out=tmp_path / "run",
                     backend=FakeBackend(responses=respond), report=False)  # fmt: skip
    kept = run.read_kept()
    assert [r.instruction for r in kept] == ["Say it."] * 4
    assert [r.meta["original_instruction"] for r in kept] == [r["instruction"] for r in rows]
    assert {r.scores["humpback_m0"] for r in kept} == {4}


def test_train_m1_needs_the_trainer(tmp_path: Path) -> None:
    import pytest

    from tunesmith.generate.backtranslation_run import training_available

    if training_available():
        pytest.skip("tunesmith train sft is installed: covered by the e2e training test")
    docs = write_docs(tmp_path / "docs.jsonl", 1)
    result = runner.invoke(app, ["generate", "backtranslate", str(docs), "--seeds", str(docs),
                                 "--out", str(tmp_path / "r"), "--backend", "fake",
                                 "--iterations", "2", "--train-m1"])  # fmt: skip
    assert result.exit_code != 0 and "--train-m1 needs 'tunesmith train sft'" in str(
        result.exception)  # fmt: skip
    assert not (tmp_path / "r").exists()
