"""The report's training section: loss / grad-norm / lr curves and the SeDi seed history."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.report.build import write_run_report
from tunesmith.runs import RunDir
from tunesmith.train.report import training_context


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_report_plots_the_training_log_and_lists_seed_replacements(tmp_path: Path) -> None:
    run = RunDir.open(tmp_path / "run", method="sedi-feedback", config={})
    log = [
        {"step": s, "loss": 3.0 - 0.1 * s, "lr": 2e-5, "grad_norm": 1.0 + s % 3}
        for s in range(1, 21)
    ]
    _jsonl(run.path / "train_log.jsonl", log)
    history = [{
        "step": 20, "chosen_step": 14, "grad_norm": 3.0,
        "added": [{"id": "fb-x", "instruction": "Plan a picnic for a rainy day."}],
        "evicted": [{"id": "s1", "instruction": "Name a fruit.", "seed_gen": 9, "seed_kept": 1}],
    }]  # fmt: skip
    _jsonl(run.path / "seed_history.jsonl", history)
    ctx = training_context(run.path)
    assert len(ctx["training_svgs"]) == 3 and "<svg" in str(ctx["training_svgs"][0])
    assert ctx["seed_history"][0]["evicted"] == ["Name a fruit. (1/9)"]
    html = write_run_report(run.path, metrics="none").read_text(encoding="utf-8")
    assert 'id="training"' in html and "Plan a picnic for a rainy day." in html
    assert "loss by step" in html and "grad norm by step" in html


def test_runs_without_training_show_no_training_section(tmp_path: Path) -> None:
    run = RunDir.open(tmp_path / "run", method="alpaca", config={})
    assert training_context(run.path) == {"training_svgs": [], "seed_history": []}
    assert 'id="training"' not in write_run_report(run.path, metrics="none").read_text()
