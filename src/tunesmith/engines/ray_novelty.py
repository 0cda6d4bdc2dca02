"""Exact ROUGE-L novelty filtering on a Ray cluster: shards score in parallel, acceptance in order.

The greedy filter of Self-Instruct (Wang et al., ACL 2023) keeps a candidate iff its max ROUGE-L
F against the pool (seeds plus everything kept before it) is at most the threshold, so decisions
are sequential. Scoring is not: candidates are taken in chunks; every pool shard (a Ray actor
holding a :class:`~tunesmith.filters.rouge_index.RougeIndex` over part of the pool, as it was
when the chunk started) scores the whole chunk in parallel. The driver then walks the chunk in
order and only scores each candidate against the few candidates kept earlier in the same chunk.
The max over shards and that local index is the max over the whole pool, and the nearest item is
the first in pool order reaching it (shards report global positions), so every decision, score
and nearest id equal the single-process :class:`~tunesmith.filters.novelty_stage.NoveltyStage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray

from tunesmith.filters.novelty import NoveltyDecision, screen_records
from tunesmith.filters.novelty_stage import NoveltyStage
from tunesmith.filters.rouge import rouge_tokenize
from tunesmith.filters.rouge_index import RougeIndex
from tunesmith.records import Record
from tunesmith.stages import StageResult

Best = tuple[float, int | None]


@ray.remote(num_cpus=0)
class PoolShard:
    """Part of the pool: its items' global positions and an index over their tokens."""

    def __init__(self) -> None:
        self.index = RougeIndex()
        self.positions: list[int] = []

    def add(self, items: list[tuple[int, list[str]]]) -> None:
        for position, tokens in items:
            self.index.add(tokens)
            self.positions.append(position)

    def score(self, chunk: list[list[str]]) -> list[Best]:
        out: list[Best] = []
        for tokens in chunk:
            best, local = self.index.max_f(tokens)
            out.append((best, self.positions[local] if local is not None else None))
        return out


def better(a: Best, b: Best) -> Best:
    """The higher score; on a tie the earlier item in pool order (as the sequential filter)."""
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    if a[1] is None or (b[1] is not None and b[1] < a[1]):
        return b
    return a


class _ShardedFilter:
    """:class:`~tunesmith.filters.novelty.NoveltyFilter`'s ``check`` over Ray pool shards."""

    def __init__(self, threshold: float, pool: Sequence[str], shards: int, chunk: int) -> None:
        self.threshold = threshold
        self.top_k = 0
        self.chunk = max(1, chunk)
        self.shards = [PoolShard.remote() for _ in range(max(1, shards))]  # type: ignore[attr-defined]
        self.size = 0
        self._add([rouge_tokenize(t) for t in pool])

    def _add(self, token_lists: list[list[str]]) -> None:
        """New pool items, dealt round-robin so the shards stay the same size."""
        parts: list[list[tuple[int, list[str]]]] = [[] for _ in self.shards]
        for tokens in token_lists:
            parts[self.size % len(self.shards)].append((self.size, tokens))
            self.size += 1
        ray.get([s.add.remote(p) for s, p in zip(self.shards, parts, strict=True) if p])

    def check(self, texts: Sequence[str]) -> list[NoveltyDecision]:
        out: list[NoveltyDecision] = []
        for start in range(0, len(texts), self.chunk):
            tokens = [rouge_tokenize(t) for t in texts[start : start + self.chunk]]
            out.extend(self._check_chunk(tokens))
        return out

    def _check_chunk(self, chunk: list[list[str]]) -> list[NoveltyDecision]:
        scored = ray.get([s.score.remote(chunk) for s in self.shards])
        local = RougeIndex()
        local_pos: list[int] = []
        kept: list[list[str]] = []
        decisions = []
        for i, tokens in enumerate(chunk):
            best: Best = (0.0, None)
            for shard in scored:
                best = better(best, shard[i])
            here, j = local.max_f(tokens)  # against this chunk's earlier kept candidates
            best = better(best, (here, local_pos[j] if j is not None else None))
            decision = NoveltyDecision(kept=best[0] <= self.threshold, max_score=best[0],
                                       nearest=best[1])  # fmt: skip
            if decision.kept:
                local.add(tokens)
                local_pos.append(self.size + len(kept))
                kept.append(tokens)
            decisions.append(decision)
        self._add(kept)
        return decisions


def novelty_on_ray(
    stage: NoveltyStage, records: Sequence[Record], *, shards: int = 2, chunk: int = 256
) -> StageResult:
    """Run ``stage`` (a top_k=0 novelty filter) with pool shards on the cluster; same result."""
    stage.setup()
    flt: Any = _ShardedFilter(stage.threshold, stage.pool, shards, chunk)
    names = [f"pool[{i}]" for i in range(len(stage.pool))]
    try:
        return screen_records(flt, names, records, stage.field)
    finally:
        for shard in flt.shards:
            ray.kill(shard)
