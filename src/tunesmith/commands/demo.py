"""``tunesmith demo``: a real Self-Instruct (or SeDi) generation on the embedded model, offline."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tunesmith.commands import _common as c


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @c.options
    def demo(
        out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run folder."),
        method: str = typer.Option("self-instruct", "--method", help="self-instruct or sedi"),
        num_instructions: int = typer.Option(30, "--num-instructions", "-n"),
        prompts_per_batch: int = typer.Option(
            None, "--prompts-per-batch", help="Prompts per round (default 4)."
        ),
        *,
        llm: c.LLMOptions,
        run: c.RunOptions,
    ) -> None:
        """Grow a small dataset from the packaged seed tasks with SmolLM2 (about 3-5 minutes)."""
        from tunesmith.generate.pipeline import DEMO_PARAMS, run_generation
        from tunesmith.records import Record

        params = {"num_instructions": num_instructions, **DEMO_PARAMS[method]}
        if prompts_per_batch:
            params["prompts_per_batch"] = prompts_per_batch
        start = time.perf_counter()
        result = run_generation(
            method, seeds="default", out=out, config=llm.config(), params=params,
            **c.driver_flags(run_generation, run),
        )  # fmt: skip
        line = c.generation_line(result.path, method, num_instructions)
        typer.echo(f"{line}; {llm.backend} backend, {time.perf_counter() - start:.0f} s")
        first_per_instruction: dict[str, Record] = {}
        for record in result.read_kept():  # one example per instruction, a few instructions
            first_per_instruction.setdefault(record.instruction, record)
        for example in list(first_per_instruction.values())[:4]:
            typer.echo(f"  - {example.instruction}")
            typer.echo(f"    input: {example.input[:80]!r}  output: {example.output[:80]!r}")
        c.finish(result.path, run)
