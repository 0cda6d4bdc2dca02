"""LLM calls on a Ray cluster: one limiter and one request cache for the whole job.

Every worker builds its own :class:`~tunesmith.llm.client.LLM`, but the things that must be
global are Ray actors pinned to the driver's node:

- :class:`Limiter` holds THE concurrency cap and THE RPM/TPM token buckets of the job. Each
  request acquires a slot before it is sent and releases it when it is answered, so ``K`` workers
  never have more than ``concurrency`` requests in flight together (not ``K * concurrency``).
- :class:`CacheStore` owns the SQLite request cache (:class:`~tunesmith.llm.cache.RequestCache`)
  on the driver's machine. Workers read and write it through the actor. Why an actor rather than
  a shared SQLite file or per-worker shards: workers on other machines see no shared disk, SQLite
  over a network filesystem is unsafe, and per-worker shards would only be merged at the end, so a
  row answered by a worker that later dies would be paid for again. Through the actor, every
  answer is committed to the one cache the moment it arrives (a round trip of about a
  millisecond, small next to an LLM call), and survives a killed worker or a killed driver.

Usage is counted per shard in a fresh :class:`~tunesmith.llm.usage.Ledger` on the worker whose
run id is the run's, so every paid call's usage row (written in the same SQLite transaction as
its answer) belongs to the run. The driver counts paid calls from those rows
(:meth:`~tunesmith.llm.usage.Ledger.catch_up` after each shard and on resume), including calls of
a worker killed before its shard was merged, and takes only cache hits from the shard's ledger;
the cache serialises writes, so a usage row's ``seq`` is its commit order and the ledger's
high-water mark never skips a row. Without a cache, the shards' ledgers are the count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ray

from tunesmith.llm.base import Backend, Completion, OnDone, Request
from tunesmith.llm.cache import RequestCache
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig, make_backend
from tunesmith.llm.ratelimit import TokenBucket
from tunesmith.llm.usage import Ledger, PriceTable

#: backend options the limiter takes over (the per-worker backend must not apply them again)
GLOBAL_OPTIONS = ("concurrency", "rpm", "tpm")


@ray.remote(max_concurrency=1024)  # type: ignore[call-overload]
class Limiter:
    """The job's concurrency cap and RPM/TPM buckets (an async actor: waiting costs nothing).

    A slot is a lease that its worker renews every few seconds: the slots of a worker that was
    killed mid-request expire after ``ttl`` seconds instead of being lost for good.
    """

    def __init__(self, concurrency: int, rpm: float | None, tpm: float | None, ttl: float = 15.0):
        self.cap = max(1, concurrency)
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self.ttl = ttl
        self.leases: dict[int, float] = {}
        self.next_id = 0
        self.peak = 0

    async def acquire(self, tokens: int) -> int:
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)
        while True:
            now = time.monotonic()
            self.leases = {k: t for k, t in self.leases.items() if t > now}  # the dead's slots
            if len(self.leases) < self.cap:
                break
            await asyncio.sleep(0.005)
        self.next_id += 1
        self.leases[self.next_id] = time.monotonic() + self.ttl
        self.peak = max(self.peak, len(self.leases))
        return self.next_id

    async def renew(self, leases: list[int]) -> None:
        for lease in leases:
            if lease in self.leases:
                self.leases[lease] = time.monotonic() + self.ttl

    async def release(self, lease: int) -> None:
        self.leases.pop(lease, None)

    async def stats(self) -> dict[str, int]:
        return {"in_flight": len(self.leases), "peak": self.peak}


@ray.remote
class CacheStore:
    """The request cache of the job, on the driver's node (completions travel as dicts)."""

    def __init__(self, path: str) -> None:
        self.cache = RequestCache(path)

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {k: c.to_dict() for k, c in self.cache.get_many(keys).items()}

    def put(self, key: str, completion: dict[str, Any], run: str | None, tag: str) -> int:
        return self.cache.put(key, Completion.from_dict(completion), run=run, tag=tag)

    def cache_id(self) -> str:
        return self.cache.cache_id

    def paid_since(self, run: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        return [(s, tag, c.to_dict()) for s, tag, c in self.cache.paid_since(run, seq)]


class ActorCache:
    """The :class:`RequestCache` interface, served by a :class:`CacheStore` actor."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.cache_id: str = ray.get(store.cache_id.remote())

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        found = ray.get(self.store.get_many.remote(list(keys)))
        return {k: Completion.from_dict(d) for k, d in found.items()}

    def put(
        self, key: str, completion: Completion, *, run: str | None = None, tag: str = ""
    ) -> int:
        # Wait for the commit: once ``put`` returns, a killed worker never pays for it again.
        return int(ray.get(self.store.put.remote(key, completion.to_dict(), run, tag)))

    def paid_since(self, run: str, seq: int) -> list[tuple[int, str, Completion]]:
        rows = ray.get(self.store.paid_since.remote(run, seq))
        return [(s, tag, Completion.from_dict(c)) for s, tag, c in rows]

    def close(self) -> None:
        """The actor outlives the worker; nothing to close here."""


class LimitedBackend(Backend):
    """Sends each request only while holding a slot of the job-wide :class:`Limiter`."""

    def __init__(self, inner: Backend, limiter: Any, threads: int) -> None:
        super().__init__(inner.model)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # cache keys name the real backend
        self.is_local = inner.is_local  # type: ignore[misc]
        self.limiter = limiter
        self.pool = concurrent.futures.ThreadPoolExecutor(max(1, threads))
        self._lock = threading.Lock()
        self._started = threading.Event()
        self.held: set[int] = set()
        threading.Thread(target=self._renew, daemon=True).start()

    def _renew(self) -> None:
        """Keep this worker's slots alive; they lapse within ``ttl`` if the worker dies."""
        while True:
            time.sleep(3.0)
            if self.held:
                self.limiter.renew.remote(list(self.held))

    def setup(self) -> None:
        self.inner.setup()

    def complete(self, requests: Sequence[Request], on_done: OnDone) -> None:
        def one(i: int, request: Request) -> tuple[int, list[Completion]]:
            tokens = request.prompt_chars() // 4 + request.params.max_tokens
            lease = ray.get(self.limiter.acquire.remote(tokens))
            self.held.add(lease)
            got: list[Completion] = []
            try:
                if self._started.is_set():
                    self.inner.complete([request], lambda _, comps: got.extend(comps))
                else:  # the first call opens the backend's event loop: one thread at a time
                    with self._lock:
                        self.inner.complete([request], lambda _, comps: got.extend(comps))
                        self._started.set()
            finally:
                self.held.discard(lease)
                ray.get(self.limiter.release.remote(lease))
            return i, got

        futures = [self.pool.submit(one, i, r) for i, r in enumerate(requests)]
        for future in concurrent.futures.as_completed(futures):
            on_done(*future.result())  # on the caller's thread, as the contract asks

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.inner.close()


def worker_llm(config: LLMConfig, limiter: Any, store: Any | None) -> LLM:
    """A worker's client: the configured backend behind the global limiter and shared cache."""
    concurrency = int(config.options.get("concurrency") or 1)
    options = {k: v for k, v in config.options.items() if k not in GLOBAL_OPTIONS}
    if config.backend == "openai":
        options["concurrency"] = concurrency  # connections; the limiter caps what is in flight
    inner = make_backend(config.backend, config.resolved_model(), options)
    prices = PriceTable.from_file(config.prices_path) if config.prices_path else PriceTable()
    llm = LLM(
        LimitedBackend(inner, limiter, concurrency),
        cache=ActorCache(store) if store is not None else None,  # type: ignore[arg-type]
        ledger=Ledger(),
        prices=prices,
    )
    # The driver catches the run's ledger up from the cache; a worker's shard ledgers only
    # count the shard's own calls (the worker must not re-count the run's earlier ones).
    llm._caught_up = True
    return llm


def start_services(config: LLMConfig, cache_path: str | None) -> tuple[Any, Any | None]:
    """Start the limiter and cache actors on this (the driver's) node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    opts = config.options
    limiter = Limiter.options(scheduling_strategy=here, num_cpus=0).remote(  # type: ignore[attr-defined]
        int(opts.get("concurrency") or 1), opts.get("rpm"), opts.get("tpm")
    )
    store = None
    if config.use_cache and cache_path:
        store = CacheStore.options(scheduling_strategy=here, num_cpus=0).remote(cache_path)  # type: ignore[attr-defined]
    return limiter, store


def add_usage(ledger: Ledger, delta: Mapping[str, Any], *, paid: bool = True) -> None:
    """Add a worker shard's ledger (``Ledger.to_dict()``) into the run's ledger, exactly.

    ``paid=False`` adds its cache hits only: with a request cache, paid calls are counted from
    the cache's usage rows (:meth:`Ledger.catch_up`), those of killed workers included.
    """
    batch = Ledger.from_dict(delta)
    with ledger.lock:  # the ledger's own lock: progress displays read it concurrently
        for tag, usage in batch.stages.items():
            mine = ledger.stages.setdefault(tag, type(usage)())
            if not paid:
                mine.cache_hits += usage.cache_hits
                continue
            for field in vars(usage):
                setattr(mine, field, getattr(mine, field) + getattr(usage, field))
