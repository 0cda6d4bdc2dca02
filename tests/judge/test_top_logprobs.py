"""Top log-probs through the shared LLM types: sent, parsed, cached, and absent from old keys."""

from __future__ import annotations

from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.cache import request_key
from tunesmith.llm.openai_compat import OpenAICompatBackend

try:  # the response parsing moves to openai_wire.py (accounting, issue 10)
    from tunesmith.llm.openai_wire import (  # type: ignore[import-not-found]
        parse_choices as _parse_choices,
    )
except ImportError:
    from tunesmith.llm.openai_compat import _parse_choices


def test_cache_keys_without_top_logprobs_are_unchanged() -> None:
    assert "top_logprobs" not in SamplingParams().to_dict()
    plain = Request.chat([{"role": "user", "content": "x"}], SamplingParams(max_tokens=1))
    top = Request.chat(
        [{"role": "user", "content": "x"}], SamplingParams(max_tokens=1, top_logprobs=5)
    )
    assert request_key("openai", "m", plain, 0) != request_key("openai", "m", top, 0)


def test_openai_body_asks_for_top_logprobs() -> None:
    backend = OpenAICompatBackend("m", base_url="http://127.0.0.1:9/v1")
    chat = Request.chat([{"role": "user", "content": "x"}], SamplingParams(top_logprobs=5))
    body = backend._body(chat, 1, 0)
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    raw = backend._body(Request.raw("x", SamplingParams(top_logprobs=3)), 1, 0)
    assert raw["logprobs"] == 3
    assert "top_logprobs" not in backend._body(Request.raw("x"), 1, 0)


def test_openai_top_logprobs_parsed_and_round_trip_through_the_cache_format() -> None:
    data = {
        "choices": [{
            "index": 0, "message": {"content": "M"}, "finish_reason": "length",
            "logprobs": {"content": [{"token": "M", "logprob": -0.1, "top_logprobs": [
                {"token": "M", "logprob": -0.1}, {"token": "m", "logprob": -2.5}]}]},
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
    }  # fmt: skip
    [c] = _parse_choices(data, True, 0.01)
    assert c.top_logprobs == [{"M": -0.1, "m": -2.5}] and c.token_logprobs == [-0.1]
    assert Completion.from_dict(c.to_dict()).top_logprobs == c.top_logprobs
    raw = {"choices": [{"text": " M", "logprobs": {"token_logprobs": [-0.2],
                        "top_logprobs": [{" M": -0.2, " m": -1.9}]}}]}  # fmt: skip
    [r] = _parse_choices(raw, False, 0.01)
    assert r.top_logprobs == [{" M": -0.2, " m": -1.9}]
    [none] = _parse_choices({"choices": [{"message": {"content": "x"}}]}, True, 0.01)
    assert none.top_logprobs is None
