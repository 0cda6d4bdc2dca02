"""The one place the evaluation writes files: judgments, ledger, summary, manifest.

TEMPORARY: written on :class:`tunesmith.runs.RunDir` until the engine's ``RunDriver`` lands on
main; then this class becomes a thin shim over it (same methods), and nothing else changes.

Folder layout::

    manifest.json     resolved config (files, judge hash, LLM settings), status
    judgments.jsonl   one row per judged pair (appended and fsynced per batch)
    ledger.json       calls, cache hits, tokens, cost, saved before the rows it paid for
    summary.json      win rates, LC win rate, per-category tables, position bias, excerpts
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.io import append_jsonl
from tunesmith.llm.usage import Ledger
from tunesmith.runs import RunDir

JUDGMENTS = "judgments.jsonl"


class JudgeStore:
    """Open (or resume) an evaluation folder; refuses to resume a different configuration."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.ledger = run.load_ledger()
        self._done: set[str] | None = None

    @classmethod
    def open(
        cls,
        out: str | Path,
        *,
        method: str,
        config: Mapping[str, Any],
        identity: Mapping[str, Any],
    ) -> JudgeStore:
        """Create or resume ``out``. ``identity`` is what decides the verdicts (files, judges,
        models, seed, noise); a folder made with a different one is refused. Budgets, cache
        paths and concurrency may change between runs (raise --max-calls and rerun)."""
        manifest = Path(out) / "manifest.json"
        new = json.loads(json.dumps(dict(identity), default=str))
        if manifest.exists():
            old = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
            old = old.get("identity", {})
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                raise ConfigError(
                    f"{out} holds an evaluation with a different '{changed[0]}'; "
                    "use another --out (or delete the folder) to start a new one"
                )
        return cls(RunDir.open(out, method=method, config={**config, "identity": new}))

    @property
    def path(self) -> Path:
        return self.run.path

    def rows(self) -> list[dict[str, Any]]:
        p = self.path / JUDGMENTS
        if not p.exists():
            return []
        out = []
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line from a kill: that pair is judged again
        return out

    def done_ids(self) -> set[str]:
        if self._done is None:
            self._done = {str(r["id"]) for r in self.rows()}
        return self._done

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Save the ledger, then append the new rows (no visible row without its cost)."""
        self.run.save_ledger(self.ledger)
        new = [r for r in rows if str(r["id"]) not in self.done_ids()]
        if new:
            append_jsonl(self.path / JUDGMENTS, new)
            self.done_ids().update(str(r["id"]) for r in new)
        self.run.log_event(judged=len(self.done_ids()), **_totals(self.ledger))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        p = self.path / "summary.json"
        tmp = p.with_name("summary.json.tmp")
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), "utf-8")
        os.replace(tmp, p)
        return p

    def finish(self, status: str = "done", **summary: Any) -> None:
        self.run.save_ledger(self.ledger)
        self.run.finish(status, **summary)


def _totals(ledger: Ledger) -> dict[str, Any]:
    t = ledger.total()
    return {"calls": t.calls, "cache_hits": t.cache_hits, "cost_usd": t.cost_usd}
