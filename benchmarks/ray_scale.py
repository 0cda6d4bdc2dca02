"""Ray engine vs the local engine on an LLM-bound recipe, against fixed-delay OpenAI stubs.

Measures (1) rows/s of one ``respond`` stage on the local engine (one process) and on Ray with 2
workers at the same job-wide concurrency, their ratio and Ray's per-row overhead; (2) a simulated
scale-out: K stub server processes and K Ray worker processes (a cluster of K CPUs) with a
job-wide concurrency of ``per_worker * K``, for K = 1, 2, 4, with the CPU time the driver, the
stubs and Ray's processes spent per row, which says where throughput stops growing here.

The K stubs are separate processes listening on one port with ``SO_REUSEPORT``: the kernel
spreads the workers' connections over them, as a load balancer in front of K servers would. Every
stub runs in its own process (not a thread of the driver), so the local engine does not share its
interpreter with the server either.

    PYTHONPATH=src:. python benchmarks/ray_scale.py --rows 96 --delay 0.1 --scale 1,2,4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import ray
from tests.servers import StubOpenAIServer, free_port

from tunesmith.recipes import load_recipe, run_recipe

RECIPE = """\
data: data.json
batch_size: {batch}
llm:
  backend: openai
  model: stub-model
  use_cache: false
  options: {{base_url: "{url}", concurrency: {conc}}}
stages:
  - respond: {{max_tokens: 16}}
"""


class _SharedPortStub(StubOpenAIServer):
    """The stub on a port other stub processes share (``SO_REUSEPORT``)."""

    def start(self) -> _SharedPortStub:
        self._thread.start()
        serve = asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=1024,
                                     reuse_port=True)  # fmt: skip
        self._server = asyncio.run_coroutine_threadsafe(serve, self._loop).result(10)
        return self


def _stub_process(port: int, delay: float, ready: Any, stop: Any, out: Any) -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the connections cancelled at stop are no news
    stub = _SharedPortStub(port=port, delay=delay).start()
    ready.set()
    stop.wait()
    out.put((sum(stub.answered.values()), stub.max_in_flight))
    stub.stop()


@contextmanager
def stubs(k: int, delay: float) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """K stub processes on one port; yields its URL and, after the block, (answers, peak) each."""
    ctx = mp.get_context("spawn")
    port, stop, out = free_port(), ctx.Event(), ctx.Queue()
    procs, readies = [], []
    for _ in range(k):
        ready = ctx.Event()
        procs.append(ctx.Process(target=_stub_process, args=(port, delay, ready, stop, out)))
        procs[-1].start()
        readies.append(ready)
    for ready in readies:
        ready.wait(30)
    counts: list[tuple[int, int]] = []
    try:
        yield f"http://127.0.0.1:{port}/v1", counts
    finally:
        stop.set()
        counts.extend(out.get(timeout=30) for _ in procs)
        for proc in procs:
            proc.join(10)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and all it started (stubs, Ray's processes)."""
    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile
        total += times.user + times.system
    return total


def one_run(
    url: str, rows: int, conc: int, engine: str | None, rounds: int = 1
) -> tuple[float, float]:
    """Seconds and CPU seconds for one recipe run of ``rows`` rows (a fresh folder), in batches
    (Ray: shards) of ``rounds`` x ``conc`` rows."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = [{"instruction": f"Write one line about item {i}.", "input": "", "output": ""}
                for i in range(rows)]  # fmt: skip
        (folder / "data.json").write_text(json.dumps(data), encoding="utf-8")
        recipe = folder / "recipe.yaml"
        text = RECIPE.format(batch=conc * rounds, url=url, conc=conc)
        recipe.write_text(text, encoding="utf-8")
        cpu, start = cpu_seconds(), time.perf_counter()
        run_recipe(load_recipe(recipe), out=folder / "run", report=False, engine=engine)
        return time.perf_counter() - start, cpu_seconds() - cpu


def ray_run(url: str, rows: int, conc: int, cpus: int, rounds: int = 1) -> tuple[float, float]:
    """One run on a fresh local cluster of ``cpus`` CPUs (= workers), after a warm-up run."""
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        one_run(url, 8, conc, "ray")  # actor start-up and imports are not counted
        return one_run(url, rows, conc, "ray", rounds)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=96, help="rows per worker")
    parser.add_argument("--delay", type=float, default=0.1, help="the stub's answer delay (s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per worker")
    parser.add_argument("--scale", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=0,
                        help="also time Ray with shards of this many x concurrency rows")  # fmt: skip
    args = parser.parse_args()
    n, conc = args.rows, args.concurrency
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; delay {args.delay}s")
    with stubs(1, args.delay) as (url, _):
        local, local_cpu = one_run(url, n, conc, None)
        on_ray, ray_cpu = ray_run(url, n, conc, 2)
    print(f"local: {n / local:.1f} rows/s ({local_cpu / n * 1000:.1f} CPU-ms/row); "
          f"ray(2 workers): {n / on_ray:.1f} rows/s ({ray_cpu / n * 1000:.1f} CPU-ms/row); "
          f"ratio {local / on_ray:.2f}, overhead {(on_ray - local) / n * 1000:.1f} ms/row "
          f"(ideal {conc / args.delay:.0f} rows/s)")  # fmt: skip
    if args.rounds:
        with stubs(1, args.delay) as (url, _):
            big, _ = ray_run(url, n, conc, 2, args.rounds)
        print(f"ray(2 workers), shards of {args.rounds} x {conc} rows: {n / big:.1f} rows/s")
    base = None
    for k in (int(x) for x in args.scale.split(",")):
        with stubs(k, args.delay) as (url, counts):
            secs, cpu = ray_run(url, n * k, conc * k, k)
        rate = n * k / secs
        base = base or rate
        print(f"K={k}: {k} stubs, {k} workers, concurrency {conc * k}, {n * k} rows: "
              f"{rate:.1f} rows/s = {rate / base:.2f}x K=1 = {rate * local / n:.2f}x local "
              f"(ideal {conc * k / args.delay:.0f}); {cpu / (n * k) * 1000:.1f} CPU-ms/row, "
              f"{cpu / secs:.2f} cores busy; answers per stub {[c for c, _ in counts]}, "
              f"peak in flight per stub {[p for _, p in counts]}")  # fmt: skip


if __name__ == "__main__":
    main()
