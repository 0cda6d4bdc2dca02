"""``tunesmith generate`` / ``compare`` as a user meets them (fake backend: fast, offline)."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.errors import TunesmithError

runner = CliRunner()


def test_generate_with_the_fake_backend_and_the_original_seed_file(tmp_path, seed_tasks_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "generate",
            "alpaca",
            "--out",
            str(out),
            "-n",
            "2",
            "--backend",
            "fake",
            "--seeds",
            str(seed_tasks_path),
            "--max-rounds",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "alpaca: kept 0 instructions from 0 generated, 10 calls" in result.output
    assert "(0 for 2 asked: stopped after 2 rounds, the last 2 keeping nothing new" in result.output
    rejected = len((out / "rejected.jsonl").read_text().splitlines())
    assert f"kept 0, rejected {rejected}, failed 0 -> {out}" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seeds"] == str(seed_tasks_path) and manifest["status"] == "done"
    assert manifest["summary"]["calls"] == 10  # 2 rounds x 5 prompts: the fake never yields a task


def test_one_line_errors_and_no_run_folder(tmp_path):
    for args, message in (
        (["generate", "self-instrct"], "did you mean 'self-instruct'"),
        (["generate", "sedi", "--seeds", str(tmp_path / "none.jsonl")], "no such file"),
        (["generate", "self-instruct", "--num-tasks", "3"], "does not apply to self-instruct"),
    ):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--backend", "fake"])
        assert isinstance(result.exception, TunesmithError) and message in str(result.exception)
    assert not (tmp_path / "o").exists()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunesmith",
            "generate",
            "sedi",
            "--out",
            str(tmp_path / "o"),
            "--backend",
            "fake",
            "--seeds",
            str(tmp_path / "none.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "none.jsonl" in proc.stderr


def test_commands_have_help():
    for name in ("generate", "demo", "compare"):
        assert runner.invoke(app, [name, "--help"]).exit_code == 0
