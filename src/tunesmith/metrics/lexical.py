"""Lexical metrics: lengths, unique tokens, rep-n, n-gram diversity and memorization.

Definitions follow DiffTune (Wang & Liu 2023, Table 3) and the LD4LG evaluation code (Lovelace et
al. 2023) they reuse, computed over the whole set (not averaged per item):

* ``rep-n = 1 - |unique n-grams| / |n-grams|`` with n-grams counted within each item and pooled
  over all items (n = 2, 3, 4);
* ``diversity = prod_{n=2..4} (1 - rep-n)``;
* ``memorization`` = share of the generated 4-gram *occurrences* that also occur anywhere in the
  training set.

Tokens come from ``tunesmith.metrics.tokenize`` (spaCy's English rules by default, as LD4LG);
any hashable token works.
A metric whose denominator is zero (no item long enough to hold an n-gram) is ``None``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

from tunesmith.metrics.tokenize import words
from tunesmith.records import Record, field_text

NGRAM_ORDERS = (2, 3, 4)


def _ngrams(tokens: Sequence[Hashable], n: int) -> Iterable[tuple[Hashable, ...]]:
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def rep_n(token_lists: Sequence[Sequence[Hashable]], n: int) -> float | None:
    """``1 - unique n-grams / total n-grams`` over the whole set (DiffTune/LD4LG rep-n)."""
    total = sum(max(0, len(toks) - n + 1) for toks in token_lists)
    if total == 0:
        return None
    unique: set[tuple[Hashable, ...]] = set()
    for toks in token_lists:
        unique.update(_ngrams(toks, n))
    return 1.0 - len(unique) / total


def ngram_diversity(
    token_lists: Sequence[Sequence[Hashable]], orders: Sequence[int] = NGRAM_ORDERS
) -> dict[str, float | None]:
    """``rep_<n>`` for each order and ``diversity = prod_n (1 - rep_n)`` (None if any is None)."""
    out: dict[str, float | None] = {f"rep_{n}": rep_n(token_lists, n) for n in orders}
    diversity: float | None = 1.0
    for n in orders:
        value = out[f"rep_{n}"]
        diversity = None if value is None or diversity is None else diversity * (1.0 - value)
    out["diversity"] = diversity
    return out


def memorization(
    token_lists: Sequence[Sequence[Hashable]],
    train_token_lists: Sequence[Sequence[Hashable]],
    n: int = 4,
) -> float | None:
    """Share of generated n-gram occurrences (default 4-grams) present in the training set."""
    seen: set[tuple[Hashable, ...]] = set()
    for toks in train_token_lists:
        seen.update(_ngrams(toks, n))
    total = found = 0
    for toks in token_lists:
        for gram in _ngrams(toks, n):
            total += 1
            found += gram in seen
    return found / total if total else None


def unique_tokens(token_lists: Iterable[Sequence[Hashable]]) -> int:
    """Number of distinct token strings (case-sensitive)."""
    vocab: set[Hashable] = set()
    for toks in token_lists:
        vocab.update(toks)
    return len(vocab)


def field_texts(records: Sequence[Record], field: str) -> list[str]:
    """The text of ``field`` for each record: instruction, input, output, or prompt (both)."""
    return [field_text(r, field) for r in records]


def average_lengths(
    records: Sequence[Record],
    token_counts: Mapping[str, Sequence[int]],
) -> dict[str, float | None]:
    """``avg_<field>_words`` and ``avg_<field>_tokens`` for instruction, input and output.

    Averages are over all rows (an empty input counts as 0 words).

    Args:
        records: the dataset.
        token_counts: per field, the token count of each record (same order as ``records``).
    """
    out: dict[str, float | None] = {}
    n = len(records)
    for field in ("instruction", "input", "output"):
        texts = field_texts(records, field)
        out[f"avg_{field}_words"] = sum(len(words(t)) for t in texts) / n if n else None
        counts = token_counts[field]
        out[f"avg_{field}_tokens"] = sum(counts) / n if n else None
    return out
