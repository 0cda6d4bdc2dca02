"""Token usage, cost and budgets.

Prices are USD per 1M input / output tokens per model, from a user-editable YAML/JSON table
(``{model: {input: 0.15, output: 0.6}}``). Local backends cost 0 unless the table names them.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import BudgetExceeded, ConfigError
from tunesmith.llm.base import Completion, Request


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
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0


class Ledger:
    """Running totals per stage tag and overall; thread-safe; persisted as JSON in the run folder.

    ``calls`` counts only requests actually sent (cache hits are counted separately and cost 0).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stages: dict[str, StageUsage] = {}
        self.started = time.time()

    def record(self, tag: str, completion: Completion) -> None:
        with self._lock:
            u = self.stages.setdefault(tag or "default", StageUsage())
            if completion.cached:
                u.cache_hits += 1
                return
            u.calls += 1
            u.prompt_tokens += completion.prompt_tokens
            u.completion_tokens += completion.completion_tokens
            u.latency_s += completion.latency_s
            u.cost_usd += completion.cost_usd

    def total(self) -> StageUsage:
        with self._lock:
            t = StageUsage()
            for u in self.stages.values():
                for f in dataclasses.fields(StageUsage):
                    setattr(t, f.name, getattr(t, f.name) + getattr(u, f.name))
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
        total = self.total()
        with self._lock:
            return {
                "total": dataclasses.asdict(total),
                "stages": {k: dataclasses.asdict(v) for k, v in self.stages.items()},
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        ledger = cls()
        for tag, values in (data.get("stages") or {}).items():
            ledger.stages[tag] = StageUsage(**values)
        return ledger

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        tmp.replace(path)


@dataclasses.dataclass
class Budget:
    """Hard limits for a run, checked before each batch is sent (over the whole run, resumes included)."""

    max_cost: float | None = None
    max_calls: int | None = None

    def allowed(self, ledger: Ledger, requests: list[Request], price: Price) -> int:
        """How many of ``requests`` (in order) can be sent without risking the budget.

        Cost is estimated pessimistically: prompt chars / 3 input tokens plus the full max_tokens
        of output, so a run stops before, never after, crossing ``max_cost``.
        """
        total = ledger.total()
        n_ok = len(requests)
        if self.max_calls is not None:
            n_ok = min(n_ok, max(0, self.max_calls - total.calls))
        if self.max_cost is not None:
            spent = total.cost_usd
            for i, req in enumerate(requests[:n_ok]):
                spent += price.cost(req.prompt_chars() // 3 + 1, req.params.max_tokens)
                if spent > self.max_cost:
                    n_ok = i
                    break
        return n_ok

    def exceeded(self, ledger: Ledger) -> BudgetExceeded:
        t = ledger.total()
        return BudgetExceeded(
            f"budget reached after {t.calls} calls and ${t.cost_usd:.4f} "
            "(limits: max_calls={}, max_cost={}); rerun the same command with a larger budget to resume".format(
                self.max_calls, self.max_cost
            )
        )
