"""LLM calls on a Ray cluster: one limiter and one request cache for the whole job.

Every worker builds its own :class:`~tunesmith.llm.client.LLM`, but the things that must be
global are Ray actors pinned to the driver's node:

- :class:`Limiter` holds THE concurrency cap, THE RPM/TPM token buckets and THE budget
  (``max_calls``/``max_cost``) of the job. Each request acquires a lease before it is sent and
  releases it, with what it was billed, when it is answered, so ``K`` workers never have more
  than ``concurrency`` requests in flight together (not ``K * concurrency``), and the budget is
  admitted per request over the whole job, counting requests in flight, as in one process.
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
import dataclasses
import math
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
from tunesmith.llm.usage import Budget, Ledger, Price, PriceTable, budget_verdict

#: backend options the limiter takes over (the per-worker backend must not apply them again)
GLOBAL_OPTIONS = ("concurrency", "rpm", "tpm")


@dataclasses.dataclass
class _Lease:
    """One request's hold on the limiter: its budget reservation and, once sent, a slot."""

    expires: float
    calls: int
    cost: float
    slot: bool = False


@ray.remote(max_concurrency=1024)  # type: ignore[call-overload]
class Limiter:
    """The job's concurrency cap, RPM/TPM buckets and budget (an async actor: waiting costs
    nothing, and its coroutines never interleave between two ``await``).

    Every paid request of the job asks here first, so the budget is admitted per request as the
    single-process :class:`~tunesmith.llm.usage.Budget` does: a request is let through only while
    the calls (and cost) already spent, plus the reservations of requests in flight, plus its own
    ``n`` calls (and worst-case cost) stay within ``max_calls`` (``max_cost``). Cache hits never
    ask. A lease is renewed by its worker every few seconds: the slot and reservation of a worker
    killed mid-request expire after ``ttl`` seconds, and its reservation then counts as spent
    (the request may have been answered), so a dead worker can make the job stop early, never
    overspend; a rerun counts what was really paid, from the ledger.
    """

    def __init__(
        self,
        concurrency: int,
        rpm: float | None,
        tpm: float | None,
        ttl: float = 15.0,
        max_calls: int | None = None,
        max_cost: float | None = None,
    ):
        self.cap = max(1, concurrency)
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self.ttl = ttl
        self.max_calls, self.max_cost = max_calls, max_cost
        self.spent_calls, self.spent_cost = 0, 0.0
        self.leases: dict[int, _Lease] = {}
        self.next_id = 0
        self.peak = 0

    async def acquire(self, tokens: int, calls: int = 1, cost: float = 0.0) -> int:
        """A lease for one request of ``calls`` samples and worst-case ``cost``: its budget
        reserved, its rate tokens taken and a slot held; 0 when the budget refuses it."""
        self.next_id += 1
        lease = self.next_id
        if not await self._reserve(lease, calls, cost):
            return 0
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)
        while True:
            self._expire()
            if self._in_flight() < self.cap:
                break
            await asyncio.sleep(0.005)
        held = self.leases[lease]  # never expires while here (``expires`` is infinite)
        held.slot, held.expires = True, time.monotonic() + self.ttl
        self.peak = max(self.peak, self._in_flight())
        return lease

    def _in_flight(self) -> int:
        return sum(h.slot for h in self.leases.values())

    async def _reserve(self, lease: int, calls: int, cost: float) -> bool:
        """Wait while only reservations in flight stand in the way; False: it cannot fit."""
        while True:
            self._expire()
            verdict = self._verdict(calls, cost)
            if verdict == "send":
                self.leases[lease] = _Lease(math.inf, calls, cost)
                return True
            if verdict == "stop":
                return False
            await asyncio.sleep(0.005)

    def _verdict(self, calls: int, cost: float) -> str:
        """:func:`~tunesmith.llm.usage.budget_verdict`, over the whole job."""
        return budget_verdict(
            spent=(self.spent_calls, self.spent_cost),
            held=(sum(h.calls for h in self.leases.values()),
                  sum(h.cost for h in self.leases.values())),
            calls=calls, cost=cost, max_calls=self.max_calls, max_cost=self.max_cost,
        )  # fmt: skip

    def _expire(self) -> None:
        """Drop the leases of dead workers, counting their reservations as spent."""
        now = time.monotonic()
        for key in [k for k, h in self.leases.items() if h.expires <= now]:
            held = self.leases.pop(key)
            self.spent_calls += held.calls
            self.spent_cost += held.cost

    async def renew(self, leases: list[int]) -> None:
        for lease in leases:
            if lease in self.leases and self.leases[lease].slot:
                self.leases[lease].expires = time.monotonic() + self.ttl

    async def release(self, lease: int, calls: int = 0, cost: float = 0.0) -> None:
        """Free ``lease``, counting the ``calls`` and ``cost`` its request was billed (an
        expired lease was counted at its reservation already)."""
        if self.leases.pop(lease, None) is not None:
            self.spent_calls += calls
            self.spent_cost += cost

    async def set_spent(self, calls: int, cost: float) -> None:
        """What the run already paid (its ledger, caught up from the cache), e.g. on resume."""
        self.spent_calls, self.spent_cost = calls, cost

    async def stats(self) -> dict[str, Any]:
        return {"in_flight": self._in_flight(), "peak": self.peak, "spent_calls": self.spent_calls,
                "spent_cost": self.spent_cost}  # fmt: skip


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
    """Sends each request only while holding a lease of the job-wide :class:`Limiter`.

    A request the limiter refuses (the job's budget is spent) is not sent and not reported to
    ``on_done``, and no later request of the batch is started: the client then raises
    BudgetExceeded, as it does when its own budget refuses a request in one process.
    """

    def __init__(self, inner: Backend, limiter: Any, threads: int, price: Price | None = None):
        super().__init__(inner.model)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # cache keys name the real backend
        self.is_local = inner.is_local  # type: ignore[misc]
        self.limiter = limiter
        self.price = price or Price()  # what the client will bill each answer at
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
        refused = threading.Event()

        def one(i: int, request: Request) -> tuple[int, list[Completion] | None]:
            if refused.is_set():  # the budget is spent: start nothing more
                return i, None
            tokens = request.prompt_chars() // 4 + request.params.max_tokens
            worst = Budget.worst_case(request, self.price)
            lease = ray.get(self.limiter.acquire.remote(tokens, request.n, worst))
            if not lease:
                refused.set()
                return i, None
            self.held.add(lease)
            got: list[Completion] = []
            try:
                self._send(request, got)
            finally:
                self.held.discard(lease)
                ray.get(self.limiter.release.remote(lease, *self._billed(got, request.n)))
            return i, got

        futures = [self.pool.submit(one, i, r) for i, r in enumerate(requests)]
        for future in concurrent.futures.as_completed(futures):
            i, got = future.result()
            if got is not None:
                on_done(i, got)  # on the caller's thread, as the contract asks

    def _send(self, request: Request, got: list[Completion]) -> None:
        if self._started.is_set():
            self.inner.complete([request], lambda _, comps: got.extend(comps))
        else:  # the first call opens the backend's event loop: one thread at a time
            with self._lock:
                self.inner.complete([request], lambda _, comps: got.extend(comps))
                self._started.set()

    def _billed(self, got: list[Completion], n: int) -> tuple[int, float]:
        """The calls and cost the client's ledger will count for these answers (a refusal is
        one call for all its samples)."""
        paid = got[:1] if got and got[0].error is not None else got[:n]
        return len(paid), sum(self.price.cost(c.prompt_tokens, c.completion_tokens) for c in paid)

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.inner.close()


def worker_llm(config: LLMConfig, limiter: Any, store: Any | None) -> LLM:
    """A worker's client: the configured backend behind the global limiter and shared cache.

    Its own :class:`~tunesmith.llm.usage.Budget` is unlimited: the job's budget is admitted by
    the limiter, which sees every worker's requests.
    """
    concurrency = int(config.options.get("concurrency") or 1)
    options = {k: v for k, v in config.options.items() if k not in GLOBAL_OPTIONS}
    if config.backend == "openai":
        options["concurrency"] = concurrency  # connections; the limiter caps what is in flight
    inner = make_backend(config.backend, config.resolved_model(), options)
    prices = PriceTable.from_file(config.prices_path) if config.prices_path else PriceTable()
    llm = LLM(
        LimitedBackend(inner, limiter, concurrency, prices.get(inner.model)),
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
        int(opts.get("concurrency") or 1), opts.get("rpm"), opts.get("tpm"),
        max_calls=config.max_calls, max_cost=config.max_cost,
    )  # fmt: skip
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
