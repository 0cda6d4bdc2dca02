"""Sampling rules of ``tunesmith stats`` and the work units behind its progress bar.

Model-based metrics read a seeded sample of rows (``DEFAULT_SAMPLE``); size-dependent metrics
are compared at equal size (the smallest dataset's); both are seeded so a rerun gives the same
numbers. See :mod:`tunesmith.metrics.stats`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

#: Rows the model-based metrics read by default (a seeded sample; 0 = every row).
DEFAULT_SAMPLE = 1000
#: Groups whose value depends on how many rows there are (compared at equal size).
SIZE_DEPENDENT: tuple[str, ...] = ("unique_tokens", "rep_n", "self_bleu")
#: Rough cost of one row per group, in work units (~ms on one CPU thread), for the ETA.
UNIT_COST: dict[str, float] = {
    "tokenize": 0.4,
    "self_bleu": 0.05,
    "mauve": 30.0,
    "perplexity": 120.0,
    "verb_noun": 6.0,
    "embedding": 15.0,
}
#: ``tick(label, units)``: ``units`` of work finished; ``label`` says what runs next.
Tick = Callable[[str, float], None]
T = TypeVar("T")
CHUNK = 4000  # rows tokenized between two progress ticks


def equal_size_target(sizes: Iterable[int]) -> int | None:
    """The smallest non-empty size when sizes differ, else None (nothing to equalise)."""
    nonzero = sorted({n for n in sizes if n > 0})
    return nonzero[0] if len(nonzero) > 1 else None


def sample_indices(n: int, sample: int | None, seed: int) -> list[int] | None:
    """Sorted indices of a seeded random sample of ``sample`` of ``n`` rows; None = all rows."""
    if not sample or sample >= n:
        return None
    return sorted(random.Random(seed).sample(range(n), sample))


def size_note(kept: int, total: int) -> str:
    """The note on a dataset whose size-dependent metrics read a sample."""
    return (
        f"unique tokens, rep-n, diversity and Self-BLEU on a seeded sample of {kept:,} of "
        f"{total:,} rows, the size of the smallest dataset compared (--no-equal-size for all rows)"
    )


def chunked(fn: Callable[[Sequence[str]], list[T]], texts: Sequence[str], tick: Tick) -> list[T]:
    """``fn`` (tokenize, token_counts) over chunks of rows, ticking after each chunk: the
    longest cheap step on 50K rows, so the progress bar moves and its ETA means something."""
    out: list[T] = []
    for start in range(0, len(texts), CHUNK):
        part = texts[start : start + CHUNK]
        out.extend(fn(part))
        tick("tokenizing", len(part) * UNIT_COST["tokenize"])
    return out
