"""Perplexity of each text under a causal LM, summarised as DiffTune's filter sees it.

DiffTune filters generated instructions whose perplexity under a causal LM (GPT2-Large in the
paper) exceeds 150. We score each text with :mod:`tunesmith.llm.logprob` (the embedded
SmolLM2-135M by default, via its dequantized HF copy; any HF causal LM by name): every token of
the text is scored after a single start token, ``ppl = exp(-mean ln p)``. Reported: the mean, the
median and the share of texts with ``ppl < threshold`` (default 150) over the texts that have a
perplexity (empty ones have none and are left out).
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Sequence
from typing import Any

DEFAULT_PPL_THRESHOLD = 150.0


def perplexities(
    texts: Sequence[str], *, model: str | None = None, batch_size: int = 8
) -> list[float | None]:
    """Per-text perplexity under the causal LM ``model`` (None = the embedded SmolLM2); None for
    a text with nothing to score."""
    return [s.ppl for s in _scorer(model, batch_size).score_continuation(None, list(texts))]


@functools.lru_cache(maxsize=2)
def _scorer(model: str | None, batch_size: int) -> Any:
    """One loaded scorer per model, reused across datasets in one ``tunesmith stats`` call."""
    from tunesmith.llm.logprob import make_logprob_model

    return make_logprob_model("transformers", model, batch_size=batch_size)


def perplexity_stats(
    texts: Sequence[str],
    *,
    model: str | None = None,
    threshold: float = DEFAULT_PPL_THRESHOLD,
    batch_size: int = 8,
) -> dict[str, float | None]:
    """``ppl_mean``, ``ppl_median`` and ``ppl_share_below`` (ppl < threshold) over non-empty texts."""
    scored = [t for t in texts if t.strip()]
    ppl = [p for p in perplexities(scored, model=model, batch_size=batch_size) if p is not None]
    if not ppl:
        return {"ppl_mean": None, "ppl_median": None, "ppl_share_below": None}
    return {
        "ppl_mean": statistics.fmean(ppl),
        "ppl_median": statistics.median(ppl),
        "ppl_share_below": sum(p < threshold for p in ppl) / len(ppl),
    }
