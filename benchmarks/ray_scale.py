"""Ray engine vs the local engine on an LLM-bound recipe, against fixed-delay OpenAI stubs.

Measures (1) rows/s of one ``respond`` stage on the local engine (one process) and on Ray with 2
workers at the same job-wide concurrency, end to end and marginal (from runs of N and 2N rows,
which separates a run's fixed cost from what each row costs), their ratio and Ray's per-row
overhead; (2) a simulated
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
import threading
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


class CpuMeter:
    """CPU time (user + system) of this process and every process it started (stubs, Ray's
    GCS, raylet and workers), sampled every 0.1 s on a thread so that processes that end during
    a run (a stage's actor pool) still count with what they had used at their last sample."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._sample_forever, daemon=True).start()

    def _sample_forever(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def sample(self) -> float:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                self.seen[(proc.pid, proc.create_time())] = times.user + times.system
            except psutil.Error:
                continue  # ended meanwhile
        return sum(self.seen.values())


METER: CpuMeter | None = None


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and all it started."""
    global METER
    METER = METER or CpuMeter()
    return METER.sample()


def one_run(url: str, rows: int, conc: int, engine: str | None) -> tuple[float, float]:
    """Seconds and CPU seconds for one recipe run of ``rows`` rows (a fresh folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = [{"instruction": f"Write one line about item {i}.", "input": "", "output": ""}
                for i in range(rows)]  # fmt: skip
        (folder / "data.json").write_text(json.dumps(data), encoding="utf-8")
        recipe = folder / "recipe.yaml"
        recipe.write_text(RECIPE.format(batch=conc, url=url, conc=conc), encoding="utf-8")
        cpu, start = cpu_seconds(), time.perf_counter()
        run_recipe(load_recipe(recipe), out=folder / "run", report=False, engine=engine)
        return time.perf_counter() - start, cpu_seconds() - cpu


def measure(url: str, rows: int, conc: int, cpus: int | None) -> dict[str, float]:
    """Runs of ``rows`` and ``2 * rows`` rows after a warm-up run, locally (``cpus`` None) or on
    a fresh local cluster of ``cpus`` CPUs (= workers): end-to-end rows/s of the first, and
    the marginal seconds and CPU seconds per row between the two (what a longer run pays per row;
    the difference is the fixed cost of a run, e.g. starting a stage's actor pool)."""
    engine = None if cpus is None else "ray"
    if cpus is not None:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        one_run(url, 8, conc, engine)  # imports (and Ray's processes) are warm
        t1, c1 = one_run(url, rows, conc, engine)
        t2, c2 = one_run(url, 2 * rows, conc, engine)
    finally:
        if cpus is not None:
            ray.shutdown()
    per_row = (t2 - t1) / rows
    return {"rate": rows / t1, "marginal": 1 / per_row, "fixed": t1 - rows * per_row,
            "cpu_ms": (c2 - c1) / rows * 1000, "cores": (c2 - c1) / (t2 - t1)}  # fmt: skip


def show(name: str, m: dict[str, float]) -> str:
    return (f"{name}: {m['rate']:.1f} rows/s end to end; {m['marginal']:.1f} rows/s marginal, "
            f"fixed {m['fixed']:.2f}s, {m['cpu_ms']:.1f} CPU-ms/row, "
            f"{m['cores']:.2f} cores busy")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=96, help="rows per worker")
    parser.add_argument("--delay", type=float, default=0.1, help="the stub's answer delay (s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per worker")
    parser.add_argument("--scale", default="1,2,4")
    args = parser.parse_args()
    n, conc = args.rows, args.concurrency
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; delay {args.delay}s; "
          f"ideal {conc / args.delay:.0f} rows/s per {conc} in flight")  # fmt: skip
    with stubs(1, args.delay) as (url, _):
        local = measure(url, n, conc, None)
        on_ray = measure(url, n, conc, 2)
    print(show("local", local))
    print(show("ray(2 workers)", on_ray))
    print(f"ratio {on_ray['marginal'] / local['marginal']:.2f} marginal, "
          f"{on_ray['rate'] / local['rate']:.2f} end to end; overhead "
          f"{(1 / on_ray['marginal'] - 1 / local['marginal']) * 1000:.1f} ms/row")  # fmt: skip
    base = None
    for k in (int(x) for x in args.scale.split(",")):
        with stubs(k, args.delay) as (url, counts):
            m = measure(url, n * k, conc * k, k)
        base = base or m["marginal"]
        print(show(f"K={k} ({k} stubs, {k} workers, concurrency {conc * k}, {n * k} rows)", m)
              + f"; {m['marginal'] / base:.2f}x K=1, {m['marginal'] / local['marginal']:.2f}x "
              f"local; answers per stub {[c for c, _ in counts]}, peak in flight per stub "
              f"{[p for _, p in counts]}")  # fmt: skip


if __name__ == "__main__":
    main()
