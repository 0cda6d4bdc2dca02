"""Dynosaur's cost headline: LLM calls, tokens and dollars per 1,000 instruction rows produced.

Dynosaur (Yin et al. 2023) pays the LLM per dataset (task design from metadata), not per row, and
reports under $12 for 800K rows (about $0.015 per 1,000). This runs ``tunesmith generate
dynosaur`` over a folder of real datasets (default: ../shared/data: Alpaca 9K, Dolly 3K and the
two Self-Instruct task files) with a fresh request cache, so every design call is really made, and
prints per dataset and in total: design calls, tasks kept / designs rejected, rows produced, and
tokens and USD per 1,000 rows. Dollars use ``--prices`` (USD per 1M tokens for the model name;
the default table prices the embedded model at gpt-3.5-turbo's $0.50 / $1.50, as an illustration:
the tokens are counted by SmolLM2's tokenizer).

SmolLM2-135M cannot design tasks (it echoes sample rows or loops), so it produces no rows. To
measure rows and cost per 1,000 rows as a capable teacher would see them, ``--scripted`` replaces
the model by a scripted designer (the fake backend) that answers every real prompt with three
valid tasks built from the dataset's fields (first field -> last, first two -> last, last ->
first); its tokens are the fake's estimate (characters / 4), priced by the same table, and the
rows are really produced by applying those tasks to the real datasets.

    .venv/bin/python benchmarks/dynosaur_cost.py --out /tmp/dynosaur_cost --fresh
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from pathlib import Path

from tunesmith.generate.dynosaur_run import run_dynosaur
from tunesmith.llm.base import Request
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.llm.models import EMBEDDED_MODEL

DATA = Path(os.environ.get("TUNESMITH_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))  # fmt: skip


def scripted_designer() -> FakeBackend:
    """Three valid tasks from the fields named in the prompt (see the module doc)."""

    def respond(request: Request, sample: int) -> str:
        target = (request.messages or ())[-1]["content"].split("Now the dataset")[-1]
        fields = re.search(r"^Fields: (.*)$", target, re.M).group(1).split(", ")  # type: ignore[union-attr]
        first, last = fields[0], fields[-1]
        tasks = [([first], last), (fields[:2], last), ([last], first)]
        return json.dumps([{"instruction": f"Given the {' and '.join(i)}, write the {o}.",
                            "input_fields": i, "output_field": o}
                           for i, o in tasks if o not in i])  # fmt: skip

    return FakeBackend(responses=respond)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="/tmp/tunesmith_dynosaur_cost")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--model", default=None)
    ap.add_argument("--prices", default=None, help="price table YAML (default: see module doc)")
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--scripted", action="store_true", help="a scripted designer (see above)")
    ap.add_argument("--fresh", action="store_true", help="delete --out first")
    args = ap.parse_args()
    work = Path(args.out)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    prices = args.prices
    if prices is None:
        prices = str(work / "prices.yaml")
        Path(prices).write_text(f"{args.model or EMBEDDED_MODEL}: {{input: 0.5, output: 1.5}}\n")
    backend = scripted_designer() if args.scripted else None
    if args.scripted:
        args.backend, args.model = "fake", "fake-model"
        Path(prices).write_text("fake-model: {input: 0.5, output: 1.5}\n")
    config = LLMConfig(backend=args.backend, model=args.model, cache_path=str(work / "cache.sqlite"),
                       prices_path=prices,
                       options={"threads": 1} if args.backend == "embedded" else {})  # fmt: skip
    start = time.perf_counter()
    run = run_dynosaur(args.data, out=work / "run", config=config,
                       params={"max_tokens": args.max_tokens}, backend=backend)  # fmt: skip
    wall = time.perf_counter() - start
    tasks = json.loads((run.path / "tasks.json").read_text())
    print("| dataset | rows in | licence | design calls | tasks valid / rejected | rows produced |"
          " tokens | USD |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, e in tasks.items():
        tokens = e["prompt_tokens"] + e["completion_tokens"]
        print(f"| {name} | {e['rows']} | {e['license'] or '-'} | {e['design_calls']} | "
              f"{len(e['tasks'])} / {e['invalid']} | {e.get('produced', 0)} | {tokens} | "
              f"{e['cost_usd']:.5f} |")  # fmt: skip
    s = run.manifest["summary"]
    print(f"\ntotal: {s['datasets']} datasets, {s['tasks']} tasks, {s['invalid_designs']} designs "
          f"rejected, {s['rows_produced']} rows produced, {s['design_calls']} calls, "
          f"${s['cost_usd']:.5f}; per 1,000 rows: {s['calls_per_1000_rows']} calls, "
          f"{s['tokens_per_1000_rows']} tokens, ${s['usd_per_1000_rows']:.6f}; wall {wall:.0f} s")  # fmt: skip
    (work / "cost.json").write_text(json.dumps({"summary": s, "datasets": tasks}, indent=2))


if __name__ == "__main__":
    main()
