"""End to end with the embedded SmolLM2: it trains and reloads in the transformers backend; it
teaches the SeDi loop (llama.cpp), whose seeds change through the gradient-norm rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tunesmith.io import read_records
from tunesmith.llm.base import Request, SamplingParams
from tunesmith.llm.transformers import TransformersBackend
from tunesmith.train.sft import SFTConfig, train_sft

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_embedded_model_trains_and_the_output_loads_in_the_transformers_backend(
    rows_file: Path, tmp_path: Path
) -> None:
    cfg = SFTConfig(batch_size=2, max_steps=2, max_length=64, save_steps=100, learning_rate=1e-4)
    summary = train_sft(read_records(rows_file)[:4], tmp_path / "run", cfg, progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["grad_norm"] > 0 for r in log)
    assert summary["final_loss"] < 10  # a pretrained model, not random weights
    backend = TransformersBackend(model=summary["model_dir"], threads=1)
    got: dict[int, list] = {}
    greedy = SamplingParams(temperature=0, max_tokens=4)
    backend.complete([Request.chat([{"role": "user", "content": "Count to 3."}], greedy)],
                     lambda i, c: got.__setitem__(i, c))  # fmt: skip
    assert got[0][0].completion_tokens > 0 and got[0][0].text
    assert len(backend.score_continuation("One, two,", " three")) >= 1


@pytest.mark.integration
def test_sedi_loop_with_the_embedded_teacher_replaces_a_seed_by_grad_norm(
    tiny_model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    out = tmp_path / "loop"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TUNESMITH_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "tunesmith", "train", "sedi-loop", "--out", str(out),
        "-n", "10", "--every", "2", "--batch-size", "2", "--max-steps", "5",
        "--max-tokens", "250", "--train-model", str(tiny_model), "--max-length", "96",
        "--lr", "1e-3", "--save-steps", "3",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seed replacements" in done.stdout
    history = [json.loads(x) for x in (out / "seed_history.jsonl").read_text().splitlines()]
    steps = {
        r["step"]: r["ids"]
        for r in (json.loads(x) for x in (out / "step_rows.jsonl").read_text().splitlines())
    }
    assert history and history[0]["step"] == 4 and history[0]["added"]
    h = history[0]
    assert h["chosen_step"] in (3, 4) and h["batch"] == steps[h["chosen_step"]]
    live = {r["id"] for r in json.loads((out / "seed_scores.json").read_text())}
    assert {a["id"] for a in h["added"]} & live and not {e["id"] for e in h["evicted"]} & live
