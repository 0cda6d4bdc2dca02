"""``tunesmith select``: keep k rows by score with a similarity bound (deita) or by diversity."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c


def register(app: typer.Typer) -> None:
    @app.command("select")
    @c.options
    def select(
        data: Path = typer.Argument(..., help="Scored dataset (.jsonl/.json/.parquet/folder)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder for kept/rejected rows."),
        k: int = typer.Option(1000, "--k", help="How many rows to keep."),
        score: str = typer.Option(
            None, "--score", help="Stored score key, or a product like 'complexity*quality'."
        ),
        threshold: float = typer.Option(
            0.9, "--threshold", help="Max cosine similarity to rows already selected."
        ),
        method: str = typer.Option("deita", "--method", help="deita | kcenter"),
        field: str = typer.Option("all", "--field", help="Embed: instruction | prompt | all"),
        ascending: bool = typer.Option(False, "--ascending", help="Smallest scores first."),
        embedder: str = typer.Option(None, "--embedder", help="Sentence-transformers model."),
        embedding_cache: Path = typer.Option(
            None, "--embedding-cache", help=".npz file reusing embeddings across selections."
        ),
        *,
        run: c.RunOptions,
        rows: c.DataOptions,
    ) -> None:
        """Select a LIMA-sized subset: best score first, never too close to a chosen row."""
        from tunesmith.jobs import run_record_job
        from tunesmith.select.select_stage import SelectStage

        stage = SelectStage(k=k, score=score, threshold=threshold, method=method, field=field,
                            embedder=embedder, ascending=ascending,
                            embedding_cache=str(embedding_cache) if embedding_cache else None)  # fmt: skip
        records = rows.read(data)
        stage.check_scores(records)  # before a run folder is made: --score must name a score
        typer.echo(f"note: {stage.order_note()}", err=True)
        result = run_record_job(
            stage, records, out=out, config=None, batch_size=len(records) or 1, method="select",
            extra_config={"data": str(data)}, **c.driver_flags(run_record_job, run),
        )  # fmt: skip
        c.finish(result.path, run, note=f"of {len(records)} rows")
