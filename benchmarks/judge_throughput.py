"""Judging throughput: judgments per second of ``tunesmith eval compare``'s full path against a
fixed-delay OpenAI-format stub, vs. the ideal, in the same run.

A tiny server started here on 127.0.0.1 (two processes sharing the port with SO_REUSEPORT)
answers every chat request after a fixed delay with a verdict (``[[B]]``). With C requests in
flight and k calls per judgment the ideal rate is C / (delay x k) judgments per second. The
measured path is :func:`tunesmith.judge.evaluate.run_compare`: aligning, rendering both orders,
the LLM client (cache on, ledger, budget), parsing, the MT-bench rule, the run driver writing
kept rows and the ledger per batch, summary.json at the end. Target: >= 90% of ideal at C = 64, for a
two-call judge (``pairwise_both_orders``) and a one-call judge (the same prompt, one order).

Prints a markdown table and writes it into the "Judging throughput" section of BENCHMARKS.md.
Run: ``.venv/bin/python benchmarks/judge_throughput.py`` (~1 minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from benchmarks.llm_throughput import raw_load  # noqa: E402

from tunesmith.judge.evaluate import run_compare  # noqa: E402
from tunesmith.judge.pairwise import Pair  # noqa: E402
from tunesmith.judge.spec import load_judge  # noqa: E402
from tunesmith.llm.base import Request, SamplingParams  # noqa: E402
from tunesmith.llm.cache import RequestCache  # noqa: E402
from tunesmith.llm.client import LLM  # noqa: E402
from tunesmith.llm.factory import LLMConfig  # noqa: E402
from tunesmith.llm.openai_compat import OpenAICompatBackend  # noqa: E402

ANSWER = json.dumps(
    {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "B is better.\n[[B]]"},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 6, "total_tokens": 126},
    }
).encode()  # fmt: skip


async def _serve(port: int, delay: float) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if not await reader.readline():
                    break
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                await asyncio.sleep(delay)
                writer.write(head % len(ANSWER) + ANSWER)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_port=True, backlog=2048)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pairs(n: int, tag: str) -> list[Pair]:
    return [
        Pair(key=f"{tag} {i}", instruction=f"{tag}: question {i}?", input="",
             model_output=f"A model answer {i}.", baseline_output=f"Baseline {i}.",
             generator="model", baseline="baseline")
        for i in range(n)
    ]  # fmt: skip


def _one_order_judge(folder: Path) -> Path:
    packaged = resources.files("tunesmith.prompts").joinpath("judges")
    for name in ("pairwise.j2", "pairwise_system.j2"):
        (folder / name).write_text(packaged.joinpath(name).read_text())
    path = folder / "one_order.yaml"
    path.write_text("prompt: pairwise.j2\nsystem: pairwise_system.j2\nparser: verdict\n"
                    "rule: mt_bench\nsampling: {temperature: 0, max_tokens: 64}\n")  # fmt: skip
    return path


def judge_rate(url: str, judge: str | Path, pairs: list[Pair], concurrency: int) -> float:
    """Judgments per second through run_compare (fresh folder and cache each time)."""
    tmp = Path(tempfile.mkdtemp())
    config = LLMConfig(
        backend="openai", model="judge",
        options={"base_url": url, "api_key_env": None, "concurrency": concurrency, "max_retries": 0},
        cache_path=str(tmp / "cache.sqlite"),
    )  # fmt: skip
    start = time.perf_counter()
    summary = run_compare(pairs, judge=load_judge(judge), out=tmp / "run",
                          config_for=lambda b, m, o: config)  # fmt: skip
    elapsed = time.perf_counter() - start
    assert summary["wins"] + summary["losses"] + summary["ties"] == len(pairs), summary
    return len(pairs) / elapsed


def client_rate(url: str, n: int, concurrency: int) -> float:
    """Calls per second of the bare LLM client on the same stub (the judge path's ceiling)."""
    backend = OpenAICompatBackend("m", base_url=url, concurrency=concurrency, max_retries=0)
    llm = LLM(backend, cache=RequestCache(Path(tempfile.mkdtemp()) / "c.sqlite"))
    reqs = [Request.chat([{"role": "user", "content": f"client {time.time()} {i}"}],
                         SamplingParams(max_tokens=8)) for i in range(n)]  # fmt: skip
    start = time.perf_counter()
    llm.complete(reqs)
    elapsed = time.perf_counter() - start
    llm.close()
    return n / elapsed


def bench(delay: float, concurrency: int, seconds: float) -> list[tuple[str, str]]:
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(delay)],
                         stdout=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()
    url = f"http://127.0.0.1:{port}/v1"
    rows: list[tuple[str, str]] = []
    try:
        one = _one_order_judge(Path(tempfile.mkdtemp()))
        judge_rate(url, "pairwise_both_orders", _pairs(concurrency, "warmup"), concurrency)
        calls = int(concurrency / delay * seconds) // concurrency * concurrency
        raw = max(asyncio.run(raw_load(port, concurrency, calls)) for _ in range(2))
        client = max(client_rate(url, calls, concurrency) for _ in range(2))
        rows += [
            (f"bare asyncio load generator, calls/s (the ceiling of this box now; ideal {concurrency / delay:.0f})",
             f"{raw:.0f} = {raw / (concurrency / delay):.1%}"),
            ("tunesmith LLM client alone, calls/s (same stub, cache on)",
             f"{client:.0f} = {client / (concurrency / delay):.1%}"),
        ]  # fmt: skip
        for judge, calls in (("pairwise_both_orders", 2), (one, 1)):
            ideal = concurrency / (delay * calls)
            n = int(ideal * seconds)
            best = max(judge_rate(url, judge, _pairs(n, f"{calls}-{r}"), concurrency)
                       for r in range(3))  # fmt: skip
            name = Path(str(judge)).stem
            rows += [
                (f"[{name}, {calls} call(s)/judgment] ideal judgments/s ({concurrency} in flight / {delay * 1000:g} ms / {calls}), {n} pairs", f"{ideal:.0f}"),
                (f"[{name}] tunesmith eval compare, best of 3", f"{best:.0f} judgments/s"),
                (f"**[{name}] tunesmith / ideal** (target >= 90%)", f"**{best / ideal:.1%}**"),
            ]  # fmt: skip
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
    return rows


def write_section(rows: list[tuple[str, str]]) -> str:
    load = os.getloadavg()[0]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = "\n".join(f"| {a} | {b} |" for a, b in rows)
    section = (
        "## Judging throughput (`benchmarks/judge_throughput.py`)\n\n"
        f"Measured {when} on {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}.\n\n"
        "| measurement | value |\n| --- | --- |\n" + table + "\n\n"
        "The path measured is `run_compare` end to end: prompts rendered in both orders, the LLM\n"
        "client (SQLite cache, ledger, budget), parsing, the MT-bench rule, the run driver writing\n"
        "kept rows and ledger.json per batch of pairs, summary.json (win rates, LC GLM) at the\n"
        "end; batches are pipelined (the next one rendered while calls are in flight).\n"
        "The bare generator (raw sockets, no JSON, no cache) shows what the machine allowed at\n"
        "that moment; on 2 cores shared with other jobs the gap to the ideal is CPU per call.\n"
    )
    path = REPO / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8")
    head = "## Judging throughput"
    if head in text:
        before, _, rest = text.partition(head)
        after = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(int(args.serve[0]), float(args.serve[1])))
        return
    print(write_section(bench(args.delay, args.concurrency, args.seconds)))


if __name__ == "__main__":
    main()
