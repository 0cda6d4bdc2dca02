"""``tunesmith respond``: write responses for a dataset's instructions into a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c
from tunesmith.generate.response_generator import DEFAULT_MAX_TOKENS


@c.options
def respond(
    data: Path = c.DATA,
    out: Path = c.OUT,
    system: str = typer.Option(None, "--system", help="System prompt."),
    max_tokens: int = typer.Option(
        DEFAULT_MAX_TOKENS, "--max-tokens", help="Answer length limit in tokens."
    ),
    drop_truncated: bool = typer.Option(
        False, "--drop-truncated", help="Reject answers cut at --max-tokens (kept, marked)."
    ),
    temperature: float = typer.Option(0.7, "--temperature"),
    batch_size: int = typer.Option(
        16, "--batch-size", help="Rows per checkpoint (--concurrency sets requests in flight)."
    ),
    *,
    llm: c.LLMOptions,
    run: c.RunOptions,
    rows: c.DataOptions,
) -> None:
    """Answer every instruction; an existing output is kept as meta.reference_output."""
    from tunesmith.generate.response_generator import ResponseGenerator
    from tunesmith.jobs import run_record_job

    stage = ResponseGenerator(system=system, max_tokens=max_tokens, temperature=temperature,
                              drop_truncated=drop_truncated)  # fmt: skip
    result = c.run_job(run_record_job, stage, data, out, "respond", run, rows,
                       extra={"limit": rows.limit}, config=llm.config(),
                       batch_size=batch_size)  # fmt: skip
    c.finish(result.path, run)


def register(app: typer.Typer) -> None:
    app.command("respond")(respond)
