"""Log-probabilities of a text after a prompt: THE scoring interface behind IFD, reverse IFD,
the perplexity filter, selective reflection and the perplexity metric.

One tokenization rule, Cherry LLM's (Li et al. 2023, "From Quantity to Quality", §2.3), on both
runtimes (:mod:`tunesmith.llm.logprob_hf` for transformers, :mod:`tunesmith.llm.logprob_gguf`
for llama.cpp):

- the prompt and the text are tokenized *together* (``encode(prompt + text)``), cut to
  ``max_length`` tokens on the right, and the first ``len(encode(prompt))`` tokens are masked
  (label -100): only the text's tokens are scored, each after everything before it;
- ``encode`` puts one start token first, as the paper's LLaMA tokenizer puts its BOS: the model's
  BOS when its tokenizer adds one, else ``<|endoftext|>`` (SmolLM2, GPT-2), else EOS. So the first
  text token is scored too, also without a prompt;
- for IFD the unconditioned pass scores exactly as many answer tokens as the conditioned pass
  kept after truncation (Cherry shortens that window by the prompt's length for the same reason),
  so both perplexities are over the same answer tokens (:meth:`LogProbModel.score_pairs`).

When no token can be scored (an empty text, a prompt that fills the window) the score is
*missing*: :attr:`TextScore.nll` is None and :attr:`TextScore.reason` says why. It is never 0:
callers treat a missing score as "not better" (see :mod:`tunesmith.filters.score_decision`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.errors import ConfigError

RUNTIMES = ("transformers", "llama-cpp")


@dataclasses.dataclass(frozen=True)
class TextScore:
    """How well a model predicts one text: mean negative log-likelihood over its scored tokens.

    Attributes:
        nll: mean of -ln p(token | everything before it) over the scored tokens; None = missing.
        tokens: how many tokens were scored (0 when missing).
        reason: why the score is missing (None when it is not).
    """

    nll: float | None
    tokens: int = 0
    reason: str | None = None

    @property
    def ppl(self) -> float | None:
        """Perplexity exp(nll), or None when the score is missing."""
        return None if self.nll is None else math.exp(self.nll)

    @property
    def missing(self) -> bool:
        return self.nll is None

    @classmethod
    def from_logprobs(cls, logprobs: np.ndarray, reason: str | None = None) -> TextScore:
        """The score of per-token natural-log probabilities (missing when there are none)."""
        if logprobs.size == 0:
            return cls(None, 0, reason or "no token to score")
        return cls(-float(np.mean(logprobs, dtype=np.float64)), int(logprobs.size))


@dataclasses.dataclass(frozen=True)
class Span:
    """Token ids of start + prompt + text and where the scored text tokens begin.

    ``ids[start:]`` are scored (``start >= 1``: every scored token has a context); ``reason`` is
    set when nothing can be scored.
    """

    ids: list[int]
    start: int
    reason: str | None = None

    @property
    def n_scored(self) -> int:
        return 0 if self.reason else len(self.ids) - self.start


def default_threads(threads: int | None) -> int:
    return int(threads or os.environ.get("TUNESMITH_THREADS", "1") or 1)


class LogProbModel:
    """A causal LM that scores texts after prompts by Cherry LLM's rule (module docstring).

    Runtimes implement :meth:`setup`, :meth:`encode_plain` (token ids without special tokens),
    :attr:`start_ids`, :meth:`window` and :meth:`span_logprobs`; everything else is shared.

    Args:
        max_length: the window in tokens (Cherry LLM's ``max_length``; start+prompt+text).
    """

    max_length: int
    start_ids: list[int]

    def setup(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free the model (no-op by default)."""

    def encode_plain(self, text: str) -> list[int]:
        raise NotImplementedError

    def window(self) -> int:
        """The effective window (``max_length``, or less if the runtime's context is smaller)."""
        return self.max_length

    def span_logprobs(self, spans: Sequence[Span]) -> list[np.ndarray]:
        """ln p(ids[j] | ids[:j]) for j in ``range(start, len(ids))`` of each (scorable) span."""
        raise NotImplementedError

    # -- the one tokenization rule ---------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Start token + the text's tokens (the paper's ``tokenizer.encode``, BOS included)."""
        return list(self.start_ids) + self.encode_plain(text)

    def span(self, prompt: str, text: str, max_text_tokens: int | None = None) -> Span:
        """The tokens scored for ``text`` after ``prompt``: encode(prompt + text), prompt masked.

        Args:
            prompt: the conditioning text ("" = the start token only).
            text: the scored text.
            max_text_tokens: score at most this many text tokens (the IFD pairing rule).
        """
        self.setup()
        if not text:
            return Span([], 0, "empty text")
        limit = self.window()
        start = len(self.encode(prompt))  # Cherry: len(tokenizer.encode(prompt)), BOS included
        if start >= limit:
            return Span([], 0, f"prompt of {start} tokens fills the {limit}-token window")
        ids = self.encode(prompt + text)[:limit]
        if max_text_tokens is not None:
            ids = ids[: start + max_text_tokens]
        if len(ids) <= start:
            return Span([], 0, "no text token left after the prompt")
        return Span(ids, start)

    def score_spans(self, spans: Sequence[Span]) -> list[TextScore]:
        """Scores of prepared spans; spans with a reason come back missing with that reason."""
        todo = [i for i, s in enumerate(spans) if s.reason is None]
        out = [TextScore(None, 0, s.reason) for s in spans]
        for i, lp in zip(todo, self.span_logprobs([spans[i] for i in todo]), strict=True):
            out[i] = TextScore.from_logprobs(lp)
        return out

    def score_continuation(
        self, prompts: Sequence[str] | None, texts: Sequence[str]
    ) -> list[TextScore]:
        """Mean NLL and token count of each text after its prompt (None = no prompts), batched.

        Raises:
            ValueError: prompts and texts differ in length.
        """
        prompts = [""] * len(texts) if prompts is None else list(prompts)
        if len(prompts) != len(texts):
            raise ValueError("prompts and texts must have the same length")
        return self.score_spans([self.span(p, t) for p, t in zip(prompts, texts, strict=True)])

    def score_pairs(
        self, prompts: Sequence[str], texts: Sequence[str]
    ) -> list[tuple[TextScore, TextScore]]:
        """(text after prompt, text alone) per row, both over the same number of text tokens.

        The alone pass is cut to the tokens the conditioned pass scored (the conditioned window
        also holds the prompt), so a ratio compares like with like. One batched call.
        """
        if len(prompts) != len(texts):
            raise ValueError("prompts and texts must have the same length")
        cond = [self.span(p, t) for p, t in zip(prompts, texts, strict=True)]
        alone = [
            Span([], 0, f"conditioned pass: {c.reason}")
            if c.reason
            else self.span("", t, c.n_scored)
            for c, t in zip(cond, texts, strict=True)
        ]
        scores = self.score_spans(cond + alone)
        n = len(cond)
        return list(zip(scores[:n], scores[n:], strict=True))

    def token_logprobs(self, prompts: Sequence[str], texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token ln p of each text after its prompt (empty array when nothing is scored)."""
        spans = [self.span(p, t) for p, t in zip(prompts, texts, strict=True)]
        todo = [i for i, s in enumerate(spans) if s.reason is None]
        out = [np.zeros(0) for _ in spans]
        for i, lp in zip(todo, self.span_logprobs([spans[i] for i in todo]), strict=True):
            out[i] = lp
        return out


def make_logprob_model(
    runtime: str = "transformers",
    model: str | None = None,
    *,
    batch_size: int = 8,
    max_length: int = 1024,
    threads: int | None = None,
    **options: Any,
) -> LogProbModel:
    """The log-prob model of a runtime: "transformers" (batched torch) or "llama-cpp" (GGUF).

    Args:
        runtime: transformers | llama-cpp (also "llama_cpp", "embedded").
        model: HF folder/id or .gguf path; None = the embedded SmolLM2.
        batch_size: sequences per forward pass (transformers).
        max_length: window in tokens.
        threads: CPU threads (default $TUNESMITH_THREADS or 1).
        options: runtime extras (``device``, ``dtype`` for transformers).
    """
    if runtime == "transformers":
        from tunesmith.llm.logprob_hf import TransformersLogProb

        return TransformersLogProb(
            model, batch_size=batch_size, max_length=max_length, threads=threads, **options
        )
    if runtime in ("llama-cpp", "llama_cpp", "embedded"):
        from tunesmith.llm.logprob_gguf import LlamaCppLogProb

        return LlamaCppLogProb(model, max_length=max_length, threads=threads, **options)
    raise ConfigError(f"unknown runtime '{runtime}' (choose from {', '.join(RUNTIMES)})")


class UsesLogProbModel:
    """For stages that score with a causal LM: ``setup()`` builds the transformers runtime from
    the stage's ``model``, ``batch_size``, ``max_length`` and ``threads`` unless a model was
    shared through ``_scorer``, then loads it (once)."""

    model: str | None
    batch_size: int
    max_length: int
    threads: int | None
    _scorer: LogProbModel | None

    def setup(self) -> None:
        if self._scorer is None:
            self._scorer = make_logprob_model(
                "transformers",
                self.model,
                batch_size=self.batch_size,
                max_length=self.max_length,
                threads=self.threads,
            )
        self._scorer.setup()
