"""The OpenAI-compatible backend against a real local HTTP server (the stub in tests/servers.py):
request/response mapping, n handling, retries on 429/503/dropped connections, permanent errors,
API-key handling, the concurrency cap, and partial results surviving a failure."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import StubOpenAIServer, body_key, free_port
from tunesmith.errors import BackendError, ConfigError
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.cache import RequestCache
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import make_backend
from tunesmith.llm.openai_compat import OpenAICompatBackend

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture(params=["native", "httpx"], autouse=True)
def http_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both HTTP clients (the lean native one and httpx)."""
    kind = str(request.param)
    original = OpenAICompatBackend.__init__

    def init(self: OpenAICompatBackend, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("http_client", kind)
        original(self, *args, **kwargs)

    monkeypatch.setattr(OpenAICompatBackend, "__init__", init)
    return kind


def _chat(i: int, n: int = 1, seed: int | None = None) -> Request:
    params = SamplingParams(max_tokens=8, seed=seed)
    return Request.chat([{"role": "user", "content": f"q{i}"}], params, n=n)


def _run(backend: OpenAICompatBackend, requests: list[Request]) -> dict[int, list[Completion]]:
    got: dict[int, list[Completion]] = {}
    backend.complete(requests, lambda i, c: got.__setitem__(i, c))
    return got


def test_chat_and_completion_are_mapped_and_delivered() -> None:
    with StubOpenAIServer() as server:
        backend = OpenAICompatBackend("m", base_url=server.url, **FAST)
        raw = Request.raw("once upon", SamplingParams(max_tokens=4, stop=("\n",)))
        got = _run(backend, [_chat(0), raw])
    assert got[0][0].text.startswith("echo: q0")
    assert got[1][0].text.startswith("once upon done")
    assert (got[0][0].prompt_tokens, got[0][0].completion_tokens) == (7, 3)
    assert got[0][0].finish_reason == "stop" and got[0][0].latency_s > 0


def test_n_samples_split_usage_and_servers_that_ignore_n() -> None:
    with StubOpenAIServer() as server:
        got = _run(OpenAICompatBackend("m", base_url=server.url), [_chat(0, n=3)])
        assert sum(server.arrivals.values()) == 1
    assert len(got[0]) == 3 and len({c.text for c in got[0]}) == 3
    assert sum(c.prompt_tokens for c in got[0]) == 7  # the prompt is paid once
    assert sum(c.completion_tokens for c in got[0]) == 9
    with StubOpenAIServer(ignore_n=True) as server:
        got = _run(OpenAICompatBackend("m", base_url=server.url), [_chat(0, n=3, seed=5)])
        assert sum(server.arrivals.values()) == 3  # two follow-up requests
    assert len({c.text for c in got[0]}) == 3, "follow-ups must not repeat the first sample"


@pytest.mark.parametrize(
    "fault",
    [
        (429, {"Retry-After": "0.05"}),
        (503, {}),
        (500, {}),
        ("drop", {}),
    ],
)
def test_transient_faults_are_retried(fault: tuple[Any, dict[str, str]]) -> None:
    def rule(body: dict[str, Any], nth: int) -> Any:
        # every even-numbered prompt fails twice, then succeeds
        idx = int(body["messages"][0]["content"][1:])
        return fault if idx % 2 == 0 and nth <= 2 else None

    with StubOpenAIServer(fault=rule) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=4, **FAST)
        got = _run(backend, [_chat(i) for i in range(6)])
        answered = dict(server.answered)
    assert sorted(got) == list(range(6))
    assert [got[i][0].text.split(" [")[0] for i in range(6)] == [f"echo: q{i}" for i in range(6)]
    assert set(answered.values()) == {1}, "each request is answered exactly once"


def test_retry_after_is_honoured_by_all_requests() -> None:
    arrived: dict[str, list[float]] = {}

    def rule(body: dict[str, Any], nth: int) -> Any:
        content = body["messages"][0]["content"]
        arrived.setdefault(content, []).append(time.monotonic())
        return (429, {"retry-after-ms": "300"}) if content == "q0" and nth == 1 else None

    with StubOpenAIServer(delay=0.1, fault=rule) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=2, **FAST)
        got = _run(backend, [_chat(i) for i in range(4)])
    assert sorted(got) == [0, 1, 2, 3]
    t0 = arrived["q0"][0]
    # the retry waits for Retry-After (backoff alone would wait ~0.01 s) ...
    assert arrived["q0"][1] - t0 >= 0.3
    # ... and so does everyone else: q1 left with q0, but q2 and q3, which the second worker
    # sends once q1 is answered (~0.1 s), wait behind the pause that q0's 429 started
    assert min(arrived["q2"][0], arrived["q3"][0]) - t0 >= 0.3


def _body_of(server: StubOpenAIServer, i: int) -> dict[str, Any]:
    from tunesmith.llm.embedded import sample_seed

    return {"messages": [{"role": "user", "content": f"q{i}"}], "seed": sample_seed(_chat(i), 0)}


def test_unreachable_server_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAICompatBackend("m", base_url=url, max_retries=2, **FAST)
    with pytest.raises(BackendError) as err:
        _run(backend, [_chat(0)])
    assert str(err.value) == f"cannot reach {url}: connection refused after 3 tries"


def test_a_request_refused_for_good_fails_alone_and_is_not_cached(tmp_path: Path) -> None:
    def rule(body: dict[str, Any], nth: int) -> Any:
        return (400, {}) if body["messages"][0]["content"] == "q3" else None

    cache, port = RequestCache(tmp_path / "c.sqlite"), free_port()
    with StubOpenAIServer(port=port, fault=rule) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=2, **FAST)
        llm = LLM(backend, cache=cache)
        out = llm.complete([_chat(i) for i in range(6)])
        assert server.arrivals[body_key(_body_of(server, 3))] == 1, "not retried"
    assert [c[0].error for c in out] == [None] * 3 + ["HTTP 400: injected"] + [None] * 2
    assert out[3][0].error_status == 400 and out[3][0].text == ""
    assert all(c[0].text for i, c in enumerate(out) if i != 3)
    total = llm.ledger.total()
    assert (total.calls, total.failed) == (6, 1), "a refusal is a call the server answered"
    assert len(cache) == 5, "the refusal is not cached as an answer"
    with StubOpenAIServer(port=port) as server:  # rerun: only the refused request is sent again
        backend = OpenAICompatBackend("m", base_url=server.url, **FAST)
        out = LLM(backend, cache=cache).complete([_chat(i) for i in range(6)])
        assert sum(server.arrivals.values()) == 1
    assert [c[0].cached for c in out] == [True] * 3 + [False] + [True] * 2


def test_concurrency_cap_is_respected() -> None:
    with StubOpenAIServer(delay=0.05) as server:
        _run(
            OpenAICompatBackend("m", base_url=server.url, concurrency=3),
            [_chat(i) for i in range(12)],
        )
        assert 2 <= server.max_in_flight <= 3


def test_api_key_from_env_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("MY_KEY", secret)
    with StubOpenAIServer(fault=lambda b, n: (401, {})) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, api_key_env="MY_KEY")
        with pytest.raises(BackendError) as err:
            _run(backend, [_chat(0)])
        assert server.auth_headers == [f"Bearer {secret}"]
    assert secret not in str(err.value) and secret not in repr(backend.describe())


def test_missing_key_for_remote_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    backend = OpenAICompatBackend(
        "gpt", base_url="https://api.example.com/v1", api_key_env="NOPE_KEY"
    )
    with pytest.raises(BackendError, match="environment variable NOPE_KEY is not set"):
        backend.setup()
    with StubOpenAIServer() as server:  # loopback: no key needed, no header sent
        loop = OpenAICompatBackend("m", base_url=server.url, api_key_env="NOPE_KEY")
        _run(loop, [_chat(0)])
        assert server.auth_headers == [""]


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="did you mean 'concurrency'"):
        make_backend("openai", "m", {"base_url": "http://127.0.0.1:1/v1", "concurency": 4})
    backend = make_backend("openai", "m", {"base_url": "http://u:p@127.0.0.1:1/v1", "rpm": 60})
    assert backend.describe()["base_url"] == "http://127.0.0.1:1/v1"


def test_connections_are_kept_alive_across_batches_and_results_come_on_the_caller_thread() -> None:
    import threading

    threads: set[int] = set()
    with StubOpenAIServer() as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=1)
        for batch in range(3):
            backend.complete([_chat(batch)], lambda i, c: threads.add(threading.get_ident()))
        assert server.connections == 1
        backend.close()
    assert threads == {threading.get_ident()}


def test_chunked_answers_and_silently_closed_keepalive_connections(http_client: str) -> None:
    with StubOpenAIServer(chunked=True) as server:
        server.close_silently = True  # every reuse finds a dead connection and reconnects once
        # The native client reconnects by itself; httpx may surface the race as an error, which
        # the retry loop absorbs.
        retries = 0 if http_client == "native" else 2
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=1, max_retries=retries)
        got = _run(backend, [_chat(i) for i in range(3)])
        assert server.connections == 3 and sum(server.answered.values()) == 3
    assert [got[i][0].text.split(" [")[0] for i in range(3)] == ["echo: q0", "echo: q1", "echo: q2"]


def test_rpm_limit_paces_the_requests_sent() -> None:
    with StubOpenAIServer() as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=8, rpm=120)
        _run(backend, [_chat(i) for i in range(5)])
        times = sorted(server.arrival_times)
    # 120/min = 2/s with a burst of 2: requests 3, 4, 5 are released 0.5 s apart, so the last
    # one leaves 1.5 s after the first; unpaced, all five arrive within a few ms. Arrival times
    # carry connection-setup jitter (the first request opens a connection), hence the slack.
    assert times[-1] - times[0] >= 1.2
