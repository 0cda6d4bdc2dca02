"""What every run command does the same way: shared arguments, the closing summary and report.

The option groups themselves live in :mod:`tunesmith.commands._options`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands._options import (
    DataOptions,
    LLMOptions,
    RunOptions,
    ScorerOptions,
    options,
)

__all__ = [
    "BATCH",
    "DATA",
    "OUT",
    "PPL_FIELD",
    "PROMPTS_DIR",
    "TEMPLATES_HELP",
    "DataOptions",
    "LLMOptions",
    "RunOptions",
    "ScorerOptions",
    "accepted",
    "count_rows",
    "driver_flags",
    "finish",
    "generation_line",
    "make_scorer",
    "options",
    "rows_line",
    "run_job",
    "write_report_for",
]

DATA = typer.Argument(..., help="Dataset (.jsonl/.json/.parquet/datasets folder or run folder).")
OUT = typer.Option(..., "--out", "-o", help="Run folder (rerun into it to resume).")
BATCH = typer.Option(64, "--batch-size", help="Rows per checkpointed batch.")
PPL_FIELD = typer.Option(
    "instruction", "--field", help="instruction, input, output, prompt or text."
)
TEMPLATES_HELP = "Folder overriding the prompt templates."  # a generator's own prompts
PROMPTS_DIR = typer.Option(
    None, "--prompts-dir", help="Folder overriding packaged prompt templates."
)


def driver_flags(entry: Callable[..., Any], run: RunOptions) -> dict[str, Any]:
    """``force_new``/``retry_failed`` for a run entry point (see :func:`accepted`)."""
    return accepted(entry, **run.driver_flags())


def run_job(
    entry: Callable[..., Any], stage: Any, data: Path, out: Path, method: str, run: RunOptions,
    rows: DataOptions, extra: dict[str, Any] | None = None, **job: Any,
) -> Any:  # fmt: skip
    """Run ``stage`` over the rows of ``data`` into the run folder ``out`` through the driver's
    ``entry`` (``jobs.run_record_job`` or ``jobs.run_scoring_job``); the manifest's config
    names the data and ``extra``."""
    return entry(stage, rows.read(data), out=out, method=method,
                 extra_config={"data": str(data), **(extra or {})}, **job,
                 **driver_flags(entry, run))  # fmt: skip


def accepted(entry: Callable[..., Any], **values: Any) -> dict[str, Any]:
    """The keyword arguments ``entry`` takes; one it does not take is an error when set.

    An option is never silently ignored: ``--force-new`` on an entry point without it fails.
    """
    from tunesmith.errors import ConfigError

    takes = inspect.signature(entry).parameters
    out = {}
    for key, value in values.items():
        if key in takes:
            out[key] = value
        elif value not in (None, False):
            raise ConfigError(f"--{key.replace('_', '-')} is not supported by this command yet")
    return out


def count_rows(run_path: Path) -> dict[str, int]:
    """Kept, rejected and failed rows of a run folder, and kept rows left ``unchanged``.

    ``failed`` rows (``failed.jsonl``: the LLM call failed for good) are neither kept nor
    rejected; one that a ``--retry-failed`` rerun then kept or rejected no longer counts.
    ``unchanged`` counts kept rows a stage marked ``status: failed`` in their meta (a reflection
    the model did not follow keeps the original row): kept, but not improved.
    """
    ids: dict[str, set[str]] = {"kept": set(), "rejected": set(), "failed": set()}
    unchanged = 0
    for name, seen in ids.items():
        path = run_path / f"{name}.jsonl"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                seen.add(str(row.get("id")))
                if name == "kept" and _marked_failed(row):
                    unchanged += 1
    failed = ids["failed"] - ids["kept"] - ids["rejected"]
    return {"kept": len(ids["kept"]), "rejected": len(ids["rejected"]), "failed": len(failed),
            "unchanged": unchanged}  # fmt: skip


def _marked_failed(row: dict[str, Any]) -> bool:
    from tunesmith.runs import failed_step

    return failed_step(row.get("meta") or {}) is not None


def finish(run_path: Path, run: RunOptions, *, note: str = "", metrics: str = "cheap") -> None:
    """Print ``kept K, rejected R, failed F -> folder`` and write the run's report.html.

    Every run command ends here, so every run folder gets its report and every summary counts
    the rows whose LLM step failed.
    """
    counts = count_rows(run_path)
    typer.echo(f"{rows_line(counts)}{f' ({note})' if note else ''} -> {run_path}")
    if counts["failed"]:
        typer.echo(f"  failed rows: {run_path / 'failed.jsonl'} (rerun with --retry-failed)")
    write_report_for(run_path, run.report, metrics=metrics)


def rows_line(n: dict[str, int]) -> str:
    """``kept K (U unchanged: their LLM step failed), rejected R, failed F``."""
    unchanged = f" ({n['unchanged']} unchanged: their LLM step failed)" if n["unchanged"] else ""
    return f"kept {n['kept']}{unchanged}, rejected {n['rejected']}, failed {n['failed']}"


def write_report_for(run_path: Path, enabled: bool = True, metrics: str = "cheap") -> Path | None:
    """Write the run's HTML report into the run folder (skipped with ``--no-report``)."""
    if not enabled:
        return None
    from tunesmith.report import write_run_report

    path = write_run_report(run_path, metrics=metrics)
    typer.echo(f"report -> {path}")
    return path


def _manifest(run_path: Path) -> dict[str, Any]:
    path = run_path / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def generation_line(run_path: Path, method: str, target: int) -> str:
    """A generation run's numbers by the comparison's definitions, and why kept != target."""
    from tunesmith.generate.compare import method_row

    status = "budget" if "budget" in str(_manifest(run_path).get("status", "")) else "done"
    row = method_row(run_path, method, target, status)
    per = "-" if row["calls_per_kept"] is None else f"{row['calls_per_kept']:.2f}"
    line = (
        f"{method}: kept {row['kept']} instructions from {row['generated']} generated, "
        f"{row['calls']} calls, {per} calls per kept"
    )
    if row.get("cache_hits"):  # a rerun or a repeated prompt: answered, not paid again
        line += f", {row['cache_hits']} more answered from the request cache"
    return line + (f" ({row['kept']} for {target} asked: {row['why']})" if row["why"] else "")


def make_scorer(opts: ScorerOptions) -> Any:
    """The log-prob model the ``--runtime`` option names."""
    from tunesmith.llm.logprob import make_logprob_model

    return make_logprob_model(
        opts.runtime, opts.model, batch_size=opts.lm_batch_size, max_length=opts.max_length,
        threads=opts.threads,
    )  # fmt: skip
