"""A local Hugging Face causal LM (a folder or a cached hub id) with batched generation.

For users with a GPU and an HF checkpoint, and for code paths that need torch. Offline, the
default is the embedded SmolLM2-135M-Instruct dequantized to fp32 (see
:func:`tunesmith.llm.models.embedded_hf_dir`). Requests with identical sampling settings are
batched with left padding (a decoder continues from the right edge of every row); chat requests
use the tokenizer's chat template. OpenAI-style presence/frequency penalties are applied by a
logits processor over the generated tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from tunesmith.errors import ConfigError, require
from tunesmith.llm.base import (
    Backend,
    Completion,
    OnDone,
    Request,
    SamplingParams,
    check_options,
)
from tunesmith.llm.embedded import sample_seed
from tunesmith.llm.models import EMBEDDED_MODEL, resolve_hf_model

_OPTIONS = ("threads", "batch_size", "device", "dtype", "seed")


class TransformersBackend(Backend):
    """``transformers`` ``generate`` on a local model.

    Args:
        model: a local folder or hub id (offline: only if already in the HF cache); None or
            ``smollm2-135m-instruct`` is the embedded model.
        threads: torch CPU threads (default ``$TUNESMITH_THREADS`` or 1).
        batch_size: prompts per ``generate`` call.
        device: ``cpu``, ``cuda``, ``mps`` or ``auto`` (cuda when available).
        dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        seed: added to every derived sampling seed.
    """

    name = "transformers"
    is_local = True

    def __init__(
        self,
        model: str | None = None,
        threads: int | None = None,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        check_options("transformers", unknown, _OPTIONS)
        super().__init__(model or EMBEDDED_MODEL)
        self.threads = int(threads or os.environ.get("TUNESMITH_THREADS", "1"))
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.dtype = dtype
        self.seed = int(seed)
        self._model: Any = None
        self._tok: Any = None
        self._logprob: Any = None
        self._lock = threading.Lock()

    def setup(self) -> None:
        if self._model is not None:
            return
        torch: Any = require("torch", "hf")
        transformers: Any = require("transformers", "hf")
        torch.set_num_threads(self.threads)
        path = resolve_hf_model(self.model)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}
        dtypes["float16"] = torch.float16
        if self.dtype not in dtypes:
            raise ConfigError(f"dtype must be one of {', '.join(dtypes)}, not '{self.dtype}'")
        from tunesmith.metrics.quiet import quiet_libraries

        try:
            # no "Loading weights" bar or load-time warnings over the command's own output
            with quiet_libraries():
                tok = transformers.AutoTokenizer.from_pretrained(path)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    path, dtype=dtypes[self.dtype]
                )
        except OSError as exc:
            raise ConfigError(
                f"cannot load model '{self.model}': {str(exc).splitlines()[0]}"
            ) from None
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._tok, self._model, self._device = tok, model.to(device).eval(), device

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "device": self.device,
            "dtype": self.dtype,
        }

    def close(self) -> None:
        self._model = None
        self._tok = None
        self._logprob = None

    def score_continuation(self, prefix: str, continuation: str) -> list[float]:
        """Per-token log-probs of ``continuation`` after ``prefix`` (the rule of
        :mod:`tunesmith.llm.logprob`; empty when nothing can be scored)."""
        return [float(x) for x in self.logprob_model().token_logprobs([prefix], [continuation])[0]]

    def logprob_model(self) -> Any:
        """A :class:`~tunesmith.llm.logprob_hf.TransformersLogProb` sharing this model."""
        if self._logprob is None:
            from tunesmith.llm.logprob_hf import TransformersLogProb

            self._logprob = TransformersLogProb(
                batch_size=self.batch_size, max_length=self._window(), backend=self
            )
        return self._logprob

    def _window(self) -> int:
        self.setup()
        n = getattr(self._model.config, "max_position_embeddings", None)
        return int(n) if n else 2048

    # -- generation ------------------------------------------------------------------------------
    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        """Batches samples that share sampling settings; reports a request once all its
        samples are done."""
        self.setup()
        items = [(ri, si) for ri, r in enumerate(requests) for si in range(r.n)]
        groups: dict[str, list[tuple[int, int]]] = {}
        for ri, si in items:
            r = requests[ri]
            key = json.dumps([r.messages is None, r.params.to_dict()], sort_keys=True)
            groups.setdefault(key, []).append((ri, si))
        results: dict[int, dict[int, Completion]] = {}
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                batch = group[start : start + self.batch_size]
                outs = self._generate([requests[ri] for ri, _ in batch], [si for _, si in batch])
                for (ri, si), comp in zip(batch, outs, strict=True):
                    results.setdefault(ri, {})[si] = comp
                    if len(results[ri]) == requests[ri].n:
                        on_done(ri, [results[ri][s] for s in range(requests[ri].n)])

    def _prompt(self, request: Request) -> str:
        if request.prompt is not None:
            return request.prompt
        messages = [dict(m) for m in request.messages or ()]
        return str(
            self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def _generate(self, requests: list[Request], samples: list[int]) -> list[Completion]:
        """One ``generate`` call; every request here has the same params and kind."""
        import torch

        p: SamplingParams = requests[0].params
        tok = self._tok
        enc = tok(
            [self._prompt(r) for r in requests],
            return_tensors="pt",
            padding=True,
            add_special_tokens=requests[0].prompt is not None,
        ).to(self._device)
        width = enc["input_ids"].shape[1]
        kwargs: dict[str, Any] = {"max_new_tokens": p.max_tokens, "pad_token_id": tok.pad_token_id}
        if p.temperature > 0:
            kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if p.stop:
            kwargs.update(stop_strings=list(p.stop), tokenizer=tok)
        if p.presence_penalty or p.frequency_penalty:
            kwargs["logits_processor"] = [
                PresenceFrequencyPenalty(width, p.presence_penalty, p.frequency_penalty)
            ]
        seeds = [
            (sample_seed(r, s) + self.seed) % (2**31 - 1)
            for r, s in zip(requests, samples, strict=True)
        ]
        with self._lock, torch.inference_mode():
            # One RNG stream per batch, seeded from its members: reproducible for a given batch.
            torch.manual_seed(int(hashlib.sha256(repr(seeds).encode()).hexdigest()[:8], 16))
            start = time.perf_counter()
            out = self._model.generate(
                **enc, **kwargs, return_dict_in_generate=True, output_logits=p.logprobs
            )
            elapsed = time.perf_counter() - start
            logprobs = None
            if p.logprobs:
                logprobs = self._model.compute_transition_scores(
                    out.sequences, out.logits, normalize_logits=True
                )
        return [
            self._completion(
                requests[k], out.sequences[k, width:], int(enc["attention_mask"][k].sum()),
                None if logprobs is None else logprobs[k], elapsed / len(requests),
            )
            for k in range(len(requests))
        ]  # fmt: skip

    def _completion(
        self, request: Request, new_ids: Any, prompt_tokens: int, logprobs: Any, latency: float
    ) -> Completion:
        """Text up to EOS or the first stop string; why it stopped; token counts."""
        tok = self._tok
        ids = new_ids.tolist()
        ends = set(_as_list(self._model.generation_config.eos_token_id))
        ends |= {tok.eos_token_id, tok.pad_token_id}
        # A row ends at its first EOS; rows that finished early (EOS or a stop string) are
        # padded after that. The EOS itself is not counted, as OpenAI-style servers do.
        cut = next((i for i, t in enumerate(ids) if t in ends), None)
        n = len(ids) if cut is None else cut
        text = tok.decode(ids[:n], skip_special_tokens=True)
        finish = "length" if cut is None else "stop"
        hits = [text.find(s) for s in request.params.stop if s and s in text]
        if hits:
            text, finish = text[: min(hits)], "stop"
        lp = None if logprobs is None else [float(x) for x in logprobs[:n].tolist()]
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=n,
            latency_s=latency,
            token_logprobs=lp,
        )


class PresenceFrequencyPenalty:
    """OpenAI's penalties: ``logit[t] -= presence * (count[t] > 0) + frequency * count[t]``,
    counting only generated tokens (positions from ``prompt_width`` on)."""

    def __init__(self, prompt_width: int, presence: float, frequency: float) -> None:
        self.prompt_width = prompt_width
        self.presence = presence
        self.frequency = frequency

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_width :]
        counts = torch.zeros_like(scores)
        if generated.shape[1]:
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.presence * (counts > 0).to(scores.dtype) - self.frequency * counts


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [int(value)]
