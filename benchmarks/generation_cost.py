"""Generation methods compared: LLM calls, tokens and cost per kept instruction.

Runs the Alpaca-style generator, SeDi-Instruct and Self-Instruct with the same model, seeds, target
kept size and budget and prints the table of ``tunesmith compare-generators`` (definitions in
:mod:`tunesmith.generate.compare`). SeDi-Instruct reports 36% fewer API calls than the
Alpaca-style generator at 10K kept instructions (GPT-3.5); this measures ours on whatever backend
is given (default: the embedded SmolLM2, offline).

    .venv/bin/python benchmarks/generation_cost.py --num-instructions 40 --out /tmp/gencost
"""

from __future__ import annotations

import argparse
import shutil
import time

from tunesmith.generate.compare import compare_methods, format_table
from tunesmith.llm.factory import LLMConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-instructions", type=int, default=40)
    ap.add_argument("--out", default="/tmp/tunesmith_generation_cost")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--model", default=None)
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--instance-max-tokens", type=int, default=150)
    ap.add_argument("--fresh", action="store_true", help="delete --out first")
    args = ap.parse_args()
    if args.fresh:
        shutil.rmtree(args.out, ignore_errors=True)
    shared = {"prompts_per_batch": 5, "max_tokens": args.max_tokens, "seed": 42}
    config = LLMConfig(
        backend=args.backend,
        model=args.model,
        options={"threads": 1} if args.backend == "embedded" else {},
    )
    start = time.perf_counter()
    rows = compare_methods(
        args.out,
        seeds=None,
        config=config,
        num_instructions=args.num_instructions,
        params={
            "self-instruct": {**shared, "instance_max_tokens": args.instance_max_tokens},
            "alpaca": shared,
            "sedi": shared,
        },
    )
    print(format_table(rows))
    by = {r["method"]: r for r in rows}
    si, sedi = by["self-instruct"], by["sedi"]
    if si["calls_per_kept"] and sedi["calls_per_kept"] is not None:
        ratio = sedi["calls_per_kept"] / si["calls_per_kept"]
        print(f"SeDi calls per kept / Self-Instruct calls per kept: {ratio:.2f}")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
