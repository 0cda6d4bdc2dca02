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
        *,
        llm: c.LLMOptions,
        run: c.RunOptions,
    ) -> None:
        """Grow a small dataset from the packaged seed tasks with SmolLM2 (about 3-5 minutes)."""
        from tunesmith.generate.pipeline import DEMO_PARAMS, run_generation
        from tunesmith.records import Record

        params = {"num_instructions": num_instructions, **DEMO_PARAMS[method]}
        start = time.perf_counter()
        result = run_generation(
            method, seeds="default", out=out, config=llm.config(), params=params,
            **c.driver_flags(run_generation, run),
        )  # fmt: skip
        s = c.manifest_summary(result.path)
        typer.echo(
            f"{method} on {llm.backend}: kept {s.get('kept_instructions', 0)} instructions "
            f"({s.get('kept_records', 0)} records with outputs) from {s.get('generated', 0)} "
            f"generated, {s.get('calls', 0)} calls, {time.perf_counter() - start:.0f} s"
        )
        first_per_instruction: dict[str, Record] = {}
        for record in result.read_kept():  # one example per instruction, a few instructions
            first_per_instruction.setdefault(record.instruction, record)
        for example in list(first_per_instruction.values())[:4]:
            typer.echo(f"  - {example.instruction}")
            typer.echo(f"    input: {example.input[:80]!r}  output: {example.output[:80]!r}")
        c.finish(result.path, run)
