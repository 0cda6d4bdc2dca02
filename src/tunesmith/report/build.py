"""Build the report: one self-contained HTML file for a run folder or for plain datasets.

The page is rendered by Jinja with autoescape on; charts are inline SVG (:mod:`.charts`); the
record browser is a small inline script that reads the rows from a
``<script type="application/json">`` block (with ``<``, ``>`` and ``&`` written as ``\\u003c``
etc., so no text in a row can close the block) and renders one page of rows with ``textContent``.
A Content-Security-Policy allows only that one script (by its sha256) and no network at all, so
even a bug in escaping could not run injected code or fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from tunesmith import __version__
from tunesmith.errors import DataError
from tunesmith.records import Record
from tunesmith.report import charts, curves
from tunesmith.report import data as rd
from tunesmith.report.metrics import (
    LENGTH_FIELDS,
    check_level,
    dataset_metrics,
    histogram,
    table_columns,
)

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}
_JSON_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def embed_json(value: Any) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` (and the
    JS line separators) are written as ``\\uXXXX`` escapes, which ``JSON.parse`` reads back."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return Markup(text.translate(_JSON_ESCAPES))


def write_run_report(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    metrics: str = "cheap",
) -> Path:
    """Write the HTML report of a run folder (default ``<run>/report.html``).

    Args:
        path: a run folder (``manifest.json``, ``kept.jsonl``, ``rejected.jsonl``, ``ledger.json``,
            ``events.jsonl``, and ``seed_scores.json`` for SeDi-Instruct runs).
        out: where to write the page.
        metrics: ``cheap`` (fast statistics, sampled verb-noun parse), ``all`` or ``none``.

    Returns:
        The path written.
    """
    check_level(metrics)
    run_path = Path(path)
    if not rd.is_run_dir(run_path):
        raise DataError(run_path, None, "not a run folder (no manifest.json)")
    context = run_context(run_path, metrics=metrics)
    return _write(Path(out) if out else run_path / "report.html", context)


def write_report(
    data_paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    metrics: str = "cheap",
) -> Path:
    """Write a report of datasets side by side: metrics table, histograms, sunburst, records.

    Run folders given here count as their kept rows and are compared (summary table, kept vs API
    calls); a folder holding run folders (``tunesmith compare``'s output) stands for those runs.

    Args:
        data_paths: dataset files/folders, run folders, or a folder of run folders.
        out: where to write the page.
        metrics: ``cheap``, ``all`` or ``none``.
    """
    check_level(metrics)
    context = datasets_context([Path(p) for p in data_paths], metrics=metrics)
    return _write(Path(out), context)


def run_context(path: Path, *, metrics: str) -> dict[str, Any]:
    """Everything the template shows for one run folder."""
    run = rd.open_run(path)
    kept = run.read_kept()
    rejected = run.read_rejected()
    failed = rd.read_failed(path)
    unchanged = rd.unchanged_rows(kept)
    ledger = rd.read_ledger(path)
    summary = rd.summarize_run(
        run.manifest, ledger, n_kept=len(kept), n_rejected=len(rejected), n_failed=len(failed),
        n_unchanged=len(unchanged), generation=rd.generation_numbers(path, run.manifest),
    )  # fmt: skip
    funnel = rd.build_funnel(len(kept), rejected, failed, unchanged)
    curve = curves.build_curve(run.read_events(), started=run.manifest.get("started"))
    curve = curves.close_curve(curve, summary)
    rejected_items = [rd.rejected_record(row) for row in rejected]
    rejected_items += [rd.failed_record(row) for row in failed]
    datasets: list[tuple[str, Sequence[Record], bool]] = [("kept", kept, True)]
    if rejected:  # the same statistics before filtering, to show what the filters changed
        datasets.append(("generated", kept + [rec for _, rec, _ in rejected_items], False))
    items = [("kept", r, rd.scores_text(r)) for r in kept] + rejected_items
    return {
        "title": f"{summary['method'] or 'run'} — {path.name}",
        "source": str(path),
        "summary": summary,
        "funnel": funnel,
        "funnel_svg": charts.funnel_chart(funnel) if funnel["generated"] else Markup(""),
        "curve": curve,
        "curve_svgs": _curve_charts(curve),
        "seeds": rd.load_seed_scores(path / "seed_scores.json"),
        **_training_context(path),
        **_metrics_context(datasets, metrics),
        **_browser_context(items),
    }


def _training_context(path: Path) -> dict[str, Any]:
    """Training curves and SeDi seed history (owned by tunesmith.train.report)."""
    from tunesmith.train.report import training_context

    return training_context(path)


def datasets_context(paths: Sequence[Path], *, metrics: str) -> dict[str, Any]:
    """Everything the template shows for dataset files and run folders side by side.

    A folder holding run folders (as ``tunesmith compare`` writes) stands for those runs. Run
    folders contribute their kept rows, and together a comparison of their curves: kept
    instructions against API calls, as SeDi-Instruct's Figure 1 compares it with Self-Instruct.
    """
    from tunesmith.io import read_records

    paths = expand_paths(paths)
    datasets: list[tuple[str, list[Record]]] = []
    runs: list[tuple[str, Path]] = []
    for p in paths:
        name = p.name if p.is_dir() else p.stem
        while name in {n for n, _ in datasets}:
            name += "'"
        if rd.is_run_dir(p):
            runs.append((name, p))
            datasets.append((name, rd.open_run(p).read_kept()))
        else:
            datasets.append((name, read_records(p, require_instruction=False)))
    items = [(name, r, rd.scores_text(r)) for name, recs in datasets for r in recs]
    metric_sets = [(name, recs, True) for name, recs in datasets]
    return {
        "title": ", ".join(n for n, _ in datasets) or "datasets",
        "source": ", ".join(str(p) for p in paths),
        "summary": None,
        "datasets": [
            {"name": n, "path": str(p), "rows": len(r)}
            for (n, r), p in zip(datasets, paths, strict=True)
        ],
        **_runs_context(runs),
        **_metrics_context(metric_sets, metrics),
        **_browser_context(items),
    }


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Replace a folder of run folders (not itself a run) by the run folders in it."""
    out: list[Path] = []
    for p in paths:
        inner = sorted(c for c in p.iterdir() if rd.is_run_dir(c)) if p.is_dir() else []
        out.extend(inner if inner and not rd.is_run_dir(p) else [p])
    return out


def _runs_context(runs: Sequence[tuple[str, Path]]) -> dict[str, Any]:
    """One summary row per run and their curves on shared axes (SeDi-Instruct, Figure 1)."""
    rows, run_curves = [], []
    for name, p in runs:
        run = rd.open_run(p)
        ledger = rd.read_ledger(p)
        n_kept, n_rejected = len(run.kept_ids()), len(run.rejected_ids())
        n_failed = len(rd.read_failed(p))
        summary = rd.summarize_run(
            run.manifest, ledger, n_kept=n_kept, n_rejected=n_rejected, n_failed=n_failed,
            generation=rd.generation_numbers(p, run.manifest),
        )  # fmt: skip
        rows.append({"name": name, **summary})
        curve = curves.build_curve(run.read_events(), started=run.manifest.get("started"))
        run_curves.append((name, curves.close_curve(curve, summary)))
    svgs = []
    by_calls = [(n, c["points"]) for n, c in run_curves if c["points"] and c["x"] == "calls"]
    if by_calls:
        svgs.append(
            charts.line_chart(
                [(n, [(p["calls"], p["kept"]) for p in pts]) for n, pts in by_calls],
                x_label="API calls",
                y_label="kept instructions",
            )
        )
        svgs.append(
            charts.line_chart(
                [
                    (n, [(p["kept"], p["calls"] / p["kept"]) for p in pts if p["kept"]])
                    for n, pts in by_calls
                ],
                x_label="kept instructions",
                y_label="API calls per kept",
            )
        )
    return {"runs": rows, "runs_svgs": svgs}


def _curve_charts(curve: dict[str, Any]) -> list[Markup]:
    pts = curve["points"]
    if not pts:
        return []
    x_key = curve["x"]
    x_label = "API calls" if x_key == "calls" else "seconds"
    counts = charts.line_chart(
        [
            ("generated", [(p[x_key], p["generated"]) for p in pts]),
            ("kept", [(p[x_key], p["kept"]) for p in pts]),
        ],
        x_label=x_label,
        y_label="instructions",
    )
    out = [counts]
    cost = [(p[x_key], p["cost_per_kept"]) for p in pts if p["cost_per_kept"] is not None]
    if cost and any(y > 0 for _, y in cost):
        out.append(charts.line_chart([("USD per kept", cost)], x_label=x_label, y_label="USD"))
    elif x_key == "calls":
        per_kept = [(p[x_key], p["calls"] / p["kept"]) for p in pts if p["kept"]]
        out.append(
            charts.line_chart([("calls per kept", per_kept)], x_label=x_label, y_label="calls")
        )
    return out


def _metrics_context(
    datasets: Sequence[tuple[str, Sequence[Record], bool]], level: str
) -> dict[str, Any]:
    """Metrics of each ``(name, records, primary)``; a secondary view of the same rows (a run's
    generated candidates) gets only the cheap statistics and no verb-noun parse."""
    # size-dependent metrics at the smallest size shown (metrics.sampling.equal_size_target,
    # inlined: the metrics package is optional for a report)
    sizes = sorted({len(recs) for _, recs, _ in datasets if recs})
    size = sizes[0] if len(sizes) > 1 else None
    rows = [
        dataset_metrics(
            recs,
            name=name,
            level=level if primary or level == "none" else "cheap",
            verb_nouns=primary,
            size_sample=size,
        )
        for name, recs, primary in datasets
    ]
    hists = []
    for field in LENGTH_FIELDS:
        if not any(n for row in rows for n in row["lengths"][field]):
            continue  # the field is empty everywhere (e.g. instructions without inputs)
        h = histogram({row["name"]: row["lengths"][field] for row in rows})
        if h["edges"]:
            hists.append(
                {
                    "field": field,
                    "svg": charts.histogram_chart(
                        h["edges"], h["series"], x_label=f"{field} words", overflow=h["overflow"]
                    ),
                }
            )
    sunbursts = [
        {"name": row["name"], "svg": charts.sunburst_chart(row["verb_nouns"])}
        for row in rows
        if row["verb_nouns"]
    ]
    return {
        "metrics_level": level,
        "metric_rows": [
            {"name": r["name"], "stats": r["stats"], "notes": r["notes"]} for r in rows
        ],
        "metric_columns": table_columns([r["stats"] for r in rows]),
        "histograms": hists,
        "sunbursts": sunbursts,
    }


def _browser_context(items: Sequence[tuple[str, Record, str]]) -> dict[str, Any]:
    rows, keys = rd.record_rows(items)
    groups: dict[str, int] = {}
    for row in rows:
        groups[row[1]] = groups.get(row[1], 0) + 1
    return {"records": rows, "groups": groups, "sort_keys": keys}


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("tunesmith.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _asset(name: str) -> str:
    return resources.files("tunesmith.report").joinpath("templates", name).read_text("utf-8")


def render_html(context: dict[str, Any]) -> str:
    """Render the page; the inline script is allowed by its hash in the page's CSP."""
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    page_data = {k: context[k] for k in ("records", "groups", "sort_keys")}
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            **context,
            css=Markup(_asset("report.css")),
            script=Markup(script),
            script_hash=digest,
            page_json=embed_json(page_data),
            config_json=json.dumps(
                (context.get("summary") or {}).get("config", {}),
                indent=2,
                ensure_ascii=False,
                default=str,
            ),
            version=__version__,
            created=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            fmt=_fmt,
        )
    )


def _write(out: Path, context: dict[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(context), encoding="utf-8")
    os.replace(tmp, out)
    return out


def _fmt(value: Any, kind: str = "") -> str:
    """Numbers for people: thousands separators, 4 significant digits, $ for cost, s for time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if kind == "usd":
        if value == 0:
            return "$0"
        if 0 < abs(value) < 0.01:  # two significant digits of a fraction of a cent
            return f"${value:.{1 - math.floor(math.log10(abs(value)))}f}"
        return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "s":
        return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.1f} min"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"
