"""``tunesmith dedup``: the Self-Instruct ROUGE-L novelty filter over an existing dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c


def register(app: typer.Typer) -> None:
    @app.command("dedup")
    @c.options
    def dedup(
        data: Path = typer.Argument(..., help="Dataset to filter, decided in file order."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (kept/rejected rows)."),
        threshold: float = typer.Option(
            0.7, "--threshold", help="Drop rows whose max ROUGE-L F is > this (SeDi: 0.85)."
        ),
        field: str = typer.Option(
            "instruction", "--field", help="instruction, input, output or prompt."
        ),
        pool: Path = typer.Option(
            None, "--pool", help="Seed tasks (or any dataset) every row is also compared with."
        ),
        top_k: int = typer.Option(
            0, "--top-k", help="Also store the K most similar items and the mean (slower)."
        ),
        mode: str = typer.Option(
            "exact", "--mode", help="exact, or minhash (LSH proposals + exact check, 1M+ rows)."
        ),
        *,
        run: c.RunOptions,
        rows: c.DataOptions,
    ) -> None:
        """Drop rows too similar to the pool or to an earlier kept row (ROUGE-L, rouge-score exact)."""
        from tunesmith.filters.novelty import dedup_to_folder

        summary = dedup_to_folder(
            data, out, threshold=threshold, field=field, pool_path=pool, top_k=top_k, mode=mode,
            records=rows.read(data), **c.driver_flags(dedup_to_folder, run),
        )  # fmt: skip
        c.finish(
            Path(out), run, note=f"threshold {threshold}, {mode}, {summary['elapsed_s']:.2f} s"
        )
