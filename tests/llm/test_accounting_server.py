"""Paid calls and budgets against the REAL llama.cpp server (``python -m llama_cpp.server``
serving the embedded GGUF), with a proxy in front that jitters latencies, injects faults, can
hold requests back, and counts on the server side every 200 answer it hands out: the ledger of a
run must equal that count after SIGKILLs and aborts, and ``--max-calls N`` at concurrency 16
must never let more than N answers through."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REPO, FaultProxy, FaultRule, LlamaServer
from tunesmith.errors import BackendError
from tunesmith.llm.base import Request, SamplingParams
from tunesmith.llm.cache import RequestCache
from tunesmith.llm.client import LLM
from tunesmith.llm.models import embedded_gguf_path
from tunesmith.llm.openai_compat import OpenAICompatBackend

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("fastapi") is None:
    pytest.skip("llama-cpp-python[server] is not installed", allow_module_level=True)
pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    with LlamaServer(embedded_gguf_path(), threads=1) as s:
        yield s


class CountingProxy(FaultProxy):
    """A :class:`FaultProxy` that also waits a random 0..``jitter`` s before forwarding, and
    holds every request after the first ``hold_after`` (never forwarded) until :meth:`release`
    drops them."""

    def __init__(
        self,
        upstream: str,
        *,
        fault: FaultRule | None = None,
        jitter: float = 0.0,
        hold_after: int | None = None,
    ) -> None:
        super().__init__(upstream, fault=fault)
        self.jitter, self.hold_after = jitter, hold_after
        self.total = 0
        self._rng = random.Random(0)
        self._gate: asyncio.Event | None = None
        #: tokens (prompt + completion) of each 200 answer, as the server reported them
        self.billed: list[int] = []

    @property
    def paid(self) -> int:
        """200 answers the upstream server gave (and the proxy handed on)."""
        return sum(self.answered.values())

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bytes | None:
        self.total += 1
        if self.hold_after is not None and self.total > self.hold_after:
            self._gate = self._gate or asyncio.Event()
            await self._gate.wait()
            return None  # dropped: this request never reached the server
        await asyncio.sleep(self._rng.uniform(0, self.jitter))
        return await self._forward(method, path, headers, body)

    async def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bytes | None:
        out = await super().handle(method, path, headers, body)
        if out is not None and out.startswith(b"HTTP/1.1 200"):
            usage = json.loads(out.split(b"\r\n\r\n", 1)[1]).get("usage") or {}
            self.billed.append(usage["prompt_tokens"] + usage["completion_tokens"])
        return out

    def release(self) -> None:
        self.hold_after = None
        if self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)


def _data(tmp_path: Path, n: int, long_row: int | None = None) -> Path:
    path = tmp_path / "data.jsonl"
    rows = [{"id": f"r{i}", "instruction": f"Name animal number {i}."} for i in range(n)]
    if long_row is not None:  # over the server's 2048-token context: a 400 for this row only
        rows[long_row]["instruction"] = "word " * 3000
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tunesmith", "respond", str(data), "--out", str(out),
        "--backend", "openai", "--base-url", url, "--model", MODEL, "--max-tokens", "4",
        "--temperature", "0", "-O", "backoff_base=0.05", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    env.pop("OPENAI_API_KEY", None)
    return env


def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)


def _rows(run: Path, *names: str) -> list[str]:
    ids = []
    for name in names or ("kept.jsonl", "rejected.jsonl"):
        path = run / name
        if path.exists():
            ids += [json.loads(line)["id"] for line in path.read_text().splitlines() if line]
    return ids


def _ledger(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "ledger.json").read_text()))


def _usage_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0])


def _wait(cond: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def test_ledger_equals_answers_after_a_sigkill_mid_batch(
    server: LlamaServer, tmp_path: Path, _isolated_cache: Path
) -> None:
    data, run = _data(tmp_path, 16), tmp_path / "run"
    # batches of 6: the first is written with its ledger, the second is killed with 3 answers
    # paid and cached but neither its rows nor its ledger written
    with CountingProxy(server.url, jitter=0.15, hold_after=9) as proxy:
        args = _cli(data, run, proxy.url, "--concurrency", "4", "--batch-size", "6")
        proc = subprocess.Popen(
            args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait(lambda: proxy.paid == 9 and _usage_rows(_isolated_cache) == 9)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert sorted(_rows(run)) == [f"r{i}" for i in range(6)], "killed mid-batch"
        assert _ledger(run)["total"]["calls"] == 6
        proxy.release()
        done = _run_cli(args)
        assert done.returncode == 0, done.stderr
        paid = proxy.paid
    assert sorted(_rows(run)) == sorted(f"r{i}" for i in range(16))
    assert paid == 16, "no answered request was paid twice"
    ledger = _ledger(run)
    assert ledger["total"]["calls"] == paid
    tokens = ledger["total"]["prompt_tokens"] + ledger["total"]["completion_tokens"]
    assert tokens == sum(proxy.billed), "tokens too, as the server reported them"
    assert [s["calls"] for s in ledger["stages"].values()] == [paid]
    assert ledger["total"]["cache_hits"] == 3, "the killed batch's answers replay from the cache"


def test_ledger_equals_answers_after_repeated_aborts(
    server: LlamaServer, tmp_path: Path, _isolated_cache: Path
) -> None:
    data, run = _data(tmp_path, 12), tmp_path / "run"
    failures = {5, 9, 13}  # arrivals answered with HTTP 500: each aborts a run (no retries)
    seen = [0]

    def fail_some(body: dict[str, Any], nth: int) -> Any:
        seen[0] += 1
        return (500, {}) if seen[0] in failures else None

    with CountingProxy(server.url, fault=fail_some, jitter=0.1) as proxy:
        args = _cli(data, run, proxy.url, "--concurrency", "3", "--batch-size", "6",
                    "-O", "max_retries=0")  # fmt: skip
        codes = [_run_cli(args).returncode for _ in range(4)]
        paid = proxy.paid
    assert codes[:3] == [3, 3, 3] and codes[3] == 0
    assert sorted(_rows(run)) == sorted(f"r{i}" for i in range(12))
    total = _ledger(run)["total"]
    assert total["calls"] == paid
    assert total["prompt_tokens"] + total["completion_tokens"] == sum(proxy.billed)
    # an abort lets the requests in flight finish and stores their answers: none is paid twice
    assert paid == 12


def test_max_calls_never_lets_more_answers_through_at_concurrency_16(
    server: LlamaServer, tmp_path: Path
) -> None:
    data, run = _data(tmp_path, 30), tmp_path / "run"
    with CountingProxy(server.url, jitter=0.05) as proxy:
        args = _cli(data, run, proxy.url, "--concurrency", "16", "--batch-size", "30")
        stopped = _run_cli([*args, "--max-calls", "10"])
        assert stopped.returncode == 4 and "budget reached after 10 calls" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert proxy.paid == 10 and _ledger(run)["total"]["calls"] == 10
        assert json.loads((run / "manifest.json").read_text())["status"].startswith("stopped")
        resumed = _run_cli([*args, "--max-calls", "30"])
        assert resumed.returncode == 0, resumed.stderr
        assert proxy.paid == 30
    assert sorted(_rows(run)) == sorted(f"r{i}" for i in range(30))
    assert _ledger(run)["total"]["calls"] == 30


def test_max_cost_is_never_exceeded_at_concurrency_16(server: LlamaServer, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"{MODEL}: {{input: 1000, output: 1000}}\n")  # $0.001 a token
    data, run = _data(tmp_path, 30), tmp_path / "run"
    with CountingProxy(server.url, jitter=0.05) as proxy:
        args = _cli(data, run, proxy.url, "--concurrency", "16", "--batch-size", "30",
                    "--prices", str(prices))  # fmt: skip
        # ~40 tokens ($0.04) billed a request; the worst case reserved is ~66 tokens ($0.066)
        stopped = _run_cli([*args, "--max-cost", "0.5"])
        assert stopped.returncode == 4, stopped.stderr
        billed = sum(proxy.billed) / 1000
        assert billed <= 0.5 and proxy.paid >= 10
        assert _ledger(run)["total"]["cost_usd"] == pytest.approx(billed)
        resumed = _run_cli([*args, "--max-cost", "5"])
        assert resumed.returncode == 0, resumed.stderr
        assert proxy.paid == 30
        assert _ledger(run)["total"]["cost_usd"] == pytest.approx(sum(proxy.billed) / 1000)


def _chat(i: int) -> Request:
    return Request.chat(
        [{"role": "user", "content": f"Name animal number {i}."}],
        SamplingParams(temperature=0, max_tokens=4),
    )


def test_a_200_without_choices_is_retried(server: LlamaServer) -> None:
    def error_in_200(body: dict[str, Any], nth: int) -> Any:
        return (200, {}) if nth == 1 else None  # {"error": {"message": "injected"}}, status 200

    with CountingProxy(server.url, fault=error_in_200) as proxy:
        backend = OpenAICompatBackend(MODEL, base_url=proxy.url, concurrency=2, backoff_base=0.05)
        out = LLM(backend).complete([_chat(i) for i in range(3)])
        assert sorted(proxy.arrivals.values()) == [2, 2, 2] and proxy.paid == 3
    assert all(c[0].text and c[0].error is None for c in out)


def test_context_length_400_fails_one_request_and_a_bad_base_url_stops(
    server: LlamaServer, tmp_path: Path
) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    reqs = [_chat(0), Request.chat([{"role": "user", "content": "word " * 3000}]), _chat(2)]
    with CountingProxy(server.url) as proxy:
        llm = LLM(OpenAICompatBackend(MODEL, base_url=proxy.url), cache=cache)
        out = llm.complete(reqs)
        assert out[1][0].error_status == 400 and "context length" in (out[1][0].error or "")
        assert out[0][0].text and out[2][0].text
        assert (llm.ledger.total().calls, llm.ledger.total().failed) == (3, 1)
        assert len(cache) == 2, "the refusal is not an answer"
    root = server.url.removesuffix("/v1")
    with pytest.raises(BackendError, match=r"HTTP 404: Not Found \(is the base URL missing /v1"):
        LLM(OpenAICompatBackend(MODEL, base_url=root)).complete([_chat(0)])


def test_a_row_refused_with_400_fails_alone_and_a_rerun_sends_nothing_new(
    server: LlamaServer, tmp_path: Path
) -> None:
    data, run = _data(tmp_path, 6, long_row=2), tmp_path / "run"
    with CountingProxy(server.url) as proxy:
        args = _cli(data, run, proxy.url, "--concurrency", "4", "--batch-size", "3")
        first = _run_cli(args)
        assert first.returncode == 0, first.stderr
        sent = proxy.total
        assert sent == 6 and proxy.paid == 5
        again = _run_cli(args)
        assert again.returncode == 0, again.stderr
        assert proxy.total == sent, "a rerun sends nothing new (the failed row is not resent)"
    assert sorted(_rows(run)) == ["r0", "r1", "r3", "r4", "r5"], "every other row completes"
    failed = [json.loads(line) for line in (run / "failed.jsonl").read_text().splitlines()]
    assert [(f["id"], f["status"]) for f in failed] == [("r2", 400)]
    assert "context length" in failed[0]["message"]
    total = _ledger(run)["total"]
    assert (total["calls"], total["failed"]) == (6, 1), "the refusal is a call the server answered"
