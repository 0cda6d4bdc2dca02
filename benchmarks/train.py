"""SFT throughput: tunesmith's trainer against a plain HF-Trainer script and a plain PyTorch loop.

All three train the same model on the same rows (the first ``--rows`` of the shared Alpaca 9K
sample, or the packaged seed tasks when it is absent), in the same order, with the same batch
size, sequence length, optimizer (AdamW, linear decay) and clipping; no packing (tunesmith does
not pack). Each variant runs in its own process so its peak memory is its own.

Throughput = non-pad tokens of steps 2..N / time from the end of step 1 to the end of step N (the
first step pays one-off allocation costs). Peak memory: the process's max RSS on CPU;
``torch.cuda.max_memory_allocated`` on CUDA.

Run: ``TUNESMITH_THREADS=1 .venv/bin/python benchmarks/train.py [--device cpu|cuda] [--write]``
(``--write`` replaces the "SFT training throughput" section of BENCHMARKS.md). On CUDA the
default model list adds a larger one (``--big-model``, an HF folder or cached id).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
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
SHARED = Path(os.environ.get("TUNESMITH_SHARED_DATA", REPO.parent / "shared" / "data"))
ALPACA = SHARED / "alpaca_random_9k" / "random_9k.json"
SECTION = "SFT training throughput"
VARIANTS = ("tunesmith", "hf_trainer", "torch_loop")


def load_rows(n: int) -> list[Any]:
    from tunesmith.generate.seeds import resolve_seeds_path
    from tunesmith.io import read_records

    path = ALPACA if ALPACA.exists() else resolve_seeds_path(None)
    return [r for r in read_records(path) if r.output.strip()][:n]


def examples(model: str | None, rows: list[Any], max_length: int) -> tuple[Any, list[Any]]:
    import transformers

    from tunesmith.llm.models import resolve_hf_model
    from tunesmith.train.data import encode_all, resolve_template

    tok = transformers.AutoTokenizer.from_pretrained(resolve_hf_model(model))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    exs, _ = encode_all(rows, tok, resolve_template("auto", tok), max_length)
    return tok, exs


def step_tokens(exs: list[Any], batch: int, steps: int) -> list[int]:
    return [sum(len(e.input_ids) for e in exs[i * batch : (i + 1) * batch]) for i in range(steps)]


def run_tunesmith(a: argparse.Namespace, rows: list[Any], out: Path) -> list[float]:
    from tunesmith.train.sft import SFTConfig, train_sft

    cfg = SFTConfig(
        model=a.model, batch_size=a.batch, max_steps=a.steps, max_length=a.max_length,
        order="sequential", save_steps=10**6, device=a.device, precision=a.precision,
    )  # fmt: skip
    train_sft(rows, out, cfg, progress=False)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return [float(r["t"]) for r in log]


def run_hf_trainer(a: argparse.Namespace, rows: list[Any], out: Path) -> list[float]:
    import transformers

    from tunesmith.llm.models import resolve_hf_model

    tok, exs = examples(a.model, rows, a.max_length)
    feats = [{"input_ids": e.input_ids, "labels": e.labels} for e in exs]
    model = transformers.AutoModelForCausalLM.from_pretrained(resolve_hf_model(a.model))
    times: list[float] = []

    class Clock(transformers.TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times.append(time.monotonic())

    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=a.batch, max_steps=a.steps,
        learning_rate=2e-5, warmup_steps=0.03, lr_scheduler_type="linear", max_grad_norm=1.0,
        train_sampling_strategy="sequential", logging_steps=10**6, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=a.device == "cpu",
        bf16=a.precision == "bf16",
    )  # fmt: skip
    collator = transformers.DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=feats, data_collator=collator, callbacks=[Clock()]
    )
    trainer.train()
    return times


def run_torch_loop(a: argparse.Namespace, rows: list[Any], out: Path) -> list[float]:
    import torch
    import transformers

    from tunesmith.llm.models import resolve_hf_model

    tok, exs = examples(a.model, rows, a.max_length)
    dev = "cuda" if a.device == "cuda" else "cpu"
    model = transformers.AutoModelForCausalLM.from_pretrained(resolve_hf_model(a.model)).to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (a.steps - s) / a.steps))
    times = []
    for step in range(a.steps):
        batch = exs[step * a.batch : (step + 1) * a.batch]
        width = max(len(e.input_ids) for e in batch)
        pad = int(tok.pad_token_id)
        ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in batch])
        labels = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in batch])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(e.input_ids) for e in batch])[:, None]).long()  # fmt: skip
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss  # fmt: skip
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if dev == "cuda":
            torch.cuda.synchronize()
        times.append(time.monotonic())
    return times


def child(a: argparse.Namespace) -> None:
    """Run one variant and print one JSON line: per-step times, tokens, peak memory."""
    import torch

    torch.set_num_threads(int(os.environ["TUNESMITH_THREADS"]))
    from tunesmith.train.quiet import quiet_transformers

    quiet_transformers()
    rows = load_rows(a.rows)
    _, exs = examples(a.model, rows, a.max_length)
    fn = {"tunesmith": run_tunesmith, "hf_trainer": run_hf_trainer, "torch_loop": run_torch_loop}
    with tempfile.TemporaryDirectory() as tmp:
        times = fn[a.variant](a, rows, Path(tmp) / "run")
    toks = step_tokens(exs, a.batch, a.steps)
    dt = times[-1] - times[0]
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if a.device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps({"variant": a.variant, "tok_s": sum(toks[1:]) / dt, "peak_mib": peak,
                      "step_s": dt / (len(times) - 1), "tokens": sum(toks)}))  # fmt: skip


def measure(a: argparse.Namespace, model: str | None) -> dict[str, dict[str, float]]:
    """Each variant ``--repeats`` times, interleaved (ABCABC) so a change in the shared
    machine's load hits all of them; the best tokens/s of each is kept."""
    out: dict[str, dict[str, float]] = {}
    for _ in range(a.repeats):
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", variant, "--device", a.device,
                   "--rows", str(a.rows), "--steps", str(a.steps), "--batch", str(a.batch),
                   "--max-length", str(a.max_length), "--precision", a.precision]  # fmt: skip
            if model:
                cmd += ["--model", model]
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            print(variant, got, flush=True)
            if variant not in out or got["tok_s"] > out[variant]["tok_s"]:
                out[variant] = got
    return out


def table(a: argparse.Namespace, model: str, res: dict[str, dict[str, float]]) -> str:
    ref = res["hf_trainer"]["tok_s"]
    lines = [
        f"Model `{model}`, {a.device} ({a.precision}), batch {a.batch}, max length {a.max_length}, "
        f"{a.steps} steps, {res['tunesmith']['tokens']} tokens, no packing; best of {a.repeats} "
        "interleaved runs per variant.",
        "",
        "| variant | tokens/s | s/step | peak memory (MiB) | vs plain Trainer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for v in VARIANTS:
        r = res[v]
        lines.append(f"| {v} | {r['tok_s']:.1f} | {r['step_s']:.3f} | {r['peak_mib']:.0f} | "
                     f"{r['tok_s'] / ref:.3f}x |")  # fmt: skip
    return "\n".join(lines)


def write_section(text: str, section: str = SECTION, script: str = "benchmarks/train.py") -> None:
    """Replace (or append) the ``## section`` of BENCHMARKS.md with ``text``."""
    path = REPO / "BENCHMARKS.md"
    doc = path.read_text(encoding="utf-8")
    block = f"## {section} (`{script}`)\n\n{text}\n"
    pattern = re.compile(rf"## {re.escape(section)}.*?(?=\n## |\Z)", re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: block.rstrip("\n"), doc)
    else:
        doc = doc.rstrip() + "\n\n" + block
    path.write_text(doc, encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--model", default=None, help="HF folder/id (default: embedded SmolLM2-135M)")
    p.add_argument("--big-model", default=None, help="on cuda, a second, larger model")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs; best is kept")
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    if a.variant:
        return child(a)
    models = [a.model] + ([a.big_model] if a.device == "cuda" and a.big_model else [])
    load = os.getloadavg()[0]
    head = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
            f"{platform.machine()}, {os.cpu_count()} CPUs, {os.environ['TUNESMITH_THREADS']} "
            f"torch thread(s), load average {load:.1f}.")  # fmt: skip
    parts = [head]
    for m in models:
        parts.append(table(a, m or "smollm2-135m-instruct (embedded)", measure(a, m)))
    text = "\n\n".join(parts)
    print(text)
    if a.write:
        write_section(text)


if __name__ == "__main__":
    main()
