"""The embedded backend with the real packaged SmolLM2-135M GGUF (llama.cpp, 1 thread)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from tunesmith.errors import ConfigError
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.embedded import EmbeddedBackend, sample_seed
from tunesmith.llm.factory import make_backend

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(threads=1)
    b.setup()
    yield b
    b.close()


def _one(backend: EmbeddedBackend, request: Request) -> list[Completion]:
    got: dict[int, list[Completion]] = {}
    backend.complete([request], lambda i, c: got.__setitem__(i, c))
    return got[0]


def test_chat_uses_the_gguf_chat_template(backend: EmbeddedBackend) -> None:
    req = Request.chat(
        [{"role": "user", "content": "What is the capital of France?"}],
        SamplingParams(temperature=0, max_tokens=8),
    )
    (c,) = _one(backend, req)
    assert c.text.strip() and "<|im_" not in c.text
    # the template adds a system turn and role markers: far more prompt tokens than the question
    assert c.prompt_tokens > 20
    assert 1 <= c.completion_tokens <= 8 and c.finish_reason in ("stop", "length")
    assert c.latency_s > 0 and c.cost_usd == 0


def test_raw_completion_and_stop_sequences(backend: EmbeddedBackend) -> None:
    free = _one(backend, Request.raw("1, 2, 3, 4,", SamplingParams(temperature=0, max_tokens=8)))
    assert free[0].finish_reason == "length" and free[0].completion_tokens == 8
    stopped = _one(
        backend,
        Request.raw("1, 2, 3, 4,", SamplingParams(temperature=0, max_tokens=8, stop=(",",))),
    )
    assert stopped[0].finish_reason == "stop" and "," not in stopped[0].text
    assert free[0].text.startswith(stopped[0].text)


def test_samples_are_reproducible_and_distinct(backend: EmbeddedBackend) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=7)
    req = Request.raw("My favourite animal is", params, n=3)
    first = [c.text for c in _one(backend, req)]
    again = [c.text for c in _one(backend, req)]
    assert first == again, "same request, same seeds -> same samples"
    assert len(set(first)) >= 2, "samples of one request get different seeds"
    assert sample_seed(req, 0) == 7 and sample_seed(req, 2) == 9
    unseeded = Request.raw("My favourite animal is", SamplingParams(temperature=1.0, max_tokens=8))
    assert _one(backend, unseeded)[0].text == _one(backend, unseeded)[0].text


def test_logprobs_cover_each_generated_token(backend: EmbeddedBackend) -> None:
    req = Request.raw("The sky is", SamplingParams(temperature=0, max_tokens=6, logprobs=True))
    (c,) = _one(backend, req)
    assert c.token_logprobs is not None and len(c.token_logprobs) == c.completion_tokens
    assert all(lp <= 0 for lp in c.token_logprobs)
    # the logprobs are those of the text's tokens scored after the prompt as generation saw it
    # (no start token: scoring's rule adds one, so backend.score_continuation differs here)
    from tunesmith.llm.logprob import Span

    head = list(backend._llm.tokenize(b"The sky is", add_bos=True))
    body = list(backend._llm.tokenize(c.text.encode(), add_bos=False, special=False))
    (scored,) = backend.logprob_model().span_logprobs([Span(head + body, len(head))])
    assert c.token_logprobs == pytest.approx(list(scored), abs=1e-3)


def test_score_continuation_ranks_likely_text_higher(backend: EmbeddedBackend) -> None:
    prefix = "The capital of France is"
    good = backend.score_continuation(prefix, " Paris, a city on the river Seine.")
    shuffled = backend.score_continuation(prefix, " river city Seine. on a the Paris,")
    assert good and all(lp <= 0 for lp in good + shuffled)
    assert sum(good) > sum(shuffled)
    ppl = math.exp(-sum(good) / len(good))
    assert 1 <= ppl < 100
    assert backend.score_continuation(prefix, "") == []
    assert len(backend.score_continuation("", "Hello world")) == 2


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="did you mean 'threads'"):
        make_backend("embedded", "smollm2-135m-instruct", {"thread": 2})
    b = make_backend("embedded", "smollm2-135m-instruct", {"model_path": "/nope/x.gguf"})
    assert b.model == "x.gguf", "another GGUF must not share the packaged model's cache keys"
    with pytest.raises(ConfigError, match="no such GGUF"):
        b.setup()
