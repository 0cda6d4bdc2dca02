"""Approximate novelty filtering for 1M+ rows: a MinHash/LSH prefilter, then exact ROUGE-L.

The greedy ROUGE-L filter of Self-Instruct (Wang et al., ACL 2023) compares each candidate with
the whole pool. Here each pool item gets a MinHash signature of its token set (Broder 1997);
LSH banding (``bands`` x ``rows``) puts it in ``bands`` buckets, and a candidate is scored with
the exact rouge-score F only against the pool items it shares a bucket with. A near-duplicate
(high ROUGE-L, hence a high token-set Jaccard) collides in at least one band with probability
``1 - (1 - J**rows)**bands`` (0.99 at J = 0.5 with the defaults), so the filter may keep a
candidate the exact filter rejects (a missed duplicate), never the reverse for the same pool:
every score it reports is exact. Its recall against the exact filter is measured in
``tests/engines/test_ray_engine.py`` and BENCHMARKS.md.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tunesmith.filters.novelty import NoveltyDecision
from tunesmith.filters.rouge import rouge_l_f, rouge_tokenize

_PRIME = (1 << 61) - 1


class MinHashNoveltyFilter:
    """The ``check`` of :class:`~tunesmith.filters.novelty.NoveltyFilter`, approximately.

    Args:
        threshold: reject a candidate iff its max ROUGE-L F vs its LSH neighbours is greater.
        pool: initial pool texts.
        bands, rows: LSH banding; more bands (or fewer rows) raise recall and cost.
        seed: the hash family's seed (signatures are deterministic for a seed).
    """

    def __init__(
        self,
        threshold: float = 0.7,
        *,
        pool: Sequence[str] = (),
        bands: int = 16,
        rows: int = 2,
        seed: int = 1,
    ) -> None:
        self.threshold = float(threshold)
        self.top_k = 0
        self.bands, self.rows = bands, rows
        rng = np.random.default_rng(seed)
        n = bands * rows
        self.a = rng.integers(1, _PRIME, n, dtype=np.uint64)
        self.b = rng.integers(0, _PRIME, n, dtype=np.uint64)
        self.tokens: list[list[str]] = []
        self.buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        for text in pool:
            self._add(rouge_tokenize(text))

    def signature(self, tokens: list[str]) -> np.ndarray:
        """MinHash of the token set: per hash function, the least ``(a*x + b) mod p``."""
        if not tokens:
            return np.full(self.a.size, _PRIME, dtype=np.uint64)
        x = np.array([zlib.crc32(t.encode()) for t in set(tokens)], dtype=np.uint64)
        # x < 2**32 and a < 2**61: reduce a first so the product stays under 2**64
        h = ((self.a[:, None] % np.uint64(1 << 31)) * x[None, :] + self.b[:, None]) % np.uint64(
            _PRIME
        )
        return np.asarray(h.min(axis=1))

    def _keys(self, tokens: list[str]) -> list[tuple[int, bytes]]:
        sig = self.signature(tokens)
        return [(i, sig[i * self.rows : (i + 1) * self.rows].tobytes()) for i in range(self.bands)]

    def _add(self, tokens: list[str]) -> None:
        for key in self._keys(tokens):
            self.buckets[key].append(len(self.tokens))
        self.tokens.append(tokens)

    def check(self, candidates: Sequence[str]) -> list[NoveltyDecision]:
        """Decide candidates in order; a kept one joins the pool before the next is decided."""
        out = []
        for text in candidates:
            tokens = rouge_tokenize(text)
            near = sorted({j for key in self._keys(tokens) for j in self.buckets.get(key, ())})
            best, nearest = 0.0, None
            for j in near:  # pool order: the first item reaching the max is the nearest
                f = rouge_l_f(tokens, self.tokens[j])
                if f > best:
                    best, nearest = f, j
            decision = NoveltyDecision(best <= self.threshold, best, nearest)
            if decision.kept:
                self._add(tokens)
            out.append(decision)
        return out


def recall(exact: Sequence[NoveltyDecision], approx: Sequence[NoveltyDecision]) -> float:
    """Share of the exact filter's rejections that the approximate filter also rejects."""
    rejected = [i for i, d in enumerate(exact) if not d.kept]
    if not rejected:
        return 1.0
    return sum(1 for i in rejected if not approx[i].kept) / len(rejected)
