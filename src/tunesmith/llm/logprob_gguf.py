"""The llama.cpp runtime of :class:`~tunesmith.llm.logprob.LogProbModel` (GGUF models).

Scoring runs through an :class:`~tunesmith.llm.embedded.EmbeddedBackend` (its own, or one shared
with generation): one sequence at a time, logits read for every position in ``n_batch`` chunks.
Tokenization follows the same rule as the transformers runtime (the prompt and text tokenized
together, special tokens parsed as the HF tokenizer does, one start token first), so both
runtimes score the same token sequences of the embedded SmolLM2; the Q4_1 kernels make the
numbers close to, not equal to, the dequantized fp32 model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.llm.logprob import LogProbModel, Span, default_threads


class LlamaCppLogProb(LogProbModel):
    """A GGUF model scoring texts after prompts through llama.cpp.

    Args:
        model: path of a .gguf file; None = the packaged embedded model.
        max_length: window in tokens (the context size of an own backend).
        threads: llama.cpp threads (default $TUNESMITH_THREADS or 1).
        backend: an :class:`~tunesmith.llm.embedded.EmbeddedBackend` to share with generation;
            the window is then at most its ``n_ctx``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        max_length: int = 1024,
        threads: int | None = None,
        backend: Any = None,
    ) -> None:
        self.model = model
        self.max_length = max_length
        self.threads = threads
        self._own = backend is None
        self._backend = backend
        self.start_ids = []

    def setup(self) -> None:
        if self.start_ids:
            return
        if self._backend is None:
            from tunesmith.llm.embedded import EmbeddedBackend

            self._backend = EmbeddedBackend(
                model_path=self.model, threads=default_threads(self.threads), n_ctx=self.max_length
            )
        self._backend.setup()
        llama = self._backend._llm
        with_bos = llama.tokenize(b"a", add_bos=True, special=True)
        if len(with_bos) > 1:  # the GGUF asks for a BOS: the paper's tokenizer rule
            self.start_ids = [int(with_bos[0])]
        else:
            eot = llama.tokenize(b"<|endoftext|>", add_bos=False, special=True)
            self.start_ids = [int(eot[0])] if len(eot) == 1 else [int(llama.token_eos())]

    def close(self) -> None:
        """Free an own llama.cpp model (a shared backend is left to its owner)."""
        if self._own and self._backend is not None:
            self._backend.close()
            self._backend = None
            self.start_ids = []

    def window(self) -> int:
        self.setup()
        return min(self.max_length, int(self._backend.n_ctx))

    def encode_plain(self, text: str) -> list[int]:
        return list(self._backend._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def span_logprobs(self, spans: Sequence[Span]) -> list[np.ndarray]:
        """Per-token log-probs of each span's scored tokens, one llama.cpp evaluation per span."""
        self.setup()
        backend = self._backend
        out = []
        for s in spans:
            with backend._lock:
                lp = backend._score_ids(s.ids[: s.start], s.ids[s.start :])
            out.append(np.asarray(lp, dtype=np.float64))
        return out
