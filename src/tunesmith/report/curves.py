"""Cumulative curves of a run, for SeDi-Instruct's Figure 1: generated and kept instructions
as the API calls (or the seconds) grow.

Built from the cumulative snapshots ``RunDir.log_event`` writes after each batch; plain data, so
it is unit-tested without a browser (:mod:`tunesmith.report.charts` draws it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def build_curve(
    events: Iterable[Mapping[str, Any]], started: float | None = None
) -> dict[str, Any]:
    """Cumulative generated / kept / calls / cost per event, for SeDi-Instruct's Figure 1.

    Events are the cumulative snapshots ``RunDir.log_event`` writes after each batch. ``generated``
    is taken from the event when present, else ``kept + rejected``. The x axis is API calls when
    any were made (the paper's unit of cost), else seconds since the start (e.g. a cached replay).

    A cumulative curve never goes down: only one stage's events are plotted (the generation
    events when there are any, else the stage that logged most), and each count is carried as a
    running maximum, so a counter that restarted (a resumed session) shows as flat, never as a
    drop.
    """
    events = [e for e in events if "kept" in e]
    # Multi-stage methods (Self-Instruct: bootstrap, then classification and instances; recipes:
    # one event per stage) log "kept" counts of different things; plot one series.
    if any("generated" in e for e in events):
        events = [e for e in events if "generated" in e]
    events = _one_stage(events)
    points: list[dict[str, Any]] = []
    for e in sorted(events, key=lambda e: float(e.get("t", 0))):
        kept = number_or_zero(e.get("kept"))
        points.append(
            {
                "t": float(e.get("t", 0)),
                "generated": number_or_zero(
                    e.get("generated", kept + number_or_zero(e.get("rejected")))
                ),
                "kept": kept,
                "calls": number_or_zero(e.get("calls")),
                "cost_usd": number_or_zero(e.get("cost_usd")),
            }
        )
    for key in ("generated", "kept", "calls", "cost_usd"):
        top = 0.0
        for p in points:
            top = p[key] = max(top, p[key])
    t0 = started if started is not None else (points[0]["t"] if points else 0.0)
    for p in points:
        p["cost_per_kept"] = p["cost_usd"] / p["kept"] if p["kept"] else None
        p["elapsed_s"] = max(0.0, p["t"] - t0)
    x_key = "calls" if points and points[-1]["calls"] > 0 else "elapsed_s"
    return {"x": x_key, "points": points}


def close_curve(curve: dict[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """End a calls-axis curve at the run's total calls and cost (the summary's numbers).

    The plotted events are the generation stage's; later stages (Self-Instruct's classification
    and instance generation) spend calls without adding instructions, so the last point is
    repeated at the ledger's totals: the curve then counts all of the method's calls, as the
    summary table does, instead of stopping at the generation stage's share.
    """
    pts = curve["points"]
    calls, cost = float(summary.get("calls") or 0), float(summary.get("cost_usd") or 0)
    if curve["x"] != "calls" or not pts or calls <= pts[-1]["calls"]:
        return curve
    last = dict(pts[-1])
    last.update(calls=calls, cost_usd=max(cost, last["cost_usd"]))
    last["cost_per_kept"] = last["cost_usd"] / last["kept"] if last["kept"] else None
    return {**curve, "points": [*pts, last]}


def _one_stage(events: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events of the stage that logged most (the first such stage on a tie)."""
    by_stage: dict[Any, list[Mapping[str, Any]]] = {}
    for e in events:
        by_stage.setdefault(e.get("stage"), []).append(e)
    return max(by_stage.values(), key=len) if by_stage else []


def number_or_zero(value: Any) -> float:
    """``value`` as a float; 0.0 for None, empty or not a number (event counts, seed counts)."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0
