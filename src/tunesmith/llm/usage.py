"""Token usage, cost and budgets.

Prices are USD per 1M input / output tokens per model, from a user-editable YAML/JSON table
(``{model: {input: 0.15, output: 0.6}}``). Local backends cost 0 unless the table names them.

**Every paid call is counted once, by the run that paid.** A :class:`Ledger` has a ``run_id``
(a new run folder's is derived from its path and its manifest's start time, then kept in
``ledger.json``). When an answer
arrives, the client stores it in the request cache together with a usage row for this run id, in
one SQLite transaction (:meth:`tunesmith.llm.cache.RequestCache.put`), and adds it to the ledger.
``ledger.json`` is saved later and may miss calls paid just before a SIGKILL or an abort; it also
keeps ``synced``: per cache file, the last usage row it counts. When a client is opened on a
ledger, :meth:`Ledger.catch_up` adds this run's usage rows above that mark (paid, never ledgered)
as calls, so the ledger equals what the server answered however often the run was killed. Cache
hits, including those answers when the resumed run reads them back, count as ``cache_hits``
only; another run that reads the same answers from a shared cache gets them as free hits.

**Budgets hold per request.** :class:`Budget` admits a request right before it is sent, counting
the calls and worst-case cost of requests still in flight, so ``max_calls`` is never exceeded
and ``max_cost`` is exceeded only if the server bills more tokens than the worst case (see
:meth:`Budget.worst_case`).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunesmith.errors import BudgetExceeded, ConfigError
from tunesmith.llm.base import Completion, Request, Verdict

if TYPE_CHECKING:
    from tunesmith.llm.cache import RequestCache


@dataclasses.dataclass(frozen=True)
class Price:
    input_per_m: float = 0.0
    output_per_m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


class PriceTable:
    """Model name -> Price; unknown models cost 0 (and are reported as unpriced)."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices = dict(prices or {})

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: cannot read price table: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: price table must map model names to {{input, output}}")
        prices = {}
        for model, entry in data.items():
            if not isinstance(entry, dict) or set(entry) - {"input", "output"}:
                raise ConfigError(
                    f"{p}: entry '{model}' must have only 'input' and 'output' (USD per 1M tokens)"
                )
            prices[str(model)] = Price(float(entry.get("input", 0)), float(entry.get("output", 0)))
        return cls(prices)

    def get(self, model: str) -> Price:
        return self.prices.get(model, Price())

    def has(self, model: str) -> bool:
        return model in self.prices


@dataclasses.dataclass
class StageUsage:
    """Usage of one stage. ``calls`` counts requests a server answered (``failed`` of them were
    refused for good); ``cache_hits`` were served from the cache and cost nothing."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    failed: int = 0


_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(StageUsage))
#: tokens a chat template may add around the messages, in a request's worst-case cost
_TEMPLATE_TOKENS = 32


class Ledger:
    """Running totals per stage tag and overall; thread-safe; persisted as JSON in the run folder.

    ``calls`` counts only requests actually sent (cache hits are counted separately and cost 0).

    Args:
        run_id: whose paid calls this ledger counts in the request cache's usage rows; a random
            id when not given (a ledger that lives only in memory).
    """

    def __init__(self, run_id: str | None = None) -> None:
        #: held by the client across "store answer + usage row, then count it", so that
        #: :meth:`catch_up` never sees a row that is stored but not yet counted
        self.lock = threading.RLock()
        self.stages: dict[str, StageUsage] = {}
        self.started = time.time()
        self.run_id = run_id or uuid.uuid4().hex
        #: cache id -> the last usage row (``seq``) of this run already in the totals
        self.synced: dict[str, int] = {}

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        """The ledger saved at ``path`` (a run folder's ``ledger.json``), or a new one whose run
        id is derived from the folder and its manifest, so calls paid before the first save
        still find it, and a new run in the same place (the folder deleted, or started anew)
        does not inherit the calls of the one before."""
        p = Path(path)
        folder_id = _folder_run_id(p.parent)
        if not p.exists():
            return cls(run_id=folder_id)
        data = json.loads(p.read_text(encoding="utf-8"))
        return cls.from_dict({**data, "run_id": data.get("run_id") or folder_id})

    def record(
        self, tag: str, completion: Completion, synced: tuple[str, int] | None = None
    ) -> None:
        """Count one completion: a cache hit, or a paid call (refused ones count as ``failed``).

        ``synced`` is ``(cache_id, seq)`` of the usage row stored for this call, if any.
        """
        with self.lock:
            u = self.stages.setdefault(tag or "default", StageUsage())
            if completion.cached:
                u.cache_hits += 1
                return
            u.calls += 1
            u.failed += int(completion.error is not None)
            u.prompt_tokens += completion.prompt_tokens
            u.completion_tokens += completion.completion_tokens
            u.latency_s += completion.latency_s
            u.cost_usd += completion.cost_usd
            if synced is not None and synced[1] > self.synced.get(synced[0], 0):
                self.synced[synced[0]] = synced[1]

    def catch_up(self, cache: RequestCache) -> int:
        """Count this run's calls that ``cache`` recorded as paid but this ledger never counted
        (the run was killed or aborted before saving it); returns how many."""
        with self.lock:
            rows = cache.paid_since(self.run_id, self.synced.get(cache.cache_id, 0))
            for seq, tag, usage in rows:
                self.record(tag, usage, synced=(cache.cache_id, seq))
            return len(rows)

    def total(self) -> StageUsage:
        with self.lock:
            t = StageUsage()
            for u in self.stages.values():
                for name in _USAGE_FIELDS:
                    setattr(t, name, getattr(t, name) + getattr(u, name))
            return t

    def totals(self) -> dict[str, Any]:
        """THE usage summary (calls, cache_hits, tokens, cost, latency, failed) over all stages.

        Read by the run driver (events, manifest summary), the report and ``compare``; nobody
        recomputes it. ``failed`` counts requests that came back with a per-request error.
        """
        t = self.total()
        return {
            "calls": t.calls,
            "cache_hits": t.cache_hits,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens,
            "cost_usd": round(t.cost_usd, 8),
            "latency_s": t.latency_s,
            "failed": int(getattr(t, "failed", 0)),
        }

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            total = self.total()
            return {
                "total": dataclasses.asdict(total),
                "stages": {k: dataclasses.asdict(v) for k, v in self.stages.items()},
                "run_id": self.run_id,
                "synced": dict(self.synced),
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        ledger = cls(run_id=data.get("run_id") or None)
        for tag, values in (data.get("stages") or {}).items():
            ledger.stages[tag] = StageUsage(
                **{k: v for k, v in values.items() if k in _USAGE_FIELDS}
            )
        ledger.synced = {str(k): int(v) for k, v in (data.get("synced") or {}).items()}
        return ledger

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        tmp.replace(path)


def _folder_run_id(folder: Path) -> str:
    """The folder's absolute path, plus the run id or start time its manifest was given when
    the run was created (manifests are written before the first call and kept on resume)."""
    ident = "dir:" + str(folder.resolve())
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ident
    stamp = (
        manifest.get("run_id") or manifest.get("started") if isinstance(manifest, dict) else None
    )
    return f"{ident}@{stamp}" if stamp else ident


def budget_verdict(
    *,
    spent: tuple[int, float],
    held: tuple[int, float],
    calls: int,
    cost: float,
    max_calls: int | None,
    max_cost: float | None,
) -> Verdict:
    """The budget rule for one request of ``calls`` samples and worst-case ``cost``.

    ``spent`` is (calls, cost) already paid, ``held`` the reservations of requests in flight.
    "send" when all of them plus this request fit; "wait" when only requests in flight stand in
    the way (an answer is counted as spent a moment before its reservation is freed, so stopping
    then would count it twice); "stop" when it cannot fit. Used by :class:`Budget` in one process
    and by the Ray engine's limiter for a whole job.
    """
    in_flight = held[0] > 0
    if max_calls is not None and spent[0] + held[0] + calls > max_calls:
        return "wait" if in_flight and spent[0] + calls <= max_calls else "stop"
    if max_cost is not None and spent[1] + held[1] + cost > max_cost:
        return "wait" if in_flight and spent[1] + cost <= max_cost else "stop"
    return "send"


@dataclasses.dataclass
class Budget:
    """Hard limits for a run (over the whole run, resumes included), checked right before each
    request is sent, counting the requests still in flight.

    ``max_calls`` is never exceeded: a request of ``n`` samples is sent only while the calls
    already counted plus those in flight plus ``n`` stay within it. ``max_cost`` reserves each
    request's :meth:`worst_case` cost until its answer is counted at its real cost, so the run
    never spends more than ``max_cost`` unless a server bills more tokens than that worst case.
    """

    max_cost: float | None = None
    max_calls: int | None = None
    _lock: threading.Lock = dataclasses.field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _calls: int = dataclasses.field(default=0, init=False, repr=False, compare=False)
    _cost: float = dataclasses.field(default=0.0, init=False, repr=False, compare=False)

    @property
    def limited(self) -> bool:
        return self.max_calls is not None or self.max_cost is not None

    @staticmethod
    def worst_case(request: Request, price: Price) -> float:
        """The most ``request`` can cost: every sample writes ``max_tokens``, and the prompt is
        taken as one token per UTF-8 byte, plus 8 per message and 32 more for what a chat
        template adds (role markers, a default system prompt); a byte-level BPE token covers at
        least one byte, so real prompts stay below this."""
        if request.prompt is not None:
            prompt_tokens = len(request.prompt.encode("utf-8")) + _TEMPLATE_TOKENS
        else:
            messages = request.messages or ()
            size = sum(len(str(m.get("content", "")).encode("utf-8")) for m in messages)
            prompt_tokens = size + 8 * len(messages) + _TEMPLATE_TOKENS
        return price.cost(prompt_tokens, request.params.max_tokens * request.n)

    def admit(self, ledger: Ledger, request: Request, price: Price) -> tuple[Verdict, float]:
        """Whether ``request`` may be sent now, and the cost reserved for it if so.

        "send" reserves its calls and worst-case cost (pair it with :meth:`release`); "wait"
        means only the reservations of answers still in flight stand in the way of the cost
        limit (they are usually billed below their worst case); "stop" means it cannot fit.
        Calls in flight always count, since every one of them will be a call the server
        answered.
        """
        cost = self.worst_case(request, price) if self.max_cost is not None else 0.0
        with self._lock:
            total = ledger.total()
            verdict = budget_verdict(
                spent=(total.calls, total.cost_usd), held=(self._calls, self._cost),
                calls=request.n, cost=cost, max_calls=self.max_calls, max_cost=self.max_cost,
            )  # fmt: skip
            if verdict != "send":
                return verdict, 0.0
            self._calls += request.n
            self._cost += cost
            return "send", cost

    def release(self, calls: int, cost: float) -> None:
        """Drop a reservation (after the answer is counted in the ledger, or it never came)."""
        with self._lock:
            self._calls -= calls
            self._cost -= cost

    def exceeded(self, ledger: Ledger) -> BudgetExceeded:
        t = ledger.total()
        return BudgetExceeded(
            f"budget reached after {t.calls} calls and ${t.cost_usd:.4f} "
            f"(limits: max_calls={self.max_calls}, max_cost={self.max_cost}); "
            "rerun the same command with a larger budget to resume"
        )
