"""A training run killed with SIGKILL mid-epoch, rerun with the same command, ends like an
uninterrupted run (tolerance 1e-6 on every step's loss: CPU fp32 replays the same arithmetic)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tunesmith.io import read_records
from tunesmith.train.sft import SFTConfig, train_sft

REPO = Path(__file__).resolve().parents[2]
STEPS = 16


def _cli(tiny_model: Path, rows_file: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "tunesmith", "train", "sft", str(rows_file), "--out", str(out),
        "--model", str(tiny_model), "--max-steps", str(STEPS), "--batch-size", "5",
        "--max-length", "48", "--save-steps", "4", "--lr", "1e-3", "--seed", "5",
    ]  # fmt: skip


def _losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows]


@pytest.mark.integration
def test_sigkill_mid_epoch_then_rerun_matches_an_uninterrupted_run(
    tiny_model: Path, rows_file: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TUNESMITH_THREADS": "1"}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(tiny_model, rows_file, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + 300
    # 12 rows / batch 5 = 3 steps per epoch: step 7 is mid-epoch, after the step-4 checkpoint
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 7:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_losses(out))
    assert killed_at < STEPS
    assert not (out / "model").exists()

    done = subprocess.run(_cli(tiny_model, rows_file, out), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = _losses(out)

    cfg = SFTConfig(
        model=str(tiny_model), batch_size=5, max_steps=STEPS, max_length=48, save_steps=4,
        learning_rate=1e-3, seed=5,
    )  # fmt: skip
    train_sft(read_records(rows_file), tmp_path / "straight", cfg, data_source=str(rows_file))
    straight = _losses(tmp_path / "straight")
    assert [s for s, _ in resumed] == list(range(1, STEPS + 1))  # every step logged once
    for (_, a), (_, b) in zip(resumed, straight, strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert any(e.get("resumed_from_step", 0) >= 4 for e in events)
