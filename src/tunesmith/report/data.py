"""Assemble what the report shows from a run folder: summary, funnel, seed scores, rows (the
curves are in :mod:`tunesmith.report.curves`).

Everything here is plain data (dicts, lists, numbers, strings) so it can be unit-tested without a
browser and embedded in the page as JSON. Nothing is escaped here: escaping happens once, at the
boundary, in :mod:`tunesmith.report.build` (JSON embedding) and the Jinja template (autoescape).

The funnel follows how Self-Instruct shows a run: "generated -> removed by each filter -> kept"
(section 2.3's filters, with what each removed).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.records import Record
from tunesmith.report.curves import number_or_zero
from tunesmith.runs import RunDir, failed_step

EXAMPLES_PER_STAGE = 3
MAX_FIELD_CHARS = 2000
USAGE_KEYS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd")


def is_run_dir(path: Path) -> bool:
    """True when ``path`` is a run folder (it holds a ``manifest.json``)."""
    return path.is_dir() and (path / "manifest.json").is_file()


def read_json(path: Path) -> Any:
    """Read a JSON file, turning a syntax error into a one-line DataError naming file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"invalid JSON ({exc.msg})") from None


def open_run(path: Path) -> RunDir:
    """A read-only view of a run folder (unlike ``RunDir.open`` it never rewrites the manifest)."""
    manifest = read_json(path / "manifest.json")
    if not isinstance(manifest, dict):
        raise DataError(path / "manifest.json", 1, "manifest must be a JSON object")
    return RunDir(path, manifest)


def read_ledger(path: Path) -> dict[str, Any]:
    """The run's ``ledger.json`` as a dict (``{"total": {...}, "stages": {...}}``), {} if absent."""
    p = path / "ledger.json"
    data = read_json(p) if p.is_file() else {}
    return data if isinstance(data, dict) else {}


def summarize_run(
    manifest: Mapping[str, Any],
    ledger: Mapping[str, Any],
    *,
    n_kept: int,
    n_rejected: int,
    n_failed: int = 0,
    n_unchanged: int = 0,
    generation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run summary: method, model, status, timings, usage totals and cost per kept row.

    ``elapsed_s`` is the run's wall time; ``latency_s`` is the ledger's sum of per-call latencies,
    which exceeds wall time when calls run concurrently (shown as such, with the mean per call).
    ``generation`` (a generation run's :func:`generation_numbers`) replaces the row counts by the
    console's and compare-generators' instruction counts: ``kept`` is then kept instructions, and
    ``kept_rows`` the rows of ``kept.jsonl`` (Self-Instruct keeps one row per instance).
    ``unchanged`` counts kept rows whose LLM step failed (kept as they were, see
    :func:`unchanged_rows`).
    """
    total = {k: (ledger.get("total") or {}).get(k, 0) for k in USAGE_KEYS}
    config = manifest.get("config") or {}
    llm: Mapping[str, Any] = config["llm"] if isinstance(config.get("llm"), Mapping) else {}
    started, finished = manifest.get("started"), manifest.get("finished")
    elapsed = manifest.get("elapsed_s")
    if elapsed is None and isinstance(started, int | float):
        elapsed = (finished or time.time()) - started
    return {
        "method": str(manifest.get("method", "")),
        "status": str(manifest.get("status", "")),
        "model": str(llm.get("model") or config.get("model") or manifest.get("model") or ""),
        "backend": str(llm.get("backend") or config.get("backend") or ""),
        "started": _iso(started),
        "finished": _iso(finished),
        "elapsed_s": elapsed,
        "resumed": int(manifest.get("resumed", 0) or 0),
        "generated": n_kept + n_rejected + n_failed,
        "kept": n_kept,
        "rejected": n_rejected,
        "failed": n_failed,
        "unchanged": n_unchanged,
        **total,
        "latency_per_call_s": (total["latency_s"] / total["calls"]) if total["calls"] else None,
        "cost_per_kept": (total["cost_usd"] / n_kept) if n_kept else None,
        "calls_per_kept": (total["calls"] / n_kept) if n_kept else None,
        "kept_rows": n_kept,
        "unit": "rows",
        **(_instruction_counts(generation) if generation else {}),
        "stages": {
            str(tag): {k: usage.get(k, 0) for k in USAGE_KEYS}
            for tag, usage in (ledger.get("stages") or {}).items()
        },
        "config": config,
        "versions": manifest.get("versions") or {},
        "prompts": manifest.get("prompts") or {},
        "summary": manifest.get("summary") or {},
    }


def generation_numbers(path: Path, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """A generation run's numbers as the console and compare-generators print them (None when
    ``path`` is not a run of a compared method, or has no ledger yet)."""
    from tunesmith.generate.compare import GENERATION_STAGE, method_row

    method = str(manifest.get("method", ""))
    if method not in GENERATION_STAGE or not (path / "ledger.json").is_file():
        return None
    params = (manifest.get("config") or {}).get("params") or {}
    target = int(params.get("num_instructions") or 0)
    status = "budget" if "budget" in str(manifest.get("status", "")) else "done"
    row = method_row(path, method, target, status)
    return {**row, "target": target or None, "why": row["why"] if target else ""}


def _instruction_counts(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("generated", "kept", "calls_per_kept", "cost_per_kept", "tokens_per_kept")
    return {"unit": "instructions", **{k: row[k] for k in (*keys, "target", "why")}}


def unchanged_rows(kept: Iterable[Record]) -> list[dict[str, Any]]:
    """Kept rows whose LLM step failed, as funnel rows (a reflection the model did not follow
    keeps the original row: kept, not improved); the reason names the stage and its failure."""
    rows = []
    for rec in kept:
        stage = failed_step(rec.meta)
        if stage is not None:
            failure = rec.meta[stage].get("failure") or "failed"
            rows.append({"id": rec.id, "instruction": rec.instruction, "output": rec.output,
                         "score": None, "reason": f"{stage}: {failure}"})  # fmt: skip
    return rows


def build_funnel(
    n_kept: int,
    rejected: Sequence[Mapping[str, Any]],
    failed: Sequence[Mapping[str, Any]] = (),
    unchanged: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Generated -> failed -> removed by each stage (in order of first rejection) -> kept.

    Args:
        n_kept: rows in ``kept.jsonl``.
        rejected: rows of ``rejected.jsonl`` (each with ``rejected_by``, ``score``, ``reason``).
        failed: rows of ``failed.jsonl``: rows whose LLM call failed (``status``, ``message``);
            they were never decided, and a rerun with ``--retry-failed`` tries them again.
        unchanged: kept rows whose LLM step failed (:func:`unchanged_rows`): kept, not improved.

    Returns:
        ``{"generated", "kept", "failed", "steps": [{stage, removed, remaining, share, scores,
        examples, failed}]}`` where ``share`` is the fraction of the rows reaching that step that
        it removed; the failed rows are the first step (``failed: True``) when there are any.
    """
    by_stage: dict[str, list[Mapping[str, Any]]] = {}
    for row in rejected:
        by_stage.setdefault(str(row.get("rejected_by") or "unknown"), []).append(row)
    generated = n_kept + len(rejected) + len(failed)
    remaining, steps = generated, []
    groups = ([("failed (LLM error)", list(failed), True)] if failed else []) + [
        (stage, rows, False) for stage, rows in by_stage.items()
    ]
    for stage, rows, is_failed in groups:
        reaching = remaining
        remaining -= len(rows)
        steps.append(
            {
                "stage": stage,
                "failed": is_failed,
                "removed": len(rows),
                "reaching": reaching,
                "remaining": remaining,
                "share": len(rows) / reaching if reaching else 0.0,
                "scores": None if is_failed else _score_summary(r.get("score") for r in rows),
                "examples": [_example(r) for r in rows[:EXAMPLES_PER_STAGE]],
            }
        )
    return {
        "generated": generated,
        "kept": n_kept,
        "failed": len(failed),
        "unchanged": len(unchanged),
        "unchanged_examples": [_example(r) for r in unchanged[:EXAMPLES_PER_STAGE]],
        "steps": steps,
    }


def read_failed(path: Path) -> list[dict[str, Any]]:
    """Rows of the run's ``failed.jsonl`` that are still failed ([] when there is none).

    A row retried since (``--retry-failed``) and now kept or rejected stays in the file but is
    not counted, as the driver counts it; a torn last line is ignored, any other undecodable
    line is a DataError naming ``file:line`` (``RunDir.read_failed``).
    """
    run = open_run(path)
    done = run.kept_ids() | run.rejected_ids()
    return [row for row in run.read_failed() if str(row.get("id")) not in done]


def load_seed_scores(path: Path) -> list[dict[str, Any]]:
    """SeDi-Instruct's seed score table from ``seed_scores.json``, best score first.

    Each row is ``{id, instruction, seed_gen, seed_kept, score}`` with score = SeedKept / SeedGen
    (SeDi-Instruct section 3); a missing score is recomputed from the two counts (None, listed
    last, for a seed that has not generated anything yet).
    """
    if not path.is_file():
        return []
    data = read_json(path)
    if isinstance(data, Mapping):  # also accept {"seeds": [...]}
        data = data.get("seeds", [])
    if not isinstance(data, list):
        raise DataError(path, 1, "seed scores must be a list of {id, instruction, seed_gen, ...}")
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(data, start=1):
        if not isinstance(row, Mapping):
            raise DataError(path, i, "each seed score must be an object")
        gen, kept = number_or_zero(row.get("seed_gen")), number_or_zero(row.get("seed_kept"))
        score = row.get("score")
        rows.append(
            {
                "id": str(row.get("id", i)),
                "instruction": str(row.get("instruction", "")),
                "seed_gen": gen,
                "seed_kept": kept,
                "score": float(score) if score is not None else (kept / gen if gen else None),
            }
        )
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))
    return rows


def record_rows(
    items: Sequence[tuple[str, Record, str]], max_chars: int = MAX_FIELD_CHARS
) -> tuple[list[list[Any]], list[str]]:
    """Rows for the record browser and the score keys it can sort by.

    Each row is ``[id, group, instruction, input, output, detail, [score per key]]``: ``group``
    is ``kept``, the stage that rejected the row, or a dataset name; ``detail`` is the rejection
    score and reason, or the record's scores; the last list holds the record's numeric score for
    each sort key (None where it has none). Long fields are cut at ``max_chars``.
    """
    keys = sort_keys(rec for _, rec, _ in items)
    rows = [
        [
            rec.id,
            group,
            _clip(rec.instruction, max_chars),
            _clip(rec.input, max_chars),
            _clip(rec.output, max_chars),
            detail,
            [_number_or_none(rec.scores.get(k)) for k in keys],
        ]
        for group, rec, detail in items
    ]
    return rows, keys


def sort_keys(records: Iterable[Record], limit: int = 8) -> list[str]:
    """The ``limit`` score keys that most records hold a number for (most common first)."""
    counts: dict[str, int] = {}
    for rec in records:
        for key, value in rec.scores.items():
            if _number_or_none(value) is not None:
                counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))[:limit]


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None  # booleans, text, NaN: nothing to sort by
    return float(value) if abs(value) != float("inf") else None


def rejected_record(row: Mapping[str, Any]) -> tuple[str, Record, str]:
    """A ``rejected.jsonl`` row as ``(stage, Record, "score ... reason")`` for the browser."""
    rec = Record(
        id=str(row.get("id", "")),
        instruction=str(row.get("instruction") or ""),
        input=str(row.get("input") or ""),
        output=str(row.get("output") or ""),
        meta=row.get("meta") or {},
        scores=row.get("scores") or {},
    )
    ex = _example(row)
    detail = f"score {ex['score']}" + (f" — {ex['reason']}" if ex["reason"] else "")
    if _number_or_none(row.get("score")) is not None:  # sortable in the browser
        rec = rec.with_scores(rejection_score=row["score"])
    return str(row.get("rejected_by") or "unknown"), rec, detail


def failed_record(row: Mapping[str, Any]) -> tuple[str, Record, str]:
    """A ``failed.jsonl`` row as ``("failed", Record, "status ... message")`` for the browser."""
    _, rec, _ = rejected_record(row)
    status = row.get("status")
    detail = (f"HTTP {status} — " if status is not None else "") + str(row.get("message") or "")
    return "failed", rec, detail


def scores_text(record: Record) -> str:
    """The record's scores as compact text for the browser's detail column."""
    return ", ".join(f"{k}={_fmt_score(v)}" for k, v in record.scores.items())


def _example(row: Mapping[str, Any]) -> dict[str, str]:
    """A row as the funnel shows it; a failed row's HTTP status and message stand in for the
    score and the reason."""
    score = row.get("score") if "score" in row else row.get("status")
    reason = row.get("reason") or row.get("message") or ""
    if row.get("failed_in") and "reason" not in row:
        reason = f"{row['failed_in']}: {reason}"
    return {
        "id": str(row.get("id", "")),
        "instruction": _clip(str(row.get("instruction") or ""), 400),
        "output": _clip(str(row.get("output") or ""), 300),
        "score": _fmt_score(score),
        "reason": _clip(str(reason), 300),
    }


def _score_summary(scores: Iterable[Any]) -> dict[str, float] | None:
    nums = [float(s) for s in scores if isinstance(s, int | float) and not isinstance(s, bool)]
    if not nums:
        return None
    return {"min": min(nums), "median": statistics.median(nums), "max": max(nums)}


def _fmt_score(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False, default=str)[:200]
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [+{len(text) - limit} chars]"


def _iso(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
