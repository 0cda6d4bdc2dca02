"""Paid calls counted once by the run that paid, budgets that count requests in flight, refused
requests, 200 answers without choices and endpoint-aware cache keys, at the client level against
the stub OpenAI server of tests/servers.py (a real HTTP server that counts what it answers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.servers import StubOpenAIServer, _response
from tunesmith.errors import BackendError, BudgetExceeded
from tunesmith.llm.base import Request, SamplingParams
from tunesmith.llm.cache import RequestCache, request_key
from tunesmith.llm.client import LLM
from tunesmith.llm.fake import FakeBackend
from tunesmith.llm.openai_compat import OpenAICompatBackend
from tunesmith.llm.usage import Budget, Ledger, Price, PriceTable

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "http_client": "native"}


def _chat(i: int, tag: str = "respond") -> Request:
    return Request.chat(
        [{"role": "user", "content": f"q{i}"}], SamplingParams(max_tokens=8), tag=tag
    )


def _answered(server: StubOpenAIServer) -> int:
    return sum(server.answered.values())


def test_calls_paid_before_a_kill_count_once_for_the_run_that_paid(tmp_path: Path) -> None:
    cache, backend = RequestCache(tmp_path / "c.sqlite"), FakeBackend()
    ledger_path = tmp_path / "run" / "ledger.json"
    ledger_path.parent.mkdir()
    # first life: 4 calls paid, ledger.json saved, 2 more paid, then "SIGKILL" (no save)
    first = Ledger.load(ledger_path)
    llm = LLM(backend, cache=cache, ledger=first)
    llm.complete([_chat(i) for i in range(4)])
    first.save(ledger_path)
    llm.complete([_chat(i) for i in range(4, 6)])
    # second life: the ledger on disk knows 4; the two paid after its save are added once
    resumed = Ledger.load(ledger_path)
    assert resumed.total().calls == 4
    LLM(backend, cache=cache, ledger=resumed).complete([_chat(i) for i in range(8)])
    total = resumed.total()
    assert backend.calls == 8 and (total.calls, total.cache_hits) == (8, 6)
    assert resumed.stages["respond"].calls == 8
    resumed.save(ledger_path)
    # a third life counts nothing twice, and another run reading the same cache pays nothing
    again = Ledger.load(ledger_path)
    LLM(backend, cache=cache, ledger=again).complete([_chat(i) for i in range(8)])
    assert again.total().calls == 8
    other = Ledger.load(tmp_path / "other" / "ledger.json")
    LLM(backend, cache=cache, ledger=other).complete([_chat(i) for i in range(8)])
    assert (other.total().calls, other.total().cache_hits) == (0, 8)


def test_a_folder_killed_before_its_first_ledger_save_keeps_its_calls(tmp_path: Path) -> None:
    cache, backend = RequestCache(tmp_path / "c.sqlite"), FakeBackend()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"started": 1000.5}')
    LLM(backend, cache=cache, ledger=Ledger.load(folder / "ledger.json")).complete(
        [_chat(i) for i in range(3)]
    )
    resumed = Ledger.load(folder / "ledger.json")  # nothing was saved: same id from the folder
    LLM(backend, cache=cache, ledger=resumed).complete([_chat(i) for i in range(3)])
    assert (resumed.total().calls, resumed.total().cache_hits) == (3, 3)
    assert json.loads(json.dumps(resumed.to_dict()))["synced"] == resumed.synced
    # the folder deleted and a new run started in its place: the old run's calls are not its own
    (folder / "manifest.json").write_text('{"started": 2000.25}')
    fresh = Ledger.load(folder / "ledger.json")
    LLM(backend, cache=cache, ledger=fresh).complete([_chat(i) for i in range(3)])
    assert (fresh.total().calls, fresh.total().cache_hits) == (0, 3)


def test_max_calls_counts_requests_in_flight_at_concurrency_16(tmp_path: Path) -> None:
    cache, ledger = RequestCache(tmp_path / "c.sqlite"), Ledger()
    with StubOpenAIServer(delay=0.05) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=16, **FAST)
        llm = LLM(backend, cache=cache, ledger=ledger, budget=Budget(max_calls=10))
        with pytest.raises(BudgetExceeded, match="after 10 calls"):
            llm.complete([_chat(i) for i in range(40)])
        assert _answered(server) == 10 and ledger.total().calls == 10
        # resumable with a larger budget: the ten paid answers come from the cache
        llm = LLM(backend, cache=cache, ledger=ledger, budget=Budget(max_calls=40))
        out = llm.complete([_chat(i) for i in range(40)])
        assert _answered(server) == 40 and ledger.total().calls == 40
    assert sum(c[0].cached for c in out) == 10


def test_max_cost_reserves_the_worst_case_of_requests_in_flight(tmp_path: Path) -> None:
    prices = PriceTable({"m": Price(input_per_m=1e6, output_per_m=1e6)})  # $1 a token
    # worst case of one request: 2 bytes + 8 + 32 template tokens + 8 output = $50; the stub
    # bills 7 + 3 tokens = $10
    assert Budget.worst_case(_chat(0), prices.get("m")) == 50
    with StubOpenAIServer(delay=0.02) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, concurrency=16, **FAST)
        llm = LLM(backend, prices=prices, budget=Budget(max_cost=100.0))
        with pytest.raises(BudgetExceeded):
            llm.complete([_chat(i) for i in range(40)])
        paid = _answered(server)
    assert llm.ledger.total().cost_usd == 10.0 * paid <= 100.0
    assert paid >= 6, "finished answers free their reservation for the next requests"


def test_a_200_without_choices_is_retried_and_its_message_shown() -> None:
    def flaky(body: dict[str, Any], nth: int) -> Any:
        return (200, {}) if nth <= 2 else None  # the stub answers {"error": {"message": ...}}

    with StubOpenAIServer(fault=flaky) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, max_retries=3, **FAST)
        [[comp]] = LLM(backend).complete([_chat(0)])
        assert comp.text.startswith("echo: q0") and _answered(server) == 1
    with StubOpenAIServer(fault=lambda body, nth: (200, {})) as server:
        backend = OpenAICompatBackend("m", base_url=server.url, max_retries=2, **FAST)
        with pytest.raises(BackendError) as err:
            LLM(backend).complete([_chat(0)])
        assert sum(server.arrivals.values()) == 3
    assert str(err.value) == (
        f"failed: {server.url}: a 200 response without choices (injected) after 3 tries"
    )


class _StrictServer(StubOpenAIServer):
    """Answers only under /v1, and only for models it has (like most real servers)."""

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bytes | None:
        if not path.startswith("/v1/"):
            return _response(404, b'{"detail": "Not Found"}')
        if json.loads(body)["model"] == "ghost":
            err = {
                "error": {"message": "The model ghost does not exist", "code": "model_not_found"}
            }
            return _response(404, json.dumps(err).encode())
        return await super().handle(method, path, headers, body)


def test_a_404_for_the_model_fails_the_request_and_a_404_for_the_path_stops_the_run() -> None:
    with _StrictServer() as server:
        ghost = OpenAICompatBackend("ghost", base_url=server.url, **FAST)
        llm = LLM(ghost)
        out = llm.complete([_chat(0), _chat(1)])
        assert [c[0].error_status for c in out] == [404, 404]
        assert out[0][0].error == "HTTP 404: The model ghost does not exist"
        assert (llm.ledger.total().calls, llm.ledger.total().failed) == (2, 2)
        root = server.url.removesuffix("/v1")
        with pytest.raises(BackendError) as err:
            LLM(OpenAICompatBackend("m", base_url=root, **FAST)).complete([_chat(0)])
    assert str(err.value) == (
        f"{root}/chat/completions: HTTP 404: Not Found (is the base URL missing /v1? try {root}/v1)"
    )


def test_the_cache_key_names_the_server(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    with StubOpenAIServer() as a, StubOpenAIServer() as b:
        for server in (a, b, a):
            backend = OpenAICompatBackend("default", base_url=server.url, **FAST)
            LLM(backend, cache=cache).complete([_chat(0)])
        # two servers that both call their model "default" never share answers
        assert (_answered(a), _answered(b)) == (1, 1)
    req = _chat(0)
    # in-process backends keep the keys they had before the endpoint joined the key
    assert request_key("fake", "m", req, 0) == request_key("fake", "m", req, 0, "")
    assert request_key("openai", "m", req, 0, a.url) != request_key("openai", "m", req, 0, b.url)
