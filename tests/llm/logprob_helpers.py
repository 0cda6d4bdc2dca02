"""The embedded model for log-prob tests, loaded once per test process (shared across modules),
and Cherry LLM's published computation written out directly with transformers.

``cherry_nll`` follows the paper (Li et al. 2023, "From Quantity to Quality", §2.3) and its
description of the scoring script: ``input_ids = tokenizer.encode(prompt + answer)`` cut to
``max_length``; ``labels = input_ids`` with the first ``len(tokenizer.encode(prompt))`` set to
-100; the model's own mean cross-entropy ``loss`` is s(A|Q); s(A) is the same on the answer
alone. The paper's LLaMA tokenizer puts a BOS first; SmolLM2's adds none, so ``encode`` here puts
``<|endoftext|>`` first (the start token tunesmith uses for such tokenizers). Independent of
tunesmith's batched log-softmax code: only the HF loss is used.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tunesmith.errors import TunesmithError
from tunesmith.llm.logprob import LogProbModel, Span


@functools.lru_cache(maxsize=1)
def _hf_dir() -> str:
    from tunesmith.llm.models import embedded_hf_dir

    return str(embedded_hf_dir())


def hf_dir() -> str:
    try:
        return _hf_dir()
    except TunesmithError as exc:  # the embedded model package is not installed
        pytest.skip(f"embedded model unavailable: {exc}")


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    from tunesmith.llm.logprob_hf import TransformersLogProb

    scorer = TransformersLogProb(batch_size=1, threads=1)
    scorer.setup()
    return scorer


def scorer(batch_size: int = 1, max_length: int = 1024) -> Any:
    """The shared embedded-model log-prob model. ``batch_size=1`` for exact comparisons: fp32
    GEMMs of another shape (a padded batch) round differently, ~1e-4 relative on one token."""
    hf_dir()
    lm = _scorer()
    lm.batch_size = batch_size
    lm.max_length = max_length
    return lm


@functools.lru_cache(maxsize=1)
def _direct() -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(hf_dir())
    model = AutoModelForCausalLM.from_pretrained(hf_dir()).eval()
    return tok, model


def encode(text: str) -> list[int]:
    """The paper's ``tokenizer.encode``: start token, then the text's tokens."""
    tok, _ = _direct()
    return [
        tok.convert_tokens_to_ids("<|endoftext|>"),
        *tok(text, add_special_tokens=False).input_ids,
    ]


def masked_loss(ids: list[int], n_masked: int) -> tuple[float, int]:
    """HF's mean cross-entropy with labels[:n_masked] = -100, and how many tokens it averages."""
    import torch

    _, model = _direct()
    input_ids = torch.tensor([ids])
    labels = input_ids.clone()
    labels[0, :n_masked] = -100
    with torch.no_grad():
        loss = model(input_ids=input_ids, labels=labels).loss
    return float(loss), max(0, len(ids) - max(n_masked, 1))


def cherry_nll(prompt: str, answer: str, max_length: int = 1024) -> tuple[float, int, float, int]:
    """(s(A|Q), tokens, s(A), tokens): Cherry's conditioned and direct answer losses.

    The direct pass keeps as many answer tokens as the conditioned one scored (Cherry shortens
    its window by the prompt's length for that reason). NaN when nothing is scored.
    """
    whole = encode(prompt + answer)[:max_length]
    start = len(encode(prompt))
    cond, n = masked_loss(whole, start)
    alone, m = masked_loss(encode(answer)[: 1 + max(n, 0)], 1)
    return cond, n, alone, m


def direct_ppl(prompt: str, text: str, max_length: int = 1024) -> float:
    """ppl(text | prompt) by the same rule (prompt "" = the text alone after the start token)."""
    ids = encode(prompt + text)[:max_length]
    return math.exp(masked_loss(ids, len(encode(prompt)))[0])


@dataclasses.dataclass(frozen=True)
class ExactScore:
    """A TextScore look-alike whose ppl is the table's value exactly (no exp(log(x)) rounding)."""

    nll: float | None
    tokens: int = 0
    reason: str | None = None
    ppl: float | None = None

    @property
    def missing(self) -> bool:
        return self.nll is None


class FakeLogProb:
    """A log-prob model whose perplexities come from ``ppl(prompt, text)`` (unit tests of the
    ratios, filters and the selective rule); None from ``ppl`` = a missing score."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[tuple[str, str]] = []

    def ppl(self, prompt: str, text: str) -> float | None:
        raise NotImplementedError

    def setup(self) -> None:
        pass

    def _score(self, prompt: str, text: str) -> Any:
        self.seen.append((prompt, text))
        value = self.ppl(prompt, text)
        if value is None:
            return ExactScore(None, 0, "nothing to score")
        return ExactScore(math.log(value), 1, None, value)

    def score_continuation(self, prompts: Any, texts: Any) -> list[Any]:
        self.calls += 1
        prompts = prompts or [""] * len(texts)
        return [self._score(p, t) for p, t in zip(prompts, texts, strict=True)]

    def score_pairs(self, prompts: Any, texts: Any) -> list[tuple[Any, Any]]:
        self.calls += 1
        return [
            (self._score(p, t), self._score("", t)) for p, t in zip(prompts, texts, strict=True)
        ]


class CharModel(LogProbModel):
    """One token per character, ln p = -1 for every token: the rule without a model."""

    def __init__(self, max_length: int = 16) -> None:
        self.max_length = max_length
        self.start_ids = [0]
        self.seen: list[Span] = []

    def setup(self) -> None:
        pass

    def encode_plain(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def span_logprobs(self, spans: Sequence[Span]) -> list[np.ndarray]:
        self.seen += spans
        return [-np.ones(len(s.ids) - s.start) for s in spans]
