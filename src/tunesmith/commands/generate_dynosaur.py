"""``tunesmith generate dynosaur DATASET --out RUN``: tasks designed from dataset metadata and
applied to every row (reached through ``generate``; see :mod:`tunesmith.commands._methods`)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("dynosaur")
def dynosaur(
    dataset: Path = typer.Argument(
        ..., help="A datasets folder, a .csv/.json/.jsonl/.parquet file, or a folder of them."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (rerun to resume or grow)."),
    card: Path = typer.Option(
        None, "--card", help="Description/card file of a single dataset (else found beside it)."
    ),
    license: str = typer.Option(
        None, "--license", help="Licence carried on every row (else read from the card)."
    ),
    max_tasks: int = typer.Option(3, "--max-tasks", help="Tasks asked per prompt."),
    prompt: list[str] = typer.Option(
        None, "--prompt", help="aware and/or unaware (default both; repeatable)."
    ),
    max_tokens: int = typer.Option(512, "--max-tokens", help="max_tokens of a design reply."),
    max_chars: int = typer.Option(
        5000, "--max-chars", help="Reject rows longer than this (instruction + input + output)."
    ),
    batch_size: int = typer.Option(1000, "--batch-size", help="Rows per checkpointed batch."),
    prompts_dir: Path = typer.Option(
        None, "--prompts-dir", help="Folder overriding the prompt templates."
    ),
    force_new: bool = typer.Option(False, "--force-new", help="Start the run folder afresh."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="On resume, redo rows whose request failed."
    ),
    backend: str = c.BACKEND,
    model: str = c.MODEL,
    base_url: str = c.BASE_URL,
    api_key_env: str = c.API_KEY_ENV,
    threads: int = c.THREADS,
    concurrency: int = c.CONCURRENCY,
    rpm: float = c.RPM,
    tpm: float = c.TPM,
    cache: Path = c.CACHE,
    no_cache: bool = c.NO_CACHE,
    prices: Path = c.PRICES,
    max_cost: float = c.MAX_COST,
    max_calls: int = c.MAX_CALLS,
    backend_option: list[str] = c.BACKEND_OPTION,
    report: bool = c.REPORT,
) -> None:
    """Design tasks from each dataset's metadata (LLM), then apply them to every row (no LLM)."""
    from tunesmith.generate.dynosaur_run import run_dynosaur

    config = c.llm_config_from(locals())
    params: dict[str, object] = {
        "max_tasks": max_tasks, "max_tokens": max_tokens, "max_chars": max_chars,
        "batch_size": batch_size, "prompts_dir": str(prompts_dir) if prompts_dir else None,
    }  # fmt: skip
    if prompt:
        params["prompts"] = list(prompt)
    run = run_dynosaur(dataset, out=out, config=config, params=params, card=card,
                       license=license, force_new=force_new, retry_failed=retry_failed)  # fmt: skip
    s = run.manifest.get("summary", {})
    typer.echo(
        f"dynosaur: {s.get('datasets', 0)} datasets, {s.get('tasks', 0)} tasks "
        f"({s.get('invalid_designs', 0)} invalid designs rejected), {s.get('rows_produced', 0)} "
        f"rows; {s.get('calls_per_1000_rows', 0)} calls and "
        f"${s.get('usd_per_1000_rows', 0):.6f} per 1,000 rows -> {run.kept_path}"
    )
    c.write_report_for(run.path, report)
