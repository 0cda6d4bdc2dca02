"""The LLM backend interface: a batch of requests in, completions (text + usage) out.

Every backend (embedded llama.cpp, any OpenAI-compatible server, local transformers, the fake)
implements ``complete``. Concurrency, retries and rate limits live inside the backend; caching,
budgets and the usage ledger live in :class:`tunesmith.llm.client.LLM`, which wraps any backend.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from tunesmith.errors import ConfigError

Message = Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; every field is part of the request-cache key."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logprobs: bool = False
    #: how many alternatives per generated token to return with their log-probs (0: none);
    #: judges read the first token's alternatives (AlpacaEval 2's preference from log-probs).
    top_logprobs: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy made this 75% of a cache-key computation.
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["stop"] = list(self.stop)
        if not self.top_logprobs:
            del d["top_logprobs"]  # absent when unused: cache keys made before it existed hold
        return d


@dataclasses.dataclass(frozen=True)
class Request:
    """One prompt: chat ``messages`` or a raw completion ``prompt`` (exactly one of them).

    ``n`` asks for that many samples; each sample is cached under its own index, so asking for
    n=5 after n=3 only pays for two more. ``tag`` names the stage for the ledger and is not part
    of the cache key.
    """

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    params: SamplingParams = SamplingParams()
    n: int = 1
    tag: str = ""

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request needs exactly one of messages or prompt")
        if self.n < 1:
            raise ValueError("n must be >= 1")

    @classmethod
    def chat(
        cls,
        messages: Sequence[Message],
        params: SamplingParams | None = None,
        n: int = 1,
        tag: str = "",
    ) -> Request:
        return cls(
            messages=tuple(dict(m) for m in messages),
            params=params or SamplingParams(),
            n=n,
            tag=tag,
        )

    @classmethod
    def raw(
        cls, prompt: str, params: SamplingParams | None = None, n: int = 1, tag: str = ""
    ) -> Request:
        return cls(prompt=prompt, params=params or SamplingParams(), n=n, tag=tag)

    def payload(self) -> dict[str, Any]:
        """What identifies the request's content (no n, no tag)."""
        return {
            "messages": [dict(m) for m in self.messages] if self.messages is not None else None,
            "prompt": self.prompt,
            "params": self.params.to_dict(),
        }

    def prompt_chars(self) -> int:
        if self.prompt is not None:
            return len(self.prompt)
        return sum(len(m.get("content", "")) for m in self.messages or ())


@dataclasses.dataclass
class Completion:
    """One sample: text, why it stopped, token usage, latency and cost.

    ``error`` is set (with the HTTP status in ``error_status`` where there is one) when the
    server refused this one request for good (HTTP 400 context length, 404 for one model, 413,
    422, a content filter): the text is empty, the request is counted as a call the server
    answered, and the completion is never cached as an answer. Errors that concern the whole
    run (server unreachable after every retry, a bad key) raise instead.
    """

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    token_logprobs: list[float] | None = None
    #: per generated token, the ``SamplingParams.top_logprobs`` likeliest tokens -> log-prob
    top_logprobs: list[dict[str, float]] | None = None
    error: str | None = None
    error_status: int | None = None

    @classmethod
    def failed(cls, message: str, status: int | None = None, latency_s: float = 0.0) -> Completion:
        """A request the server refused for good: no text, no tokens, ``finish_reason="error"``."""
        return cls(
            text="", finish_reason="error", latency_s=latency_s, error=message, error_status=status
        )

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict (a deep copy): this runs once per cached completion.
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.token_logprobs is not None:
            d["token_logprobs"] = list(self.token_logprobs)
        if self.top_logprobs is not None:
            d["top_logprobs"] = [dict(t) for t in self.top_logprobs]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Completion:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


OnDone = Callable[[int, list[Completion]], None]
#: Asked right before request ``i`` is sent: "send" it, "wait" and ask again (answers in flight
#: may free room in the budget), or "stop" (the budget is spent: send nothing more).
Verdict = Literal["send", "wait", "stop"]
Admit = Callable[[int], Verdict]


class Backend(ABC):
    """A source of completions. Subclasses set ``name`` and implement ``complete``.

    ``complete`` must call ``on_done(i, completions)`` as soon as request ``i`` finishes (in any
    order), so the caller can persist each result before the next one arrives: a crash then loses
    only what was in flight.
    """

    name: ClassVar[str] = "base"
    #: True when the price table applies (remote APIs); local backends cost nothing by default.
    is_local: ClassVar[bool] = True
    #: True when ``complete`` takes ``admit=`` and asks it before sending each request (backends
    #: with requests in flight at once); otherwise the client admits a batch's requests up front.
    admits: ClassVar[bool] = False

    def __init__(self, model: str) -> None:
        self.model = model

    def setup(self) -> None:
        """Load weights or open connections (called once, lazily, before the first batch)."""

    @abstractmethod
    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        """Run every request (``request.n`` samples each) and report each via ``on_done``."""

    def close(self) -> None:
        """Release resources."""

    def endpoint(self) -> str:
        """Where answers come from, beyond backend and model name (a server's base URL): part
        of the request-cache key, so two servers that both call their model "default" never
        share answers. Empty for in-process backends (their cache keys stay as they were)."""
        return ""

    def describe(self) -> dict[str, Any]:
        """Settings for the run manifest (never secrets)."""
        return {"backend": self.name, "model": self.model}


def check_options(cls_name: str, options: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Reject unknown option keys with a one-line error naming the closest valid one."""
    import difflib

    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown option '{key}' for backend {cls_name}{hint}")
