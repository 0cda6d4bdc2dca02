"""Approximate ROUGE-L novelty for 1M+ rows: MinHash/LSH proposes pairs, exact ROUGE-L decides.

The greedy filter of Self-Instruct (Wang et al., ACL 2023; 0.7, SeDi-Instruct 0.85) rejects a
candidate iff its ROUGE-L F against some pool item exceeds the threshold ``t``. The exact filter
(:mod:`tunesmith.filters.novelty`) finds the maximum over the whole pool. Here a candidate is
scored, with the exact rouge-score F, only against the pool items that share a MinHash/LSH
bucket with it.

**From ROUGE-L F to Jaccard.** With ``m`` and ``n`` tokens (rouge-score's tokenizer, no stemmer,
as the exact filter), ``F = 2 * LCS / (m + n)``. Let a text's *features* be its token occurrences
``(token, k)`` (the k-th repeat of a token), the features of
:class:`~tunesmith.filters.rouge_index.RougeIndex`; two texts share ``o`` of them (their multiset
token overlap) and ``LCS <= o``. Their feature-set Jaccard is ``J = o / (m + n - o)``, increasing
in ``o / (m + n)``, so ``F > t`` implies ``o / (m + n) > t / 2`` and ``J > t / (2 - t) = J0``
(``>=`` in floats: rouge-score's F can exceed t by an ulp where ``2 * o / (m + n) == t``):
0.538 at t = 0.7, 0.739 at 0.85. Every pair the exact filter would reject on has ``J >= J0``
(plain token *sets* give no such bound: "a a a a b" vs "a a a a c" has F = 0.8, set J = 1/3).

**MinHash and the S-curve.** The minimum of a random hash over a feature set agrees between two
sets with probability ``J`` (Broder 1997, "On the resemblance and containment of documents").
Signatures of ``bands * rows`` minima are cut into ``bands`` bands of ``rows``; two sets share a
bucket iff some band agrees entirely, with probability ``1 - (1 - J**rows)**bands``, an S-curve
in ``J`` (Indyk and Motwani 1998; Leskovec, Rajaraman and Ullman, *Mining of Massive Datasets*
ch. 3). :func:`lsh_params` picks ``rows`` from the threshold and the fewest ``bands`` that put
the curve at >= 0.99 at ``J0``: a pair at the very edge of rejection is proposed with
probability >= 0.99, pairs above the edge (higher J) more often, exact duplicates always. For
t = 0.7: 53 bands x 4 rows (0.99 at J0; 0.08 at J = 0.2 and 0.35 at J = 0.3, the range of
unrelated instructions sharing stop words); for 0.85: 26 x 6 (0.002 at J = 0.2). Below about
t = 0.6 no curve separates the two (t = 0.5: 0.80 at J = 0.2), most pairs get verified, and the
exact mode is the better choice.

**What is guaranteed.** Every score reported is the exact rouge-score F of a real pair, and a
candidate is rejected only when such a pair exceeds ``t``, so against the same pool the
approximate mode never rejects what the exact filter keeps: it can only miss rejections (keep a
near-duplicate the exact filter drops). While the two filters agree (same pool), the first
difference is therefore always a missed rejection. After one, the pools differ: the missed row is
in the approximate pool, and a later row close to it but to nothing in the exact pool is rejected
by the approximate filter only (a cascade). Precision against the exact filter is 1.0 until the
first missed rejection, and is measured after it (``benchmarks/novelty_approx.py``).

**Layout.** Signatures are computed in numpy for a whole batch (a mixed 64-bit id per feature,
``bands * rows`` multiply-shift hashes, a segmented minimum); the pool's band keys live in
:class:`~tunesmith.filters.lsh_runs.BandRuns`, queried for the whole batch at once, and pairs
inside the batch come from sorting its own keys. Proposals whose length bound
``2 * min(m, n) / (m + n)`` cannot exceed t are dropped before verification. A chunk's proposals
are scored before its in-order decisions (one cached-pattern LCS call per row, the float formula
vectorised per chunk); those from earlier rows of the chunk count only for rows kept. Memory: 8
bytes per band per kept row (424 at t = 0.7) plus its token string; nothing is N x N.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import chain, pairwise
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from tunesmith.errors import ConfigError
from tunesmith.filters.lsh_runs import BandRuns, batch_pairs
from tunesmith.filters.novelty import NoveltyDecision, PoolTexts
from tunesmith.filters.rouge import rouge_f_vector, rouge_tokenize
from tunesmith.filters.rouge_index import _MAX_VOCAB, MARGIN, IntList, _code_point, _feature_keys

__all__ = ["MinHashNoveltyFilter", "compare_decisions", "lsh_params", "minhash_decisions"]

# rows hashed and queried together: memory ~ rows x tokens x hashes x 8 bytes, and the pairs
# inside a chunk of near-identical rows grow as rows**2 * bands
_CHUNK = 1024
_FEW = 12  # fewer proposals than this: scored one by one (a batched call costs ~3 us to set up)
_LOCAL = 1 << 31  # proposals >= this are rows of the current chunk, not yet pool items
_EMPTY = np.uint64(1 << 63)  # keys of rows without tokens: unique, never in the pool
_U32 = np.uint64(32)
_HASH_BLOCK = 256  # rows hashed per numpy pass: hashes x features x 8 bytes stays ~10 MB


def lsh_params(threshold: float, *, target: float = 0.99) -> tuple[int, int]:
    """``(bands, rows)`` for a ROUGE-L threshold: the S-curve reaches ``target`` at ``J0``.

    ``J0 = t / (2 - t)`` is the least feature Jaccard of a pair with ROUGE-L F > t (see the
    module docstring). ``rows`` grows with the threshold: a higher J0 affords longer bands, which
    cut false proposals faster than they cost hashes (measured at t = 0.7 on the 52K real texts
    of ``benchmarks/novelty.py``: rows 3, 4, 5 with 28, 53, 100 bands took 9.1, 4.8, 5.2 s CPU,
    recall 0.9998, 0.9991, 1.0). ``bands`` is the fewest giving ``1 - (1 - J0**rows)**bands >=
    target``.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"minhash mode needs a threshold in (0, 1), got {threshold}")
    j0 = threshold / (2.0 - threshold)
    rows = max(2, round(8 * j0 - 0.3))  # 2 at t <= 0.4, 4 at 0.7, 6 at 0.85
    bands = math.ceil(math.log(1.0 - target) / math.log(1.0 - j0**rows))
    return bands, rows


def _mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection of uint64 in which every output bit mixes all inputs."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _first_max(
    n_rows: int, rows: NDArray[np.int64], items: NDArray[np.int64], scores: NDArray[np.float64]
) -> tuple[list[float], list[int]]:
    """Per row, the maximum score (0.0 if none) and the first item reaching it (-1 if 0).

    ``rows`` ascending, ``items`` ascending within a row: the first maximum in pool order, as
    a scan keeping a strictly greater score would find.
    """
    best = np.zeros(n_rows, dtype=np.float64)
    np.maximum.at(best, rows, scores)
    hit = np.flatnonzero((scores == best[rows]) & (scores > 0))
    top_rows, first = np.unique(rows[hit], return_index=True)
    nearest = np.full(n_rows, -1, dtype=np.int64)
    nearest[top_rows] = items[hit[first]]
    return best.tolist(), nearest.tolist()


class MinHashNoveltyFilter(PoolTexts):
    """:class:`~tunesmith.filters.novelty.NoveltyFilter`'s ``check``, with an LSH prefilter.

    Args:
        threshold: reject a candidate iff the exact ROUGE-L F against a proposed pool item is
            strictly greater (0.7 Self-Instruct, 0.85 SeDi-Instruct), in (0, 1).
        pool: initial pool texts (e.g. the seed instructions).
        bands, rows: LSH banding; default :func:`lsh_params` of the threshold.
        seed: seed of the hash family (decisions are deterministic for a seed).

    A decision's ``max_score``/``nearest`` are over the proposed items only: a lower bound of the
    exact filter's maximum, reached by the first such item in pool order.
    """

    top_k = 0  # Self-Instruct's top-k/mean scores need the whole pool: exact mode only

    def __init__(
        self,
        threshold: float = 0.7,
        *,
        pool: Iterable[str] = (),
        bands: int | None = None,
        rows: int | None = None,
        seed: int = 0,
    ) -> None:
        default_bands, default_rows = lsh_params(threshold)  # also checks the threshold
        self.threshold = float(threshold)
        self.bands = default_bands if bands is None else int(bands)
        self.rows = default_rows if rows is None else int(rows)
        if self.bands < 1 or self.rows < 1:
            raise ConfigError(f"bands and rows must be >= 1, got {self.bands} x {self.rows}")
        rng = np.random.default_rng(seed)
        n_hashes = self.bands * self.rows
        # multiply-shift hashes of a mixed feature id: odd multipliers, top 32 bits kept
        self._mul = rng.integers(0, 2**63, n_hashes, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._add = rng.integers(0, 2**63, n_hashes, dtype=np.uint64)
        self._band_mul = rng.integers(0, 2**63, self.rows, dtype=np.uint64) * np.uint64(2) + 1
        self._salt = np.uint64(rng.integers(0, 2**63))
        self._vocab: dict[str, int] = {}
        self._chars = [_code_point(0)]
        self._seqs: list[str] = []  # one character per token, as RougeIndex
        self._lens = IntList(1024)  # tokens per pool item
        self._texts: list[str] = []
        self._runs = BandRuns()
        self.add_pool(pool)

    def add_pool(self, texts: Iterable[str]) -> None:
        """Add texts to the pool without deciding on them (e.g. seed instructions)."""
        texts = list(texts)
        for start in range(0, len(texts), _CHUNK):
            chunk = texts[start : start + _CHUNK]
            ids = [self._token_ids(rouge_tokenize(text)) for text in chunk]
            keys = self._band_keys(ids)
            first = len(self._seqs)
            for text, token_ids in zip(chunk, ids, strict=True):
                self._seqs.append("".join([self._chars[i] for i in token_ids]))
                self._lens.append(len(token_ids))
                self._texts.append(text)
            has_tokens = np.array([bool(t) for t in ids], dtype=bool)
            items = np.arange(first, first + len(chunk), dtype=np.int32)
            self._runs.add(keys[has_tokens], items[has_tokens])

    def check(self, candidates: Sequence[str], *, commit: bool = True) -> list[NoveltyDecision]:
        """Decide candidates in order; a kept one joins the pool before the next is decided.

        Args:
            candidates: texts to decide, in generation order.
            commit: when False, decide each candidate against the current pool without adding.
        """
        decisions: list[NoveltyDecision] = []
        for start in range(0, len(candidates), _CHUNK):
            decisions.extend(self._check_chunk(candidates[start : start + _CHUNK], commit))
        return decisions

    def _check_chunk(self, texts: Sequence[str], commit: bool) -> list[NoveltyDecision]:
        ids = [self._token_ids(rouge_tokenize(text)) for text in texts]
        chars = self._chars
        seqs = ["".join([chars[t] for t in token_ids]) for token_ids in ids]
        lens = np.array([len(row) for row in ids], dtype=np.int64)
        keys = self._band_keys(ids)
        rows, items = self._proposals(keys, lens)
        # every proposal scored in one call per kind, before the in-order decisions: the
        # pool's part decides nothing yet, the chunk's part counts only for rows kept below
        local = items >= _LOCAL
        pool_pairs, earlier = (rows[~local], items[~local]), items[local] - _LOCAL
        pool_scores = self._scores(seqs, lens, pool_pairs, self._seqs, self._lens.view())
        chunk_scores = self._scores(seqs, lens, (rows[local], earlier), seqs, lens)
        best, nearest = _first_max(len(texts), rows[~local], items[~local], pool_scores)
        later: dict[int, list[tuple[int, float]]] = {}
        for row, other, score in zip(
            rows[local].tolist(), earlier.tolist(), chunk_scores.tolist(), strict=True
        ):
            later.setdefault(row, []).append((other, score))
        item_of_row = [-1] * len(texts)  # pool index of each row kept so far in this chunk
        kept_rows: list[int] = []
        decisions = []
        for i, (text, token_ids) in enumerate(zip(texts, ids, strict=True)):
            top, near = best[i], nearest[i]
            for other, score in later.get(i, ()):  # after the pool items: wins only if higher
                if score > top and item_of_row[other] >= 0:
                    top, near = score, item_of_row[other]
            decision = NoveltyDecision(
                kept=top <= self.threshold, max_score=top, nearest=None if near < 0 else near
            )
            decisions.append(decision)
            if commit and decision.kept:
                item_of_row[i] = len(self._seqs)
                if token_ids:  # a text without tokens scores 0 against everything: no keys
                    kept_rows.append(i)
                self._seqs.append(seqs[i])
                self._lens.append(len(token_ids))
                self._texts.append(text)
        items_kept = np.array([item_of_row[i] for i in kept_rows], dtype=np.int32)
        self._runs.add(keys[kept_rows], items_kept)
        return decisions

    def _proposals(
        self, keys: NDArray[np.uint64], lens: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Pairs ``(chunk row, proposed item)``, sorted by row then item, that could exceed t.

        Items of the pool before the chunk are their pool index; earlier rows of the chunk are
        ``_LOCAL + row`` (they come after the pool, in row order). Pairs whose length bound
        ``F <= 2 * min(m, n) / (m + n)`` cannot exceed the threshold are dropped here (the
        exact filter's length filter; a float margin keeps the cut safe).
        """
        rows, items = self._runs.query(keys)
        local_rows, earlier = batch_pairs(keys)
        rows = np.concatenate([rows, local_rows])
        other = np.concatenate([self._lens.view()[items], lens[earlier]])
        items = np.concatenate([items, earlier + _LOCAL])
        m = lens[rows]
        possible = 2.0 * np.minimum(m, other) > (self.threshold - MARGIN) * (m + other)
        pairs = np.sort((rows[possible] << 32) | items[possible])
        if pairs.size:  # drop repeats (a pair proposed by several bands)
            pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]
        return pairs >> 32, pairs & 0xFFFFFFFF

    def _scores(
        self,
        seqs: list[str],
        lens: NDArray[np.int64],
        pairs: tuple[NDArray[np.int64], NDArray[np.int64]],
        other_seqs: list[str],
        other_lens: NDArray[np.integer],
    ) -> NDArray[np.float64]:
        """Exact rouge-score F of each pair ``(seqs[row], other_seqs[other])`` (sorted by row).

        One bit-parallel LCS call per row (rapidfuzz caches the row's pattern across its
        proposals; a pairwise call would rebuild it per pair, measured 2x slower per pair), and
        rouge-score's float formula vectorised once for the chunk instead of once per row.
        """
        rows, others = pairs
        if not rows.size:
            return np.empty(0, dtype=np.float64)
        lcs = np.empty(rows.size, dtype=np.int32)
        cuts = [0, *(np.flatnonzero(rows[1:] != rows[:-1]) + 1).tolist(), rows.size]
        similarity = LCSseq.similarity
        for lo, hi in pairwise(cuts):  # a row's items as a list only while it is scored (memory)
            seq, items = seqs[int(rows[lo])], others[lo:hi].tolist()
            if hi - lo < _FEW:  # a batched call costs ~3 us to set up
                lcs[lo:hi] = [similarity(seq, other_seqs[j]) for j in items]
            else:
                choices = itemgetter(*items)(other_seqs)  # a tuple, built in C
                lcs[lo:hi] = process.cdist(
                    [seq], choices, scorer=LCSseq.similarity, dtype=np.int32, workers=1
                )[0]
        return rouge_f_vector(lcs, lens[rows], other_lens[others])

    def _minima(
        self, features: NDArray[np.uint64], starts: NDArray[np.int64]
    ) -> NDArray[np.uint64]:
        """Per row (features ``starts[i]:starts[i + 1]``), the minimum of each hash function."""
        # hashes x features, so that the minimum over each row's features runs along memory
        hashed = (self._mul[:, None] * _mix64(features ^ self._salt) + self._add[:, None]) >> _U32
        return np.minimum.reduceat(hashed, starts, axis=1).T

    def _token_ids(self, tokens: list[str]) -> list[int]:
        vocab, ids = self._vocab, []
        for token in tokens:
            token_id = vocab.get(token)
            if token_id is None:
                if len(vocab) >= _MAX_VOCAB:
                    raise ConfigError("novelty vocabulary exceeds 1.1M distinct tokens")
                token_id = vocab[token] = len(vocab) + 1
                self._chars.append(_code_point(token_id))
            ids.append(token_id)
        return ids

    def _band_keys(self, ids: list[list[int]]) -> NDArray[np.uint64]:
        """Band keys (rows x bands) of token-id lists: ``band << 32 | hash of the band's minima``.

        Rows without tokens get keys no other row has.
        """
        n_rows = len(ids)
        features = [_feature_keys(row) for row in ids]
        lens = np.fromiter((len(f) for f in features), dtype=np.int64, count=n_rows)
        # a repeat (token, k) becomes token + k * 2**21: token ids stay below 2**21
        flat = np.fromiter(
            (
                f if isinstance(f, int) else f[0] + (f[1] << 21)
                for f in chain.from_iterable(features)
            ),
            dtype=np.uint64,
            count=int(lens.sum()),
        )
        sig = np.zeros((n_rows, self._mul.size), dtype=np.uint64)
        nonempty = lens > 0
        ends = np.cumsum(lens)
        for lo in range(0, n_rows, _HASH_BLOCK):
            hi = min(lo + _HASH_BLOCK, n_rows)
            f0, f1 = int(ends[lo] - lens[lo]), int(ends[hi - 1])
            if f1 > f0:
                block = nonempty[lo:hi]
                starts = (ends[lo:hi] - lens[lo:hi] - f0)[block]
                sig[lo:hi][block] = self._minima(flat[f0:f1], starts)
        banded = sig.reshape(n_rows, self.bands, self.rows)
        band_hash = _mix64((banded * self._band_mul).sum(axis=2, dtype=np.uint64)) >> _U32
        keys = band_hash | (np.arange(self.bands, dtype=np.uint64) << _U32)
        empty = np.flatnonzero(~nonempty).astype(np.uint64)[:, None]
        keys[~nonempty] = _EMPTY | (empty << np.uint64(20)) | np.arange(self.bands, dtype=np.uint64)
        return keys


def minhash_decisions(
    texts: Sequence[str],
    *,
    threshold: float,
    pool: Iterable[str] = (),
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 0,
) -> list[NoveltyDecision]:
    """Approximate greedy novelty decisions for ``texts`` in order (a plain function for engines).

    Args:
        texts: candidates, decided in order; each kept one joins the pool.
        threshold: ROUGE-L F threshold (0.7 Self-Instruct, 0.85 SeDi-Instruct).
        pool: texts every candidate is also compared with (e.g. seed instructions).
        bands, rows, seed: LSH settings (default: :func:`lsh_params`).
    """
    flt = MinHashNoveltyFilter(threshold, pool=pool, bands=bands, rows=rows, seed=seed)
    return flt.check(texts)


def compare_decisions(
    exact: Sequence[NoveltyDecision], approx: Sequence[NoveltyDecision]
) -> dict[str, float | int]:
    """Recall and precision of the approximate filter's rejections against the exact filter's.

    ``recall``: share of exact rejections also rejected; ``precision``: share of approximate
    rejections the exact filter also makes (below 1.0 only through a cascade, see the module
    docstring); ``first_miss``: index of the first missed rejection (-1 if none).
    """
    want = np.array([not d.kept for d in exact], dtype=bool)
    got = np.array([not d.kept for d in approx], dtype=bool)
    both = int(np.sum(want & got))
    missed = np.flatnonzero(want & ~got)
    return {
        "exact_rejected": int(want.sum()),
        "approx_rejected": int(got.sum()),
        "recall": both / int(want.sum()) if want.any() else 1.0,
        "precision": both / int(got.sum()) if got.any() else 1.0,
        "first_miss": int(missed[0]) if missed.size else -1,
    }
