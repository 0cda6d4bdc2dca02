"""Curation benchmark: IFD scoring throughput and deita selection time, each against a reference.

1. IFD / reverse IFD (Cherry LLM; Selective Reflection-Tuning) with the embedded SmolLM2 through
   transformers on 1 thread: ``tunesmith.filters.ifd.score_ifd`` with the batched
   ``TransformersLogProb`` vs a plain per-row, per-sequence (unbatched) transformers loop over the
   same token ids. Reports rows/s for both and the largest IFD / r-IFD difference.
2. Selection of k=1000 of the 9,229 Alpaca rows (MiniLM embeddings of instruction+input+output,
   ranked by output length as a stand-in score): ``greedy_diverse`` (blocked, no N x N matrix) vs
   the naive greedy over a full N x N similarity matrix; both must return the same rows.
   k-center greedy for k=1000 is timed as well.

Run: ``TUNESMITH_THREADS=1 .venv/bin/python benchmarks/curation.py [--rows 32] [--write]``
(``--write`` replaces the "Curation" section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import time
from pathlib import Path

for _var in ("TUNESMITH_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/torch load their thread pools
import numpy as np  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
ALPACA = REPO.parent / "shared" / "data" / "alpaca_random_9k" / "random_9k.json"
EMB_CACHE = Path.home() / ".cache" / "tunesmith" / "bench_alpaca9k_minilm.npy"


def reference_ppl(model, span) -> float | None:  # type: ignore[no-untyped-def]
    """Perplexity of span.ids[start:] given the rest, one unpadded sequence per forward pass."""
    import torch

    if span.reason:
        return None
    ids, start = span.ids, span.start
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    picked = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])][start - 1 :]
    return math.exp(-float(picked.mean()))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def bench_ifd(n_rows: int) -> dict[str, float]:
    from tunesmith.filters.ifd import ifd_prefixes, score_ifd
    from tunesmith.io import read_records
    from tunesmith.llm.logprob_hf import TransformersLogProb

    records = read_records(ALPACA)[:n_rows]
    pairs = [(r.prompt_text(), r.output) for r in records]
    scorer = TransformersLogProb(batch_size=8, threads=1)
    scorer.setup()
    score_ifd(pairs[:2], scorer)  # warm-up
    t0 = time.perf_counter()
    got = score_ifd(pairs, scorer, reverse=True)
    t_lib = time.perf_counter() - t0

    fwd, rev = ifd_prefixes(pairs)
    model = scorer._model
    t0 = time.perf_counter()
    ref = []
    for (q, a), fp, rp in zip(pairs, fwd, rev, strict=True):
        ratios = []
        for prompt, text in ((fp, a), (rp, q)):
            cond = scorer.span(prompt, text)  # the same token ids, the same pairing rule
            alone = scorer.span("", text, cond.n_scored)
            ratios.append(_ratio(reference_ppl(model, cond), reference_ppl(model, alone)))
        ref.append(ratios)
    t_ref = time.perf_counter() - t0
    diff = max(
        abs(x - y)
        for g, r in zip(got, ref, strict=True)
        for x, y in ((g.ifd, r[0]), (g.rifd, r[1]))
        if x is not None and y is not None
    )
    same_missing = all(
        (g.ifd is None) == (r[0] is None) and (g.rifd is None) == (r[1] is None)
        for g, r in zip(got, ref, strict=True)
    )
    assert same_missing, "the library and the reference disagree on which scores are missing"
    return {"rows": n_rows, "lib_s": t_lib, "ref_s": t_ref, "max_diff": diff}


def alpaca_embeddings() -> tuple[np.ndarray, list[float], float]:
    from tunesmith.embeddings import embed
    from tunesmith.io import read_records
    from tunesmith.select.diversity import embed_text

    records = read_records(ALPACA)
    scores = [float(len(r.output.split())) for r in records]
    if EMB_CACHE.exists():
        return np.load(EMB_CACHE), scores, float("nan")
    t0 = time.perf_counter()
    emb = embed([embed_text(r, "all") for r in records])
    elapsed = time.perf_counter() - t0
    EMB_CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.save(EMB_CACHE, emb)
    return emb, scores, elapsed


def naive_greedy(emb: np.ndarray, order: np.ndarray, k: int, threshold: float) -> list[int]:
    sims = emb.astype(np.float64) @ emb.astype(np.float64).T  # the full N x N matrix
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if not chosen or sims[i, chosen].max() <= threshold:
            chosen.append(int(i))
    return chosen


def bench_select(k: int = 1000) -> dict[str, float]:
    from tunesmith.select.diversity import greedy_diverse, kcenter_greedy, rank_order

    emb, scores, embed_s = alpaca_embeddings()
    order = rank_order(scores)
    t0 = time.perf_counter()
    got, _ = greedy_diverse(emb, order, k, 0.9)
    t_lib = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = naive_greedy(emb, order, k, 0.9)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    centers = kcenter_greedy(emb, k)
    t_kc = time.perf_counter() - t0
    sel = emb[got].astype(np.float64)
    sims = sel @ sel.T
    np.fill_diagonal(sims, -1)
    return {"n": len(emb), "k": len(got), "lib_s": t_lib, "ref_s": t_ref, "same": got == ref,
            "max_cos": float(sims.max()), "kcenter_s": t_kc, "kcenter_k": len(centers),
            "embed_s": embed_s}  # fmt: skip


def table(ifd: dict[str, float], sel: dict[str, float]) -> str:
    embed_note = (
        f"; embedding the 9,229 rows with MiniLM took {sel['embed_s']:.0f} s"
        if not math.isnan(sel["embed_s"])
        else " (embeddings cached from an earlier run)"
    )
    return "\n".join([
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        "1 thread (`TUNESMITH_THREADS=1`), machine shared with other jobs.",
        "",
        "| benchmark | tunesmith | reference | ratio | check |",
        "| --- | --- | --- | --- | --- |",
        f"| IFD + r-IFD, {ifd['rows']} Alpaca rows, SmolLM2-135M (transformers, batch 8) | "
        f"{ifd['rows'] / ifd['lib_s']:.2f} rows/s | {ifd['rows'] / ifd['ref_s']:.2f} rows/s "
        f"(per-row unbatched loop) | {ifd['ref_s'] / ifd['lib_s']:.2f}x | "
        f"max abs diff {ifd['max_diff']:.1e} |",
        f"| deita select k={sel['k']} of {sel['n']} (cos <= 0.9) | {sel['lib_s']:.2f} s | "
        f"{sel['ref_s']:.2f} s (full N x N matrix greedy) | {sel['ref_s'] / sel['lib_s']:.1f}x | "
        f"same rows: {sel['same']}; max pairwise cos {sel['max_cos']:.4f} |",
        f"| k-center greedy k={sel['kcenter_k']} of {sel['n']} | {sel['kcenter_s']:.2f} s | - | - "
        "| - |",
        "",
        "Selection times exclude embedding" + embed_note + ". Rows are ranked by output length "
        "(a stand-in score: Alpaca carries none).",
    ])  # fmt: skip


def write_section(body: str) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8")
    head = "## Curation (`benchmarks/curation.py`)"
    pattern = re.compile(rf"({re.escape(head)}\n)(.*?)(?=\n## |\Z)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit("no Curation section in BENCHMARKS.md")
    path.write_text(pattern.sub(lambda m: f"{m.group(1)}\n{body}\n", text, count=1), "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    sel = bench_select(args.k)
    ifd = bench_ifd(args.rows)
    body = table(ifd, sel)
    print(body)
    if args.write:
        write_section(body)


if __name__ == "__main__":
    main()
