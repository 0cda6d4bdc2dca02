"""ROUGE-L exactly as the ``rouge-score`` package computes it (``RougeScorer(["rougeL"])``).

Self-Instruct (Wang et al. 2023) and the Alpaca and SeDi-Instruct pipelines drop a generated
instruction when its ROUGE-L F-measure against any pool instruction exceeds a threshold, using
``rouge-score`` without a stemmer. Decisions at the threshold depend on the exact float operations,
so this module replicates them: the same tokenizer, the same LCS length (computed bit-parallel by
rapidfuzz instead of a Python DP table) and the same float formula for F.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from rapidfuzz.distance import LCSseq

# rouge_score.tokenize: lower-case, replace every run of non-[a-z0-9] characters by a space, split
# on whitespace, keep tokens matching ^[a-z0-9]+$. After lower-casing, that is exactly the maximal
# runs of [a-z0-9] (lower() may map a non-ASCII letter such as KELVIN SIGN to 'k' first, as there).
_TOKEN_RE = re.compile(r"[a-z0-9]+")


def rouge_tokenize(text: str) -> list[str]:
    """Tokens as ``rouge_score.tokenize.tokenize(text, stemmer=None)`` returns them."""
    return _TOKEN_RE.findall(text.lower())


def rouge_f_from_lcs(lcs: int, target_len: int, prediction_len: int) -> float:
    """ROUGE-L F from an LCS length, with ``rouge_score``'s exact float operations.

    ``_score_lcs``: precision = lcs / len(prediction), recall = lcs / len(target), then
    ``scoring.fmeasure``: ``2 * precision * recall / (precision + recall)`` (0 when both are 0).
    The formula is symmetric in floats too (doubling is exact), so argument order only matters
    for readability.
    """
    if target_len == 0 or prediction_len == 0:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_f_vector(
    lcs: NDArray[np.integer],
    target_len: int | NDArray[np.integer],
    prediction_lens: NDArray[np.integer],
) -> NDArray[np.float64]:
    """:func:`rouge_f_from_lcs` for many pairs at once (numpy float64 ops round the same).

    ``target_len`` is one length for all pairs or one per pair.
    """
    lcs_f = lcs.astype(np.float64)
    n = prediction_lens.astype(np.float64)
    target = np.asarray(target_len, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs_f / n
        recall = lcs_f / target
        denom = precision + recall
        f = 2 * precision * recall / denom
    ok = (n > 0) & (target > 0) & (denom > 0)
    return np.where(ok, f, 0.0)


def lcs_length(a: Sequence[object] | str, b: Sequence[object] | str) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel)."""
    return int(LCSseq.similarity(a, b))


def rouge_l_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists, identical to ``RougeScorer(["rougeL"])``'s fmeasure.

    Args:
        a: target tokens (from :func:`rouge_tokenize`).
        b: prediction tokens.
    """
    if not a or not b:
        return 0.0
    return rouge_f_from_lcs(lcs_length(list(a), list(b)), len(a), len(b))
