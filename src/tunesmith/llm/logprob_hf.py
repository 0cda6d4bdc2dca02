"""The transformers runtime of :class:`~tunesmith.llm.logprob.LogProbModel`: batched torch.

Any HF causal LM (the dequantized embedded SmolLM2 by default), on CPU or GPU. Spans are sorted
by length and padded on the right within a batch; the causal mask keeps padding out of the real
positions, so only fp32 rounding of other GEMM shapes differs from one-at-a-time scoring (about
1e-4 on one token's log-prob with SmolLM2; ``batch_size=1`` is exact).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.errors import ConfigError, require
from tunesmith.llm.logprob import LogProbModel, Span, default_threads


def start_ids(tokenizer: Any) -> list[int]:
    """The start token every scored sequence begins with (see :mod:`tunesmith.llm.logprob`)."""
    with_special = tokenizer("a", add_special_tokens=True).input_ids
    plain = tokenizer("a", add_special_tokens=False).input_ids
    if len(with_special) > len(plain) and tokenizer.bos_token_id is not None:
        return [int(tokenizer.bos_token_id)]
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return [int(vocab["<|endoftext|>"])]
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return [int(tid)]
    raise ConfigError("the tokenizer has no BOS/EOS token to start a scored sequence with")


class TransformersLogProb(LogProbModel):
    """A transformers causal LM scoring texts after prompts, batched.

    Args:
        model: HF folder or hub id (offline: must be cached); None = the embedded SmolLM2.
        batch_size: sequences per forward pass.
        max_length: window in tokens (start + prompt + text, cut on the right as Cherry does).
        threads: torch CPU threads (default $TUNESMITH_THREADS or 1).
        device: torch device ("cpu" default; "cuda" on a GPU machine).
        dtype: torch dtype name of the weights ("float32" default).
        backend: a loaded :class:`~tunesmith.llm.transformers.TransformersBackend` whose model
            and tokenizer are shared (its ``model``/``device``/``dtype`` then apply).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: int = 8,
        max_length: int = 1024,
        threads: int | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        backend: Any = None,
    ) -> None:
        self.model = model
        self.batch_size = max(1, batch_size)
        self.max_length = max_length
        self.threads = threads
        self.device = device
        self.dtype = dtype
        self._backend = backend
        self._model: Any = None
        self._tokenizer: Any = None
        self.start_ids = []

    def setup(self) -> None:
        """Load the tokenizer and model (once)."""
        if self._model is not None:
            return
        if self._backend is not None:
            self._backend.setup()
            tok, lm, self.device = self._backend._tok, self._backend._model, self._backend._device
        else:
            tok, lm = self._load()
        self._tokenizer = tok
        self.start_ids = start_ids(tok)
        self._model = lm

    def _load(self) -> tuple[Any, Any]:
        torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        from tunesmith.llm.models import resolve_hf_model

        torch.set_num_threads(default_threads(self.threads))  # type: ignore[attr-defined]
        torch_dtype = getattr(torch, self.dtype, None)
        if torch_dtype is None or not isinstance(torch_dtype, torch.dtype):  # type: ignore[attr-defined]
            raise ConfigError(f"unknown torch dtype '{self.dtype}'")
        name = resolve_hf_model(self.model)
        from tunesmith.metrics.quiet import quiet_libraries

        try:
            # no "Loading weights" bar or load-time warnings over the command's own output
            with quiet_libraries():
                tok = transformers.AutoTokenizer.from_pretrained(name)  # type: ignore[attr-defined]
                lm = transformers.AutoModelForCausalLM.from_pretrained(  # type: ignore[attr-defined]
                    name, dtype=torch_dtype
                )
        except OSError as exc:
            raise ConfigError(f"cannot load causal LM '{name}': {exc}") from None
        return tok, lm.to(self.device).eval()

    def close(self) -> None:
        if self._backend is None:
            self._model = None

    def encode_plain(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False).input_ids)

    def span_logprobs(self, spans: Sequence[Span]) -> list[np.ndarray]:
        """Per-token log-probs of each span's scored tokens, in length-sorted padded batches."""
        self.setup()
        order = sorted(range(len(spans)), key=lambda i: len(spans[i].ids))
        out: list[np.ndarray] = [np.zeros(0) for _ in spans]
        for first in range(0, len(order), self.batch_size):
            idx = order[first : first + self.batch_size]
            for i, lp in zip(idx, self._forward([spans[i] for i in idx]), strict=True):
                out[i] = lp
        return out

    def _forward(self, batch: list[Span]) -> list[np.ndarray]:
        import torch

        # a shared backend may be generating on another thread: one forward at a time
        lock = self._backend._lock if self._backend is not None else contextlib.nullcontext()

        width = max(len(s.ids) for s in batch)
        pad = self._tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, s in enumerate(batch):
            input_ids[row, : len(s.ids)] = torch.tensor(s.ids)
            mask[row, : len(s.ids)] = 1
        with lock, torch.inference_mode():
            logits = (
                self._model(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
                )
                .logits[:, :-1]
                .float()
            )
            # position j predicts token j+1: ln p = logit - logsumexp, without a full
            # [batch, length, vocab] log_softmax copy (hundreds of MB at a 49K vocabulary).
            target = input_ids[:, 1:].to(self.device).unsqueeze(-1)
            picked = logits.gather(-1, target).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            values = picked.double().cpu().numpy()
        # scored token j (start <= j < len) is predicted by position j-1
        return [values[row, s.start - 1 : len(s.ids) - 1] for row, s in enumerate(batch)]
