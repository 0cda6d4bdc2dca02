"""The OpenAI wire format: reading answers and error bodies of (chat) completion responses.

Kept apart from the transport and retry logic of :mod:`tunesmith.llm.openai_compat`.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tunesmith.llm.base import Completion


class Refused(Exception):
    """The server refused one request for good (its size, content or model)."""

    def __init__(self, status: int, message: str, latency: float) -> None:
        super().__init__(message)
        self.status, self.message, self.latency = status, message, latency


def read_answer(content: bytes) -> tuple[dict[str, Any] | None, str]:
    """A 200 body's JSON if it holds ``choices``, else (None, why) to retry it: some proxies
    answer ``{"error": {...}}`` with status 200."""
    try:
        data = json.loads(content)
    except ValueError:
        return None, "invalid JSON in a 200 response"
    if isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]:
        return data, ""
    err = data.get("error") if isinstance(data, dict) else None
    message = err.get("message", err) if isinstance(err, dict) else err
    detail = " ".join(str(message).split())[:300] if message else "no error message"
    return None, f"a 200 response without choices ({detail})"


def names_model(content: bytes) -> bool:
    """True when a 404's JSON error is about the model (OpenAI: ``model_not_found``), not the
    path: a wrong base URL must stop the run, not fail every row one by one."""
    try:
        err = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return False
    if not isinstance(err, dict):
        return False
    return err.get("code") == "model_not_found" or "model" in str(err.get("message", "")).lower()


def parse_choices(data: dict[str, Any], is_chat: bool, latency: float) -> list[Completion]:
    """Completions from a (chat) completion response; the prompt's tokens go to the first
    sample and the completion tokens are split across samples, so ledger sums stay exact."""
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    out = []
    for k, ch in enumerate(choices):
        if is_chat:
            text = (ch.get("message") or {}).get("content") or ""
            lp = ch.get("logprobs") or {}
            logprobs = [t["logprob"] for t in lp.get("content") or []] or None
            top = [
                {a["token"]: a["logprob"] for a in t.get("top_logprobs") or []}
                for t in lp.get("content") or []
            ]
        else:
            text = ch.get("text") or ""
            lp = ch.get("logprobs") or {}
            logprobs = lp.get("token_logprobs") or None
            top = [dict(t or {}) for t in lp.get("top_logprobs") or []]
        share = completion_tokens // len(choices) + (
            completion_tokens % len(choices) if k == 0 else 0
        )
        out.append(
            Completion(
                text=text,
                finish_reason=ch.get("finish_reason") or "stop",
                prompt_tokens=prompt_tokens if k == 0 else 0,
                completion_tokens=share,
                latency_s=latency,
                token_logprobs=logprobs,
                top_logprobs=top if any(top) else None,
            )
        )
    return out


def public_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
