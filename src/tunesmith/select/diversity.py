"""Quality-plus-diversity selection (LIMA, deita) and pure diversity (k-center greedy).

- deita (Liu et al. 2024, "What Makes Good Data for Alignment?"): sort rows by a score
  (complexity x quality in the paper; any stored score or product of scores here), walk the
  list and add a row only if its largest cosine similarity to the rows already chosen is
  <= ``threshold`` (0.9), until ``k`` rows. LIMA (Zhou et al. 2023) motivates the budget: 1,000
  diverse, high-quality examples.
- k-center greedy (Sener & Savarese 2018): without scores, repeatedly add the row farthest
  (cosine distance) from everything chosen so far.

Both run on L2-normalised embeddings (the packaged MiniLM by default) without an N x N matrix:
deita compares each block of candidates with the chosen rows in one matrix product, k-center
keeps one running "distance to nearest center" vector. Ties break by input order, so results
are deterministic. The pipeline stage (``select``) is :mod:`tunesmith.select.select_stage`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tunesmith.errors import ConfigError
from tunesmith.records import Record, text_hash

METHODS = ("deita", "kcenter")
FIELDS = ("instruction", "prompt", "all")


def parse_score_spec(spec: str) -> list[str]:
    """``"complexity*quality"`` -> ``["complexity", "quality"]`` (a product of stored scores)."""
    keys = [k.strip() for k in spec.split("*")]
    if not spec.strip() or any(not k for k in keys):
        raise ConfigError(f"score spec '{spec}' must be KEY or KEY*KEY*...")
    return keys


def score_of(record: Record, keys: Sequence[str]) -> float | None:
    """The product of ``record.scores[k]`` for ``keys``; None if any is missing or not a number."""
    value = 1.0
    for key in keys:
        v = record.scores.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
            return None
        value *= float(v)
    return value


def rank_order(values: Sequence[float]) -> NDArray[np.intp]:
    """Indices by descending value; equal values keep input order (stable)."""
    return np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")


def greedy_diverse(
    emb: NDArray[np.floating[Any]],
    order: Sequence[int] | NDArray[np.intp],
    k: int,
    threshold: float = 0.9,
    block: int = 512,
) -> tuple[list[int], dict[int, float]]:
    """deita's filter: walk ``order``, keep a row if max cosine to the kept rows <= threshold.

    Args:
        emb: (N, d) L2-normalised embeddings.
        order: the walk order (best first).
        k: stop after this many rows.
        threshold: the largest allowed cosine similarity to any already-kept row.
        block: candidates compared with the kept set per matrix product.

    Returns:
        (kept indices in selection order, {index: max similarity} for rows skipped as too close).
    """
    x = np.asarray(emb, dtype=np.float64)
    order = np.asarray(order, dtype=np.intp)
    chosen: list[int] = []
    kept_vecs = np.empty((min(k, len(order)), x.shape[1]))
    too_close: dict[int, float] = {}
    for start in range(0, len(order), block):
        if len(chosen) >= k:
            break
        idx = order[start : start + block]
        cand = x[idx]
        # (block,) best similarity to rows chosen before this block; (block, block) within it.
        prev = (
            (cand @ kept_vecs[: len(chosen)].T).max(axis=1)
            if chosen
            else np.full(len(idx), -np.inf)
        )
        inner = cand @ cand.T
        local: list[int] = []
        for j in range(len(idx)):
            if len(chosen) + len(local) >= k:
                break
            best = max(prev[j], inner[j, local].max()) if local else prev[j]
            if best <= threshold:
                local.append(j)
            else:
                too_close[int(idx[j])] = float(best)
        kept_vecs[len(chosen) : len(chosen) + len(local)] = cand[local]
        chosen.extend(int(idx[j]) for j in local)
    return chosen, too_close


def kcenter_greedy(emb: NDArray[np.floating[Any]], k: int, first: int = 0) -> list[int]:
    """k-center greedy on cosine distance: start at ``first``, then add the farthest row.

    ``min_dist`` holds each row's distance to its nearest chosen center; one (N,) update per
    added center, so memory is O(N) and time O(N k d). ``argmax`` takes the lowest index on ties.
    """
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    if n == 0 or k <= 0:
        return []
    chosen = [first]
    min_dist = 1.0 - x @ x[first]
    min_dist[first] = -np.inf
    while len(chosen) < min(k, n):
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        np.minimum(min_dist, 1.0 - x @ x[nxt], out=min_dist)
        min_dist[chosen] = -np.inf
    return chosen


def cached_embed(texts: Sequence[str], path: Path, model: str | None) -> NDArray[np.float32]:
    """Embed ``texts``, reading and extending the ``.npz`` cache at ``path`` (keys: sha256)."""
    from tunesmith.embeddings import embed

    keys = [text_hash(t) for t in texts]
    known: dict[str, NDArray[np.float32]] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if missing:
        vectors = embed([t for _, t in missing], model)
        known.update(zip([k for k, _ in missing], vectors, strict=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
        os.replace(tmp, path)
    return np.stack([known[k] for k in keys]).astype(np.float32)


def embed_text(record: Record, field: str) -> str:
    """The text embedded for a row: its instruction, instruction+input, or the whole example."""
    if field == "instruction":
        return record.instruction
    if field == "prompt":
        return record.prompt_text()
    return f"{record.prompt_text()}\n\n{record.output}"
