"""``tunesmith compare-generators``: generation methods side by side, cost per kept instruction."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c


def register(app: typer.Typer) -> None:
    @c.options
    def compare_generators(
        out: Path = typer.Option(
            ..., "--out", "-o", help="Folder for every method's run (rerun to resume)."
        ),
        seeds: str = typer.Option(
            "default", "--seeds", help="Seed tasks (see tunesmith generate)."
        ),
        num_instructions: int = typer.Option(
            50, "--num-instructions", "-n", help="Kept size every method runs to."
        ),
        max_tokens: int = typer.Option(
            None, "--max-tokens", help="Generation max_tokens for every method."
        ),
        instance_max_tokens: int = typer.Option(
            None, "--instance-max-tokens", help="Self-Instruct instances."
        ),
        prompts_per_batch: int = typer.Option(5, "--prompts-per-batch"),
        max_rounds: int = typer.Option(
            None, "--max-rounds", help="Stop each method after this many request batches."
        ),
        seed: int = typer.Option(42, "--seed"),
        methods: str = typer.Option(
            "alpaca,sedi,self-instruct", "--methods", help="Comma-separated methods to compare."
        ),
        *,
        llm: c.LLMOptions,
        run: c.RunOptions,
    ) -> None:
        """Alpaca-style, SeDi-Instruct and Self-Instruct to the same kept size and budget
        (--max-calls/--max-cost apply to each method): calls, tokens and cost per kept.
        Identical requests are paid once (--cache names the shared cache)."""
        from tunesmith.generate.compare import compare_methods, format_table

        shared: dict[str, Any] = {"prompts_per_batch": prompts_per_batch, "seed": seed}
        for key, value in (("max_tokens", max_tokens), ("max_rounds", max_rounds)):
            if value:
                shared[key] = value
        si = dict(
            shared, **({"instance_max_tokens": instance_max_tokens} if instance_max_tokens else {})
        )
        rows = compare_methods(
            out, seeds=seeds, config=llm.config(), num_instructions=num_instructions,
            params={"self-instruct": si, "alpaca": shared, "sedi": shared},
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            **c.driver_flags(compare_methods, run),
        )  # fmt: skip
        typer.echo(format_table(rows))
        if run.report:  # the folder of runs gets one page comparing them
            from tunesmith.report import write_report

            typer.echo(f"report -> {write_report([out], out / 'report.html')}")

    app.command("compare-generators")(compare_generators)

    @functools.wraps(compare_generators)
    def compare(**kwargs: Any) -> None:  # the old name keeps working, out of the command list
        compare_generators(**kwargs)

    app.command("compare", hidden=True)(compare)
