"""SeDi-Instruct with and without its gradient-norm feedback, and Self-Instruct, on the embedded
model: same teacher, seeds, kept-row target and training recipe; each tuned model's loss on a
held-out split (the first ``--heldout`` rows of Self-Instruct's 252 user-oriented tasks).

Arms:
- ``sedi+feedback``: ``run_sedi_feedback`` (generation and training interleaved; every
  ``--every`` steps the highest grad-norm batch supplies seeds, the lowest-scoring are evicted);
- ``sedi``: the same loop with the feedback switched off (same diverse batches, no replacement);
- ``self-instruct``: Self-Instruct generation, then SFT on its kept rows for the same number of
  steps (rows in generation order, like the stream).

Run: ``TUNESMITH_THREADS=1 .venv/bin/python benchmarks/sedi_feedback.py [--n 32] [--write]``
(``--write`` replaces the "SeDi feedback loop vs none" section of BENCHMARKS.md). A fresh request
cache per run, so the calls are real. Minutes on one CPU thread; a 135M teacher and student make
this a plumbing-level comparison, not a quality claim.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("TUNESMITH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = Path(os.environ.get("TUNESMITH_SHARED_DATA", REPO.parent / "shared" / "data"))
HELDOUT = SHARED / "self_instruct_user_oriented_252"
SECTION = "SeDi feedback loop vs none"


def sft_config(a: argparse.Namespace) -> Any:
    from tunesmith.train.sft import SFTConfig

    return SFTConfig(batch_size=a.batch, max_steps=a.n // a.batch, max_length=a.max_length,
                     learning_rate=a.lr, save_steps=10**6, order="sequential")  # fmt: skip


def run_sedi(a: argparse.Namespace, out: Path, feedback: bool) -> dict[str, Any]:
    from tunesmith.generate.pipeline import DEMO_PARAMS
    from tunesmith.llm.factory import LLMConfig
    from tunesmith.train.feedback import FeedbackConfig
    from tunesmith.train.sedi_loop import run_sedi_feedback

    fb = FeedbackConfig(num_instructions=a.n, every=a.every if feedback else 10**9)
    s = run_sedi_feedback(
        out, llm_config=LLMConfig(backend="embedded", cache_path=str(out.parent / f"{out.name}.sqlite")),
        sft=sft_config(a), feedback=fb, gen_params=DEMO_PARAMS["sedi"], progress=False,
    )  # fmt: skip
    return {"kept": s["kept"], "calls": s["calls"], "steps": s["steps"],
            "replacements": s["seed_replacements"], "train_loss": s["final_loss"],
            "model": s["model_dir"]}  # fmt: skip


def run_self_instruct(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    from tunesmith.generate.pipeline import DEMO_PARAMS, run_generation
    from tunesmith.llm.factory import LLMConfig
    from tunesmith.train.sft import train_sft

    cfg = LLMConfig(backend="embedded", cache_path=str(out.parent / f"{out.name}.sqlite"))
    params = {**DEMO_PARAMS["self-instruct"], "num_instructions": a.n}
    run = run_generation("self-instruct", seeds=None, out=out / "gen", config=cfg, params=params)
    kept = [r for r in run.read_kept() if r.output.strip()]
    s = train_sft(kept, out / "train", sft_config(a), progress=False)
    calls = run.manifest.get("summary", {}).get("calls", 0)
    return {"kept": len(kept), "calls": calls, "steps": s["steps"], "replacements": 0,
            "train_loss": s["final_loss"], "model": s["model_dir"]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=32, help="kept rows per arm")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--heldout", type=int, default=40)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    from tunesmith.io import read_records
    from tunesmith.train.evaluate import heldout_loss
    from tunesmith.train.quiet import quiet_transformers

    quiet_transformers()
    held = read_records(HELDOUT / "user_oriented_instructions.jsonl")[: a.heldout]
    rows = {"base model": {"kept": 0, "calls": 0, "steps": 0, "replacements": 0,
                           "train_loss": None, "model": None}}  # fmt: skip
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (
            ("sedi+feedback", lambda o: run_sedi(a, o, True)),
            ("sedi (no feedback)", lambda o: run_sedi(a, o, False)),
            ("self-instruct", lambda o: run_self_instruct(a, o)),
        ):
            start = time.time()
            rows[name] = fn(Path(tmp) / name.split()[0].replace("+", "_"))
            rows[name]["minutes"] = (time.time() - start) / 60
            print(name, rows[name], flush=True)
        for r in rows.values():
            r["heldout"] = heldout_loss(r["model"], held, max_length=a.max_length)["loss"]
    text = table(a, rows, time.time() - t0)
    print(text)
    if a.write:
        from train import write_section  # benchmarks/train.py

        write_section(text, SECTION, "benchmarks/sedi_feedback.py")


def table(a: argparse.Namespace, rows: dict[str, dict[str, Any]], elapsed: float) -> str:
    head = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), 1 thread, {elapsed / 60:.0f} "
        f"min in all. Teacher and student: the embedded SmolLM2-135M-Instruct (llama.cpp Q4_1 for "
        f"generation, fp32 transformers for training). {a.n} kept rows per arm, batch {a.batch} "
        f"(= PCA-quadrant clusters), {a.n // a.batch} steps, lr {a.lr}, max length "
        f"{a.max_length}, feedback every {a.every} steps; held-out: the first {a.heldout} of "
        "Self-Instruct's 252 user-oriented tasks (loss per response token, nats)."
    )
    lines = [head, "", "| arm | kept | LLM calls | seed replacements | last train loss | "
             "held-out loss |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in rows.items():
        tl = "—" if r["train_loss"] is None else f"{r['train_loss']:.3f}"
        lines.append(f"| {name} | {r['kept']} | {r['calls']} | {r['replacements']} | {tl} | "
                     f"{r['heldout']:.4f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
