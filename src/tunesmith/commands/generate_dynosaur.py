"""``tunesmith generate dynosaur DATASET --out RUN``: tasks designed from dataset metadata and
applied to every row (reached through ``generate``; see :mod:`tunesmith.commands._methods`)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("dynosaur")
@c.options
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
    prompts_dir: Path = typer.Option(None, "--prompts-dir", help=c.TEMPLATES_HELP),
    *,
    llm: c.LLMOptions,
    run: c.RunOptions,
) -> None:
    """Design tasks from each dataset's metadata (LLM), then apply them to every row (no LLM)."""
    from tunesmith.generate.dynosaur_run import run_dynosaur

    config = llm.config()
    params: dict[str, object] = {
        "max_tasks": max_tasks, "max_tokens": max_tokens, "max_chars": max_chars,
        "batch_size": batch_size, "prompts_dir": str(prompts_dir) if prompts_dir else None,
    }  # fmt: skip
    if prompt:
        params["prompts"] = list(prompt)
    result = run_dynosaur(dataset, out=out, config=config, params=params, card=card,
                          license=license, **c.driver_flags(run_dynosaur, run))  # fmt: skip
    s = result.manifest.get("summary", {})
    typer.echo(
        f"dynosaur: {s.get('datasets', 0)} datasets, {s.get('tasks', 0)} tasks "
        f"({s.get('invalid_designs', 0)} invalid designs rejected), {s.get('rows_produced', 0)} "
        f"rows; {s.get('calls_per_1000_rows', 0)} calls and "
        f"${s.get('usd_per_1000_rows', 0):.6f} per 1,000 rows -> {result.kept_path}"
    )
    c.write_report_for(result.path, run.report)
