"""``tunesmith train``: bad input and bad settings are one line, exit 2, nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


def _one_line_error(result: subprocess.CompletedProcess[str], start: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith(f"error: {start}")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_bad_rows_and_bad_settings_fail_before_a_run_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Hi.", "output": "Yo."}\n{"instruction": 3, "output": "x"}\n')
    out = tmp_path / "run"
    _one_line_error(_cli("train", "sft", str(bad), "--out", str(out)), f"{bad}:2:")
    good = tmp_path / "good.jsonl"
    good.write_text('{"instruction": "Hi.", "output": "Yo."}\n')
    _one_line_error(_cli("train", "sft", str(good), "--out", str(out), "--preset", "sdei"),
                    "unknown preset 'sdei'")  # fmt: skip
    _one_line_error(_cli("train", "sft", str(good), "--out", str(out), "--order", "random"),
                    "order must be one of shuffle, sequential")  # fmt: skip
    _one_line_error(_cli("train", "sedi-loop", "--out", str(out), "--batch-size", "6",
                         "--backend", "fake"), "batch size must be a power of two")  # fmt: skip
    assert not out.exists()


def test_trainers_are_registered_by_module_file() -> None:
    from tunesmith import registry

    assert registry.trainers.names() == ["sedi_loop", "sft"]
    assert registry.trainers.key("sedi-loop") == "sedi_loop"
    assert registry.trainers.get("sft").__name__ == "train_sft"
