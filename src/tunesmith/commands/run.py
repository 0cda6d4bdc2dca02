"""``tunesmith run recipe.yaml``: chain curation stages from a YAML recipe, resumably."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
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
        result = run_recipe(parsed, out=out, engine=engine, ray_address=ray_address)
        for event in result.read_events():
            if "index" in event and "stage" in event:
                typer.echo(
                    f"  {event['index']:>2} {event['stage']:<12} kept {event['kept']:>6}"
                    f"  rejected {event['rejected']:>6}"
                )
        typer.echo(
            f"kept {len(result.kept_ids())}, rejected {len(result.rejected_ids())} -> {result.path}"
        )
