"""``tunesmith select``: keep k rows by score with a similarity bound (deita) or by diversity."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("select")
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
    ) -> None:
        """Select a LIMA-sized subset: best score first, never too close to a chosen row."""
        from tunesmith.io import read_records
        from tunesmith.jobs import run_record_job
        from tunesmith.select.diversity import SelectStage

        stage = SelectStage(k=k, score=score, threshold=threshold, method=method, field=field,
                            embedder=embedder, ascending=ascending,
                            embedding_cache=str(embedding_cache) if embedding_cache else None)  # fmt: skip
        records = read_records(data)
        stage.check_scores(records)  # before a run folder is made: --score must name a score
        typer.echo(f"note: {stage.order_note()}", err=True)
        run = run_record_job(stage, records, out=out, config=None, batch_size=len(records) or 1,
                             method="select", extra_config={"data": str(data)})  # fmt: skip
        n_kept = len(run.kept_ids())
        where = f"-> {run.kept_path}" if n_kept else f"(no kept rows written; see {run.path})"
        typer.echo(f"kept {n_kept} of {len(records)} rows {where}")
