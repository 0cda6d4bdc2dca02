"""The LLM client: request cache hits/misses, per-sample keys, budgets and the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.errors import BudgetExceeded, ConfigError
from tunesmith.llm.base import Request, SamplingParams
from tunesmith.llm.cache import RequestCache, request_key
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig, make_backend, make_llm
from tunesmith.llm.fake import FakeBackend
from tunesmith.llm.usage import Budget, Price, PriceTable


def _reqs(n: int, samples: int = 1) -> list[Request]:
    return [
        Request.chat(
            [{"role": "user", "content": f"q{i}"}],
            SamplingParams(max_tokens=10),
            n=samples,
            tag="t",
        )
        for i in range(n)
    ]


def test_second_run_is_all_cache_hits(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = FakeBackend()
    first = LLM(backend, cache=cache).complete(_reqs(5))
    assert backend.calls == 5
    llm2 = LLM(backend, cache=RequestCache(tmp_path / "c.sqlite"))
    second = llm2.complete(_reqs(5))
    assert backend.calls == 5, "a rerun must make zero new calls"
    assert [c[0].text for c in first] == [c[0].text for c in second]
    assert all(c[0].cached for c in second)
    total = llm2.ledger.total()
    assert (total.calls, total.cache_hits) == (0, 5)


def test_only_missing_samples_are_paid(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = FakeBackend(responses=lambda req, i: f"sample-{FakeBackend.__name__}-{i}")
    LLM(backend, cache=cache).complete(_reqs(2, samples=3))
    assert backend.calls == 6
    out = LLM(backend, cache=cache).complete(_reqs(2, samples=5))
    assert backend.calls == 6 + 4  # two more samples per request
    assert [len(c) for c in out] == [5, 5]


def test_cache_key_covers_model_params_and_sample() -> None:
    req = _reqs(1)[0]
    base = request_key("fake", "m", req, 0)
    assert base == request_key("fake", "m", req, 0)
    assert base != request_key("fake", "m2", req, 0)
    assert base != request_key("openai", "m", req, 0)
    assert base != request_key("fake", "m", req, 1)
    hotter = Request.chat(req.messages or (), SamplingParams(max_tokens=10, temperature=0.9))
    assert base != request_key("fake", "m", hotter, 0)
    # the tag names the stage for the ledger and is not part of the key
    retagged = Request.chat(req.messages or (), SamplingParams(max_tokens=10), tag="other")
    assert base == request_key("fake", "m", retagged, 0)


def test_max_calls_sends_what_fits_then_stops(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = FakeBackend()
    llm = LLM(backend, cache=cache, budget=Budget(max_calls=3))
    with pytest.raises(BudgetExceeded, match="budget reached after 3 calls"):
        llm.complete(_reqs(5))
    assert backend.calls == 3 and len(cache) == 3
    # resumed with a larger budget: the three paid answers come from the cache
    llm2 = LLM(backend, cache=cache, ledger=llm.ledger, budget=Budget(max_calls=10))
    assert len(llm2.complete(_reqs(5))) == 5
    assert backend.calls == 5


def test_max_cost_stops_before_crossing(tmp_path: Path) -> None:
    prices = PriceTable({"fake-model": Price(input_per_m=1_000_000, output_per_m=1_000_000)})
    backend = FakeBackend()
    llm = LLM(
        backend,
        cache=RequestCache(tmp_path / "c.sqlite"),
        prices=prices,
        budget=Budget(max_cost=60.0),
    )
    with pytest.raises(BudgetExceeded):
        llm.complete(_reqs(5))  # each may cost up to $52 (2 + 8 + 32 prompt, 10 output tokens)
    assert llm.ledger.total().cost_usd <= 60.0
    # the fake bills ~$6 a request: once the first is paid, its reservation makes room for more
    assert 1 < backend.calls < 5


def test_cost_comes_from_the_price_table(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text("fake-model: {input: 2.0, output: 8.0}\n")
    config = LLMConfig(
        backend="fake", prices_path=str(table), cache_path=str(tmp_path / "c.sqlite")
    )
    llm = make_llm(config)
    [[comp]] = llm.complete(_reqs(1))
    expected = (comp.prompt_tokens * 2.0 + comp.completion_tokens * 8.0) / 1e6
    assert comp.cost_usd == pytest.approx(expected)
    assert llm.ledger.total().cost_usd == pytest.approx(expected)


def test_bad_price_table_and_unknown_backend(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text("m: {input: 1, outptu: 2}\n")
    with pytest.raises(ConfigError, match=r"prices\.yaml"):
        PriceTable.from_file(table)
    with pytest.raises(ConfigError, match="did you mean 'openai'"):
        make_backend("opneai", "m")


def test_manifest_masks_credentials_in_the_base_url() -> None:
    config = LLMConfig(
        backend="openai", model="m", options={"base_url": "https://user:sk-secret@proxy.example/v1"}
    )
    manifest = config.to_manifest()
    assert manifest["options"]["base_url"] == "https://***@proxy.example/v1"
    assert "sk-secret" not in str(manifest)
    assert config.options["base_url"].startswith("https://user:")  # the config itself is untouched
