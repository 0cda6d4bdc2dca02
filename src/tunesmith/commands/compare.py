"""``tunesmith compare-generators``: generation methods side by side, cost per kept instruction."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._options import OptionGroup, _option


@dataclasses.dataclass(frozen=True)
class CompareOptions(OptionGroup):
    """What every compared method runs with: seeds, kept size, token limits, batches, seed."""

    seeds: str = _option("default", "--seeds", help="Seed tasks (see tunesmith generate).")
    num_instructions: int = _option(
        50, "--num-instructions", "-n", help="Kept size every method runs to."
    )
    max_tokens: int | None = _option(
        None, "--max-tokens", help="Generation max_tokens for every method."
    )
    instance_max_tokens: int | None = _option(
        None, "--instance-max-tokens", help="Self-Instruct instances."
    )
    prompts_per_batch: int = _option(5, "--prompts-per-batch")
    max_rounds: int | None = _option(
        None, "--max-rounds", help="Stop each method after this many request batches."
    )
    seed: int = _option(42, "--seed")
    methods: str = _option(
        "alpaca,sedi,self-instruct", "--methods", help="Comma-separated methods to compare."
    )

    def params(self) -> dict[str, dict[str, Any]]:
        """Each method's generator parameters (an unset limit is left to the method)."""
        shared: dict[str, Any] = {"prompts_per_batch": self.prompts_per_batch, "seed": self.seed}
        for key, value in (("max_tokens", self.max_tokens), ("max_rounds", self.max_rounds)):
            if value:
                shared[key] = value
        si = dict(shared)
        if self.instance_max_tokens:
            si["instance_max_tokens"] = self.instance_max_tokens
        return {"self-instruct": si, "alpaca": shared, "sedi": shared}

    def method_names(self) -> tuple[str, ...]:
        """The ``--methods`` list, blanks dropped."""
        return tuple(m.strip() for m in self.methods.split(",") if m.strip())


@c.options
def compare_generators(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for every method's run (rerun to resume)."
    ),
    *,
    setup: CompareOptions,
    llm: c.LLMOptions,
    run: c.RunOptions,
) -> None:
    """Alpaca-style, SeDi-Instruct and Self-Instruct to the same kept size and budget
    (--max-calls/--max-cost apply to each method): calls, tokens and cost per kept.
    Identical requests are paid once (--cache names the shared cache)."""
    from tunesmith.generate.compare import compare_methods, format_table

    rows = compare_methods(
        out, seeds=setup.seeds, config=llm.config(), num_instructions=setup.num_instructions,
        params=setup.params(), methods=setup.method_names(),
        **c.driver_flags(compare_methods, run),
    )  # fmt: skip
    typer.echo(format_table(rows))
    if run.report:  # the folder of runs gets one page comparing them
        from tunesmith.report import write_report

        typer.echo(f"report -> {write_report([out], out / 'report.html')}")


@functools.wraps(compare_generators)
def compare(**kwargs: Any) -> None:  # the old name keeps working, out of the command list
    compare_generators(**kwargs)


def register(app: typer.Typer) -> None:
    app.command("compare-generators")(compare_generators)
    app.command("compare", hidden=True)(compare)
