"""The LLM client every stage calls: request cache + budget + ledger around any backend.

How paid calls are counted exactly once across kills, aborts and shared caches is described in
:mod:`tunesmith.llm.usage` (the ledger side) and :mod:`tunesmith.llm.cache` (the usage rows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from tunesmith.llm.base import Backend, Completion, OnDone, Request, Verdict
from tunesmith.llm.cache import RequestCache, request_key
from tunesmith.llm.usage import Budget, Ledger, Price, PriceTable

ProgressHook = Callable[[Ledger], None]


class LLM:
    """Wraps a backend so that every call is cached, priced, counted and budgeted.

    Args:
        backend: where completions come from.
        cache: the request cache (None disables caching, e.g. for benchmarks).
        ledger: usage totals (shared by all stages of a run).
        prices: the price table; local backends cost 0 unless listed.
        budget: limits checked right before each request is sent.
        on_progress: called after every completion (for live progress displays).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        cache: RequestCache | None = None,
        ledger: Ledger | None = None,
        prices: PriceTable | None = None,
        budget: Budget | None = None,
        on_progress: ProgressHook | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.ledger = ledger or Ledger()
        self.prices = prices or PriceTable()
        self.budget = budget or Budget()
        self.on_progress = on_progress
        self._is_setup = False
        self._caught_up = False
        self._endpoint = backend.endpoint()
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.backend.model

    def complete(self, requests: Sequence[Request]) -> list[list[Completion]]:
        """Return ``request.n`` completions per request, in request order.

        Cached samples are returned without a call. Misses are sent as one batch to the backend
        (which fans them out); each answer is cached, with the usage row of the call that paid
        for it, the moment it arrives. The budget admits each request right before it is sent;
        when it refuses one, nothing more is sent, the answers that came are kept, and
        BudgetExceeded is raised. A request the server refused for good comes back as one
        completion with ``error`` set (never cached) in each of its sample slots.
        """
        if self.cache is not None and not self._caught_up:
            # Calls this run paid for but never counted (a kill or abort came first) count now,
            # before the budget is checked against the ledger.
            self.ledger.catch_up(self.cache)
            self._caught_up = True
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        keys = [[self._key(r, i) for i in range(r.n)] for r in requests]
        hits = self.cache.get_many(k for ks in keys for k in ks) if self.cache else {}
        # One outgoing request per (request, run of missing sample indexes).
        todo: list[tuple[int, list[int]]] = []
        for ri, ks in enumerate(keys):
            missing = []
            for si, key in enumerate(ks):
                hit = hits.get(key)
                if hit is not None:
                    hit.cached = True
                    results[ri][si] = hit
                    self.ledger.record(requests[ri].tag, hit)
                else:
                    missing.append(si)
            if missing:
                todo.append((ri, missing))
        if todo:
            self._send(requests, keys, todo, results)
        return [[c for c in row if c is not None] for row in results]

    def _key(self, request: Request, sample: int) -> str:
        return request_key(self.backend.name, self.model, request, sample, self._endpoint)

    def _send(
        self,
        requests: Sequence[Request],
        keys: list[list[str]],
        todo: list[tuple[int, list[int]]],
        results: list[list[Completion | None]],
    ) -> None:
        """Send the misses, each admitted by the budget right before it goes out; raise
        BudgetExceeded when the budget kept any of them back."""
        if not self._is_setup:
            self.backend.setup()
            self._is_setup = True
        batch = _Batch(self, requests, keys, todo, results)
        try:
            if not self.budget.limited:  # nothing to check: no per-request bookkeeping
                self.backend.complete(batch.outgoing, batch.on_done)
            elif self.backend.admits:
                self.backend.complete(batch.outgoing, batch.on_done, admit=batch.admit)  # type: ignore[call-arg]
            else:
                self._send_in_order(batch.outgoing, batch.on_done, batch.admit)
        finally:
            batch.release_all()
        if len(batch.done) < len(batch.outgoing):
            raise self.budget.exceeded(self.ledger)

    def _send_in_order(
        self, outgoing: list[Request], on_done: OnDone, admit: Callable[[int], Verdict]
    ) -> None:
        """For a backend that does not ask: admit requests up front, in order, send those, and
        repeat once their answers have freed the room they reserved."""
        start = 0
        while start < len(outgoing):
            end = start
            while end < len(outgoing) and admit(end) == "send":
                end += 1
            if end == start:
                return  # "stop" (nothing of this batch is in flight, so never "wait")
            self.backend.complete(outgoing[start:end], _shifted(on_done, start))
            start = end

    def _pay(self, tag: str, key: str, completion: Completion, price: Price) -> None:
        """Price one answered call, store it with its usage row (one transaction), count it."""
        completion.cost_usd = price.cost(completion.prompt_tokens, completion.completion_tokens)
        completion.cached = False
        with self.ledger.lock:  # stored and counted together: catch_up never counts it twice
            if self.cache is None:
                self.ledger.record(tag, completion)
                return
            seq = self.cache.put(key, completion, run=self.ledger.run_id, tag=tag)
            self.ledger.record(tag, completion, synced=(self.cache.cache_id, seq))

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()


def _with_n(request: Request, n: int) -> Request:
    if request.n == n:
        return request
    import dataclasses

    return dataclasses.replace(request, n=n)


def _shifted(on_done: OnDone, offset: int) -> OnDone:
    """``on_done`` for a slice of a batch that starts at ``offset``."""

    def shifted(j: int, completions: list[Completion]) -> None:
        on_done(offset + j, completions)

    return shifted


class _Batch:
    """One batch of misses in flight: budget reservations, and the answers as they come."""

    def __init__(
        self,
        llm: LLM,
        requests: Sequence[Request],
        keys: list[list[str]],
        todo: list[tuple[int, list[int]]],
        results: list[list[Completion | None]],
    ) -> None:
        self.llm, self.requests, self.keys, self.todo, self.results = (
            llm, requests, keys, todo, results,
        )  # fmt: skip
        self.outgoing = [_with_n(requests[ri], len(missing)) for ri, missing in todo]
        self.price = llm.prices.get(llm.model)  # unlisted (e.g. local) models cost 0
        self.reserved: dict[int, float] = {}  # outgoing index -> reserved cost, while in flight
        self.done: set[int] = set()
        self._lock = threading.Lock()

    def admit(self, j: int) -> Verdict:
        """Thread-safe: asked by the backend right before request ``j`` is sent."""
        verdict, cost = self.llm.budget.admit(self.llm.ledger, self.outgoing[j], self.price)
        if verdict == "send":
            with self._lock:
                self.reserved[j] = cost
        return verdict

    def on_done(self, j: int, completions: list[Completion]) -> None:
        """Store and count request ``j``'s answers, then free its budget reservation."""
        ri, missing = self.todo[j]
        tag = self.requests[ri].tag
        if completions and completions[0].error is not None:
            # one refusal stands for every sample slot, and is one call the server answered
            self.llm._pay(tag, self.keys[ri][missing[0]], completions[0], self.price)
            pairs = [(si, completions[0]) for si in missing]
        else:
            pairs = list(zip(missing, completions, strict=False))
            for si, comp in pairs:
                self.llm._pay(tag, self.keys[ri][si], comp, self.price)
        with self._lock:
            for si, comp in pairs:
                self.results[ri][si] = comp
            self.done.add(j)
            cost = self.reserved.pop(j, None)
        if cost is not None:  # after the ledger counts the answer: never a moment uncounted
            self.llm.budget.release(self.outgoing[j].n, cost)
        if self.llm.on_progress is not None:
            self.llm.on_progress(self.llm.ledger)

    def release_all(self) -> None:
        """Free what is still reserved (requests that never came back: the run is ending)."""
        with self._lock:
            left, self.reserved = self.reserved, {}
        for j, cost in left.items():
            self.llm.budget.release(self.outgoing[j].n, cost)
