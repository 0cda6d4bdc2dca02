"""A leaderboard page from ``eval compare`` folders: models x judges, win rate with error bars,
LC win rate, W/T/L bars per category, and a browser of the judged pairs with both answers and
the verdicts. Everything a model or user wrote is HTML-escaped (Jinja autoescape).

When several models were judged against the same baseline by the same judge, each model's LC
win rate is refitted with instruction difficulty estimated from the *other* models' judgments
(:func:`tunesmith.judge.lc.estimate_difficulty`), which is what AlpacaEval 2's difficulty term
stands for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from tunesmith.errors import DataError
from tunesmith.judge import lc
from tunesmith.judge.store import read_rows

MAX_PAIRS = 300  # per comparison in the browser: the page stays light


def load_entry(folder: Path) -> dict[str, Any]:
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        raise DataError(summary_path, None, "no summary (run `tunesmith eval compare` first)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return {"folder": str(folder), "summary": summary, "rows": read_rows(folder)}


def refit_lc(entries: Sequence[dict[str, Any]]) -> None:
    """LC win rates with leave-one-model-out difficulty, per (judge, baseline) group."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in entries:
        key = (str(e["summary"].get("judge")), str(e["summary"].get("baseline")))
        groups.setdefault(key, []).append(e)
    for group in groups.values():
        if len({e["summary"].get("generator") for e in group}) < 2:
            continue
        prefs = {
            str(e["summary"]["generator"]): {
                r["instruction"]: float(r["preference"])
                for r in e["rows"]
                if r.get("preference") is not None
            }
            for e in group
        }
        for e in group:
            name = str(e["summary"]["generator"])
            diff = lc.estimate_difficulty(prefs, name)
            ok = [r for r in e["rows"] if r.get("preference") is not None]
            fit = lc.length_controlled_win_rate(
                [float(r["preference"]) for r in ok],
                [len(r["model_output"]) for r in ok],
                [len(r["baseline_output"]) for r in ok],
                difficulty=[diff.get(r["instruction"], 0.0) for r in ok],
                groups=[r["instruction"] for r in ok],
            )
            e["summary"]["lc_win_rate"] = fit["lc_win_rate"]
            e["summary"]["lc_difficulty"] = "other models' judgments"


def matrix(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Models x (judge vs baseline): each cell the summary of that comparison, or None."""
    columns = sorted(
        {f"{e['summary'].get('judge')} vs {e['summary'].get('baseline')}" for e in entries}
    )
    models = sorted({str(e["summary"].get("generator")) for e in entries})
    cells: dict[str, dict[str, Any]] = {m: {} for m in models}
    for e in entries:
        s = e["summary"]
        cells[str(s.get("generator"))][f"{s.get('judge')} vs {s.get('baseline')}"] = s
    return {"columns": columns, "models": models, "cells": cells}


def render(entries: Sequence[Mapping[str, Any]]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda x: "n/a" if x is None else f"{x:.1f}"
    ordered = sorted(entries, key=lambda e: -(e["summary"].get("win_rate") or 0))
    return env.from_string(_TEMPLATE).render(
        entries=ordered, max_pairs=MAX_PAIRS, grid=matrix(entries)
    )


def write_leaderboard(folders: Sequence[Path], out: Path) -> Path:
    entries = [load_entry(Path(f)) for f in folders]
    refit_lc(entries)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(entries), encoding="utf-8")
    os.replace(tmp, out)
    return out


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tunesmith leaderboard</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
.bar{display:inline-block;height:12px;vertical-align:middle}
.w{background:#2a9d8f}.t{background:#bbb}.l{background:#e76f51}
.err{position:relative;display:inline-block;width:200px;height:12px;background:#eee}
.err .v{position:absolute;height:12px;background:#264653}
.err .e{position:absolute;height:4px;top:4px;background:#f4a261}
pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;max-height:20em;overflow:auto}
</style></head><body>
<h1>Leaderboard</h1>
<table id="matrix"><tr><th>model</th>{% for col in grid.columns %}<th>{{ col }}</th>{% endfor %}</tr>
{% for m in grid.models %}<tr><td>{{ m }}</td>{% for col in grid.columns %}{% set s = grid.cells[m].get(col) %}
<td>{% if s %}{{ s.win_rate|pct }} &plusmn; {{ s.standard_error|pct }} (LC {{ s.lc_win_rate|pct }}){% else %}&ndash;{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
<table id="leaderboard"><tr><th>model</th><th>baseline</th><th>judge</th><th>n</th>
<th>win rate</th><th>&plusmn; s.e.</th><th></th><th>LC win rate</th><th>discrete</th><th>W / T / L</th></tr>
{% for e in entries %}{% set s = e.summary %}
<tr class="entry"><td>{{ s.generator }}</td><td>{{ s.baseline }}</td><td>{{ s.judge }}</td><td>{{ s.n }}</td>
<td class="wr">{{ s.win_rate|pct }}</td><td>{{ s.standard_error|pct }}</td>
<td><span class="err"><span class="v" style="width:{{ 2 * (s.win_rate or 0) }}px"></span>
<span class="e" style="left:{{ 2 * ((s.win_rate or 0) - (s.standard_error or 0)) }}px;width:{{ 4 * (s.standard_error or 0) }}px"></span></span></td>
<td class="lc">{{ s.lc_win_rate|pct }}</td><td>{{ s.discrete_win_rate|pct }}</td>
<td>{{ s.wins }} / {{ s.ties }} / {{ s.losses }}</td></tr>
{% endfor %}</table>
{% for e in entries %}{% set s = e.summary %}
<h2>{{ s.generator }} vs {{ s.baseline }} ({{ s.judge }})</h2>
<p>Position bias: first position wins {{ ((s.position_bias.first_position_wins or 0) * 100)|pct }}%,
order disagreement {{ ((s.position_bias.order_disagreement_rate or 0) * 100)|pct }}%.</p>
<table class="categories"><tr><th>category</th><th>n</th><th>win rate</th><th>W / T / L</th></tr>
{% for cat, t in s.per_category.items() %}<tr><td>{{ cat }}</td><td>{{ t.n }}</td><td>{{ t.win_rate|pct }}</td>
<td>{% if t.n %}<span class="bar w" style="width:{{ 200 * t.wins / t.n }}px"></span><span class="bar t" style="width:{{ 200 * t.ties / t.n }}px"></span><span class="bar l" style="width:{{ 200 * t.losses / t.n }}px"></span>{% endif %}
{{ t.wins }} / {{ t.ties }} / {{ t.losses }}</td></tr>{% endfor %}</table>
<details class="pairs"><summary>Judged pairs ({{ e.rows|length }})</summary>
{% for r in e.rows[:max_pairs] %}<div class="pair"><h3>{{ r.outcome or 'unreadable' }}: {{ r.instruction[:120] }}</h3>
<pre class="instruction">{{ r.instruction }}{% if r.input %}

{{ r.input }}{% endif %}</pre>
<table><tr><th>{{ r.generator }}</th><th>{{ r.baseline }}</th></tr>
<tr><td><pre class="model">{{ r.model_output }}</pre></td><td><pre class="baseline">{{ r.baseline_output }}</pre></td></tr></table>
{% for call in r.calls %}<p>{{ 'model shown second' if call.model_is_second else 'model shown first' }}:
preference for the second {{ call.pref_second }} {{ call.reason }}</p><pre class="verdict">{{ call.text }}</pre>{% endfor %}
</div>{% endfor %}</details>
{% endfor %}
</body></html>
"""
