"""Instruction backtranslation, checked offline: can the backward model recover real instructions?

Human-written (instruction, output) pairs stand in for web text: the outputs of a sample of Dolly
3K and Alpaca 9K rows (rows without a separate input, whose instruction is the whole request) are
the "unlabelled" documents; the rest of Dolly 3K are the seed pairs (the sampled rows are removed
from the seeds, so no target is ever shown as a few-shot example). ``tunesmith generate
backtranslate`` predicts an instruction per document; each prediction is compared with the real
one by ROUGE-L F (``tunesmith.filters.rouge``, equal to ``rouge-score``) and by the cosine of
the packaged MiniLM embeddings. Two references in the same run frame the numbers:

- **shuffled**: each real instruction against another row's real instruction (chance level);
- **lead sentence**: the document's first sentence used as the instruction (copying, no model).

The seed model then rates every pair on the Humpback rubric (``--iterations 0`` skips that).

    .venv/bin/python benchmarks/backtranslation_recovery.py --n 24 --out /tmp/bt_recovery
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.embeddings import embed
from tunesmith.filters.rouge import rouge_l_f, rouge_tokenize
from tunesmith.generate.backtranslation_run import run_backtranslation
from tunesmith.llm.factory import LLMConfig

DATA = Path(os.environ.get("TUNESMITH_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))  # fmt: skip
SOURCES = {
    "dolly_3k": "dolly_3k_alpagasus/dolly_3k.json",
    "alpaca_9k": "alpaca_random_9k/random_9k.json",
}


def sample_rows(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows without an input and with an output of 80+ characters, seeded."""
    rows = [r | {"row": i} for i, r in enumerate(json.loads(path.read_text()))]
    usable = [r for r in rows if not r["input"].strip() and len(r["output"]) >= 80]
    return random.Random(seed).sample(usable, n)


def lead_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


def scores(pred: list[str], real: list[str]) -> dict[str, float]:
    rouge = [
        rouge_l_f(rouge_tokenize(r), rouge_tokenize(p)) for p, r in zip(pred, real, strict=True)
    ]
    a, b = embed(pred), embed(real)
    cos = np.sum(a * b, axis=1)
    return {"rouge_l": round(float(np.mean(rouge)), 4), "cosine": round(float(np.mean(cos)), 4)}


def reasons(run_path: Path) -> dict[str, int]:
    """Why the last curation round dropped pairs (score below k, or no parseable score)."""
    path = run_path / "rejected.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    out: dict[str, int] = {}
    for row in rows:
        if row["rejected_by"].startswith("curate"):
            key = row["reason"].split(":")[0].split(" (")[0]
            out[key] = out.get(key, 0) + 1
    return out


def run_source(name: str, args: argparse.Namespace, seeds: Path, work: Path) -> dict[str, Any]:
    rows = sample_rows(DATA / SOURCES[name], args.n, args.seed)
    docs = work / f"{name}_docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"text": r["output"], "row": r["row"]}) + "\n" for r in rows)
    )
    config = LLMConfig(backend=args.backend, model=args.model, cache_path=str(work / "cache.sqlite"),
                       options={"threads": 1} if args.backend == "embedded" else {})  # fmt: skip
    params = {"min_chars": 1, "max_chars": 100_000, "min_line_chars": 0, "num_examples": 3,
              "judge_max_tokens": 256, "seed": args.seed, "iterations": args.iterations}  # fmt: skip
    start = time.perf_counter()
    run = run_backtranslation(docs, seeds=seeds, out=work / name, config=config, params=params)
    wall = time.perf_counter() - start
    by_row = dict(enumerate(rows))  # a document's meta["row"] is its line in the docs file
    preds = [json.loads(x) for x in (run.path / "augment" / "kept.jsonl").read_text().splitlines()]
    real = [by_row[p["meta"]["row"]]["instruction"] for p in preds]
    predicted = [p["instruction"] for p in preds]
    shuffled = real[1:] + real[:1]
    lead = [lead_sentence(by_row[p["meta"]["row"]]["output"]) for p in preds]
    summary = json.loads((run.path / "backtranslation.json").read_text())
    return {
        "source": name, "documents": len(rows), "predicted": len(preds),
        "backtranslated": scores(predicted, real), "shuffled": scores(shuffled, real),
        "lead_sentence": scores(lead, real), "kept_a5": summary["augmented_kept"],
        "calls": summary["calls"], "model_s": round(summary["latency_s"], 1),
        "wall_s": round(wall, 1), "curation_reasons": reasons(run.path),
        "examples": [{"real": r, "predicted": p} for r, p in list(zip(real, predicted, strict=True))[:4]],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="documents per source")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="/tmp/tunesmith_bt_recovery")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--model", default=None)
    ap.add_argument("--iterations", type=int, default=1, help="curation rounds (0: none)")
    ap.add_argument("--fresh", action="store_true", help="delete --out first")
    args = ap.parse_args()
    work = Path(args.out)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    held_out = {r["row"] for r in sample_rows(DATA / SOURCES["dolly_3k"], args.n, args.seed)}
    dolly = json.loads((DATA / SOURCES["dolly_3k"]).read_text())
    seeds = work / "seeds.json"
    seeds.write_text(json.dumps([r for i, r in enumerate(dolly) if i not in held_out]))
    results = [run_source(name, args, seeds, work) for name in SOURCES]
    (work / "recovery.json").write_text(json.dumps(results, indent=2))
    print(
        "| source | docs | predicted | ROUGE-L: backtranslated / shuffled / lead sentence "
        "| cosine: backtranslated / shuffled / lead sentence | kept (A_5) | calls | model s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"{r['source']}: curation dropped {r['curation_reasons']}")
    for r in results:
        b, s, lead = r["backtranslated"], r["shuffled"], r["lead_sentence"]
        print(f"| {r['source']} | {r['documents']} | {r['predicted']} | {b['rouge_l']:.3f} / "
              f"{s['rouge_l']:.3f} / {lead['rouge_l']:.3f} | {b['cosine']:.3f} / {s['cosine']:.3f} "
              f"/ {lead['cosine']:.3f} | {r['kept_a5']} | {r['calls']} | {r['model_s']} |")  # fmt: skip


if __name__ == "__main__":
    main()
