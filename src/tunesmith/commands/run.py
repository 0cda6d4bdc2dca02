"""``tunesmith run recipe.yaml``: chain curation stages from a YAML recipe, resumably."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c


def register(app: typer.Typer) -> None:
    @app.command("run")
    @c.options
    def run(
        recipe: Path = typer.Argument(..., help="Recipe YAML (data, llm, stages)."),
        out: Path = typer.Option(
            None, "--out", "-o", help="Run folder (default: the recipe's 'out'); rerun to resume."
        ),
        limit: int = typer.Option(None, "--limit", help="Override the recipe's row limit."),
        check: bool = typer.Option(False, "--check", help="Validate the recipe and exit."),
        engine: str = typer.Option(
            None, "--engine", help="Where per-record stages run: local (default) or ray."
        ),
        ray_address: str = typer.Option(
            None, "--ray-address", help="Ray cluster to join (default $RAY_ADDRESS, else local)."
        ),
        *,
        opts: c.RunOptions,
    ) -> None:
        """Run a curation recipe (heuristics -> dedup -> reflect -> score -> select ...)."""
        from tunesmith.recipes import load_recipe, run_recipe

        parsed = load_recipe(recipe)
        if limit is not None:
            parsed.limit = limit
        if check:
            names = " -> ".join(s.name for s in parsed.stages)
            typer.echo(f"{recipe}: ok ({names})")
            return
        result = run_recipe(
            parsed, out=out, engine=engine, ray_address=ray_address,
            **c.accepted(run_recipe, report=False),  # finish() writes it
            **c.driver_flags(run_recipe, opts),
        )  # fmt: skip
        for event in result.read_events():
            if "index" in event and "stage" in event:
                folder = result.path / "stages" / f"{event['index']:02d}-{event['stage']}"
                counts = c.count_rows(folder)
                counts.update(kept=event["kept"], rejected=event["rejected"])
                counts["failed"] = max(counts["failed"], int(event.get("failed", 0)))
                typer.echo(f"  {event['index']:>2} {event['stage']:<12} {c.rows_line(counts)}")
        c.finish(result.path, opts)
