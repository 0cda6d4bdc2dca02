"""Training a tiny DiffTune model on CPU: reconstruction floor, loss falls, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.errors import ConfigError
from tunesmith.generate.diff_tune.config import DiffTuneConfig
from tunesmith.generate.diff_tune.sample import load_model
from tunesmith.generate.diff_tune.train import batch_ids, read_log, train_difftune

from .conftest import CORPUS, OVERRIDES, config, records


def test_autoencoder_reconstructs_its_training_sentences(trained: Path) -> None:
    model = load_model(trained)
    ids, attn = batch_ids(model.tokenizer, CORPUS, 64)
    with torch.no_grad():
        z, mask = model.ae.encode(ids, attn)
        out = model.ae.generate(z, mask, num_beams=1, do_sample=False, max_length=64)
    texts = [t.strip() for t in model.tokenizer.batch_decode(out, skip_special_tokens=True)]
    exact = sum(a == b for a, b in zip(texts, CORPUS, strict=True)) / len(CORPUS)
    assert exact >= 0.75, list(zip(texts, CORPUS, strict=True))


def test_denoiser_loss_decreases(trained: Path) -> None:
    losses = [r["loss"] for r in read_log(trained) if r["phase"] == "denoiser"]
    assert len(losses) == 80
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first, (first, last)
    rows = read_log(trained)
    assert {"phase", "step", "loss", "lr", "grad_norm"} <= set(rows[0])
    assert [r["step"] for r in rows if r["phase"] == "autoencoder"] == list(range(1, 241))


def test_killed_training_resumes_to_the_same_weights(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in CORPUS))
    sets = [f"--set={k}={v}" for k, v in OVERRIDES.items()]
    args = [sys.executable, "-m", "tunesmith", "train", "difftune", str(data), "--out", str(out),
            "--preset", "tiny", *sets]  # fmt: skip
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while not list((out / "checkpoints").glob("denoiser-*.pt")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(r["step"] for r in read_log(out) if r["phase"] == "denoiser")
    assert killed_at < 80
    train_difftune(records(), out, config(), data_source=str(data), progress=False)
    steps = [r["step"] for r in read_log(out) if r["phase"] == "denoiser"]
    assert steps == list(range(1, 81))  # the steps after the checkpoint were redone once
    a = load_file(str(trained / "model" / "denoiser.safetensors"))
    b = load_file(str(out / "model" / "denoiser.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    ref = [r["loss"] for r in read_log(trained) if r["phase"] == "denoiser"]
    got = [r["loss"] for r in read_log(out) if r["phase"] == "denoiser"]
    assert got == ref


def test_resume_refuses_another_config(trained: Path) -> None:
    with pytest.raises(ConfigError, match="steps"):
        train_difftune(records(), trained, DiffTuneConfig.from_preset("tiny", **{**OVERRIDES, "steps": 81}),
                       data_source="corpus", progress=False)  # fmt: skip


def test_denoiser_settings_may_change_before_its_first_checkpoint(
    trained: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    shutil.rmtree(out / "checkpoints")
    (out / "model" / "denoiser.safetensors").unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["summary"] = {}
    (out / "manifest.json").write_text(json.dumps(manifest))
    cfg = DiffTuneConfig.from_preset("tiny", **{**OVERRIDES, "steps": 5, "dim": 32})
    summary = train_difftune(records(), out, cfg, data_source="corpus", progress=False)
    assert summary["steps"] == 5
    assert json.loads((out / "manifest.json").read_text())["config"]["dim"] == 32
    with pytest.raises(ConfigError, match="steps"):  # once the denoiser has a checkpoint: no
        train_difftune(records(), out, DiffTuneConfig.from_preset("tiny", **{**OVERRIDES, "steps": 6, "dim": 32}),
                       data_source="corpus", progress=False)  # fmt: skip
