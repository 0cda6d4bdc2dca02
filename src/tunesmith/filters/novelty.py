"""The ROUGE-L novelty filter of Self-Instruct, Alpaca and SeDi-Instruct, exact and fast.

Self-Instruct (Wang et al., ACL 2023) keeps a generated instruction only if its ROUGE-L F-measure
(``rouge-score``, no stemmer) against every instruction in the pool (the seeds plus everything kept
so far) is at most 0.7; SeDi-Instruct (Kim et al. 2025) relaxes the threshold to 0.85. The public
code compares each candidate with the whole pool. This filter makes the identical decisions and
reports the identical maximum score (and first-in-pool-order nearest item), without all-pairs
LCS: :class:`~tunesmith.filters.rouge_index.RougeIndex` prunes with provably safe bounds
(multiset token overlap and lengths, via an inverted index of rare tokens and bit masks of frequent
ones) and verifies the few survivors with rapidfuzz's bit-parallel LCS and rouge-score's own float
formula, by branch and bound so that the exact maximum comes out, not only the decision.

Memory is linear in the pool's total token count (no N x N matrix). Decisions are sequential, so
batch mode (``dedup_records``) and streaming (``NoveltyFilter.check`` per generation batch) are
the same code path. The pipeline stage is :mod:`tunesmith.filters.novelty_stage`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from tunesmith.errors import ConfigError, DataError
from tunesmith.filters.rouge import rouge_l_f, rouge_tokenize
from tunesmith.filters.rouge_index import RougeIndex
from tunesmith.records import Record, check_field, field_text
from tunesmith.stages import Rejected, StageResult

__all__ = [
    "FIELDS",
    "NoveltyDecision",
    "NoveltyFilter",
    "dedup_records",
    "rouge_l_f",
    "rouge_tokenize",
]

FIELDS = ("instruction", "input", "output", "prompt")
#: ``exact``: this module's filter; ``minhash``: MinHash/LSH proposals verified with exact
#: ROUGE-L (:mod:`tunesmith.filters.minhash_novelty`), for 1M+ rows; it can only miss rejections.
MODES = ("exact", "minhash")


@dataclasses.dataclass(frozen=True)
class NoveltyDecision:
    """The filter's verdict on one candidate.

    Attributes:
        kept: False iff ``max_score > threshold``.
        max_score: max ROUGE-L F against the pool at decision time (0.0 for an empty pool).
        nearest: pool index (pool order) of the first item reaching ``max_score``; None when no
            pool item shares a token with the candidate.
        top: the ``top_k`` most similar pool items as ``(index, F)`` (only when ``top_k > 0``).
        mean_score: mean F over the whole pool (only when ``top_k > 0``, as Self-Instruct stored).
    """

    kept: bool
    max_score: float
    nearest: int | None
    top: tuple[tuple[int, float], ...] = ()
    mean_score: float | None = None


class PoolTexts:
    """The pool's texts, in order: what the exact and the approximate filter share."""

    _texts: list[str]

    @property
    def pool_texts(self) -> list[str]:
        """The pool in order: initial pool texts, then every kept candidate."""
        return list(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


class NoveltyFilter(PoolTexts):
    """Streaming ROUGE-L novelty filter with the exact decisions of ``rouge-score``.

    Args:
        threshold: reject a candidate iff its max ROUGE-L F vs the pool is strictly greater
            (0.7 in Self-Instruct and Alpaca, 0.85 in SeDi-Instruct).
        pool: initial pool texts (e.g. the seed instructions).
        top_k: when > 0, also record the k most similar pool items and the mean F over the pool
            (Self-Instruct stored the top 10 and the mean). This scores every pool item sharing a
            token with the candidate, so it is much slower; off by default.
    """

    def __init__(self, threshold: float = 0.7, *, pool: Iterable[str] = (), top_k: int = 0) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"novelty threshold must be in [0, 1], got {threshold}")
        if top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {top_k}")
        self.threshold = float(threshold)
        self.top_k = int(top_k)
        self._texts: list[str] = []
        self._index = RougeIndex()
        self.add_pool(pool)

    def add_pool(self, texts: Iterable[str]) -> None:
        """Add texts to the pool without deciding on them (e.g. seed instructions)."""
        for text in texts:
            self._index.add(rouge_tokenize(text))
            self._texts.append(text)

    def check(self, candidates: Sequence[str], *, commit: bool = True) -> list[NoveltyDecision]:
        """Decide candidates in order; a kept one joins the pool before the next is decided.

        Args:
            candidates: texts to decide, in generation order.
            commit: when False, decide each candidate against the current pool without adding.
        """
        decisions = []
        for text in candidates:
            tokens = rouge_tokenize(text)
            decision = self._decide_all(tokens) if self.top_k else self._decide(tokens)
            if commit and decision.kept:
                self._index.add(tokens)
                self._texts.append(text)
            decisions.append(decision)
        return decisions

    def _decide(self, tokens: list[str]) -> NoveltyDecision:
        best, nearest = self._index.max_f(tokens)
        return NoveltyDecision(kept=best <= self.threshold, max_score=best, nearest=nearest)

    def _decide_all(self, tokens: list[str]) -> NoveltyDecision:
        """Score the whole pool (top_k mode): max, nearest, top-k and mean as Self-Instruct did."""
        if not self._texts:
            return NoveltyDecision(kept=True, max_score=0.0, nearest=None)
        scores = self._index.all_f(tokens)
        j = int(np.argmax(scores))
        best = float(scores[j])
        order = np.lexsort((np.arange(scores.size), -scores))[: self.top_k]
        return NoveltyDecision(
            kept=best <= self.threshold,
            max_score=best,
            nearest=j if best > 0 else None,
            top=tuple((int(i), float(scores[i])) for i in order),
            mean_score=float(np.mean(scores)),
        )


class Decider(Protocol):
    """What the stage needs of a filter: the exact one or the MinHash/LSH one."""

    threshold: float
    top_k: int

    def check(self, candidates: Sequence[str], *, commit: bool = True) -> list[NoveltyDecision]:
        """Decide candidates in order, each kept one joining the pool."""
        ...


def make_filter(
    threshold: float, *, pool: Iterable[str] = (), top_k: int = 0, mode: str = "exact"
) -> Decider:
    """The novelty filter of ``mode`` (see :data:`MODES`)."""
    check_mode(mode, top_k, threshold)
    if mode == "minhash":
        from tunesmith.filters.minhash_novelty import MinHashNoveltyFilter

        return MinHashNoveltyFilter(threshold, pool=pool)
    return NoveltyFilter(threshold, pool=pool, top_k=top_k)


def check_mode(mode: str, top_k: int = 0, threshold: float = 0.7) -> None:
    """ConfigError unless ``mode`` is known and fits the other settings.

    Top-k scores need the exact mode's whole pool; LSH needs a threshold in (0, 1).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown novelty mode '{mode}' (choose from {', '.join(MODES)})")
    if mode == "minhash" and top_k:
        raise ConfigError("top_k needs mode exact (minhash scores only the proposed pairs)")
    if mode == "minhash" and not 0.0 < threshold < 1.0:
        raise ConfigError(f"minhash mode needs a threshold in (0, 1), got {threshold}")


def screen_records(
    flt: Decider, names: list[str], records: Sequence[Record], field: str
) -> StageResult:
    """Decide records in order; ``names`` (pool order) gets the id of every kept record."""
    check_field(field, FIELDS)  # the filter reads one field, not ``text`` (all of a record)
    result = StageResult()
    decisions = flt.check([field_text(r, field) for r in records])
    for record, d in zip(records, decisions, strict=True):
        if d.kept:
            scores: dict[str, object] = {"rouge_l_max": d.max_score}
            if flt.top_k:
                scores["rouge_l_top"] = [[names[i], s] for i, s in d.top]
                scores["rouge_l_mean"] = d.mean_score
            result.kept.append(record.with_scores(**scores))
            names.append(record.id)
        else:
            other = names[d.nearest] if d.nearest is not None else "?"
            reason = f"rouge_l {d.max_score:.4f} > {flt.threshold} vs {other}"
            rejected = record.with_scores(rouge_l_max=d.max_score).with_meta(rouge_l_nearest=other)
            result.rejected.append(Rejected(rejected, score=d.max_score, reason=reason))
    return result


def dedup_records(
    records: Sequence[Record],
    *,
    threshold: float,
    pool: Iterable[str] = (),
    field: str = "instruction",
    top_k: int = 0,
    mode: str = "exact",
) -> tuple[list[Record], list[Rejected]]:
    """Drop records too similar (ROUGE-L F > threshold) to the pool or to an earlier kept record.

    Args:
        records: decided in order; each kept one joins the pool.
        threshold: 0.7 (Self-Instruct, Alpaca) or 0.85 (SeDi-Instruct); exactly equal is kept.
        pool: texts every record is also compared with (e.g. seed instructions), named "pool[i]".
        field: the record text compared (``instruction``, ``input``, ``output`` or ``prompt``).
        top_k: also store ``rouge_l_top`` ([id, F] pairs) and ``rouge_l_mean`` (slower).
        mode: ``exact`` or ``minhash`` (approximate: may keep a near-duplicate the exact filter
            drops; a kept row's ``rouge_l_max`` is then the max over the verified pairs only).

    Returns:
        Kept records (with ``scores["rouge_l_max"]``) and rejections (score = max F, reason
        naming the kept row id or pool seed collided with).
    """
    check_field(field, FIELDS)
    pool_texts = list(pool)
    flt = make_filter(threshold, pool=pool_texts, top_k=top_k, mode=mode)
    names = [f"pool[{i}]" for i in range(len(pool_texts))]
    result = screen_records(flt, names, records, field)
    return result.kept, result.rejected


def _check_settings(field: str, threshold: float, top_k: int, mode: str) -> None:
    """Refuse bad dedup settings before any data is read."""
    check_field(field, FIELDS)
    NoveltyFilter(threshold, top_k=top_k)  # its constructor validates threshold and top_k
    check_mode(mode, top_k, threshold)


def dedup_to_folder(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    threshold: float,
    field: str = "instruction",
    pool_path: str | os.PathLike[str] | None = None,
    top_k: int = 0,
    force_new: bool = False,
    records: Sequence[Record] | None = None,
    mode: str = "exact",
) -> dict[str, Any]:
    """Dedup a dataset file into a run folder (``kept.jsonl``, ``rejected.jsonl``, summary).

    A folder holding a dedup of other data or settings is refused unless ``force_new``.
    ``records``: the rows of ``data`` already read (under a field map, limited); default: read it.

    Rejected rows carry ``rejected_by="novelty"``, ``score`` (max F), a ``reason`` naming the kept
    row (or ``pool[i]``) they collided with, and ``meta.rouge_l_nearest`` with that id. The
    summary (counts, threshold, time) goes to ``summary.json`` and the run's manifest.
    """
    from tunesmith.driver import RunDriver, fingerprint
    from tunesmith.filters.novelty_stage import NoveltyStage
    from tunesmith.io import read_records

    _check_settings(field, threshold, top_k, mode)
    records = read_records(data) if records is None else records
    _check_unique_ids(records, data)
    pool = [field_text(r, field) for r in read_records(pool_path)] if pool_path else []
    config = {"data": str(data), "threshold": threshold, "field": field, "top_k": top_k}
    config["mode"] = mode  # in the resume guard: an exact run never continues as minhash
    config["pool"] = str(pool_path) if pool_path else None
    driver = RunDriver.open(out, method="dedup", config=config, keeps_ledger=False,
                            inputs=fingerprint([*records, *pool]), resumable=("pool",),
                            force_new=force_new)  # fmt: skip
    with driver:
        start = time.perf_counter()
        kept, rejected = dedup_records(
            records, threshold=threshold, pool=pool, field=field, top_k=top_k, mode=mode
        )
        elapsed = time.perf_counter() - start
        driver.report(StageResult(kept, rejected), NoveltyStage.name, log=False)
        summary: dict[str, Any] = {"rows": len(records), "kept": len(kept)}
        summary.update(rejected=len(rejected), pool=len(pool), threshold=threshold, field=field)
        summary.update(top_k=top_k, mode=mode, elapsed_s=round(elapsed, 4))
        driver.write_artifact("summary.json", summary)
        driver.finish("done", **summary)
    return summary


def _check_unique_ids(records: Sequence[Record], path: str | os.PathLike[str]) -> None:
    first: dict[str, int] = {}
    for i, record in enumerate(records):
        if record.id in first:
            raise DataError(
                path, None, f"duplicate id '{record.id}' (rows {first[record.id] + 1} and {i + 1})"
            )
        first[record.id] = i
