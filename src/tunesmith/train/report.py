"""What the HTML report shows of a training run: loss, gradient norm and learning-rate curves
from ``train_log.jsonl``, and SeDi's seed-replacement history from ``seed_history.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup

from tunesmith.report import charts


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def training_charts(log: list[dict[str, Any]]) -> list[Markup]:
    """Loss and pre-clip gradient norm per step; learning rate per step."""
    loss = [(float(r["step"]), float(r["loss"])) for r in log if r.get("loss") is not None]
    norm = [
        (float(r["step"]), float(r["grad_norm"])) for r in log if r.get("grad_norm") is not None
    ]
    lr = [(float(r["step"]), float(r["lr"])) for r in log if r.get("lr") is not None]
    out = [charts.line_chart([("loss", loss)], x_label="step", y_label="loss")]
    if norm:
        out.append(charts.line_chart([("grad norm (pre-clip)", norm)], x_label="step",
                                     y_label="grad norm"))  # fmt: skip
    if lr:
        out.append(charts.line_chart([("learning rate", lr)], x_label="step", y_label="lr"))
    return out


def seed_history_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per replacement: when, which batch chose it, what came in and what went out."""
    return [
        {
            "step": h.get("step"),
            "chosen_step": h.get("chosen_step"),
            "grad_norm": h.get("grad_norm"),
            "added": [a.get("instruction", a.get("id")) for a in h.get("added", [])],
            "evicted": [
                f"{e.get('instruction', e.get('id'))} ({e.get('seed_kept')}/{e.get('seed_gen')})"
                for e in h.get("evicted", [])
            ],
        }
        for h in history
    ]


def training_context(path: Path) -> dict[str, Any]:
    """Template variables for a run folder (empty when it holds no training)."""
    log = _rows(path / "train_log.jsonl")
    if not log:
        return {"training_svgs": [], "seed_history": []}
    return {
        "training_svgs": training_charts(log),
        "seed_history": seed_history_rows(_rows(path / "seed_history.jsonl")),
    }
