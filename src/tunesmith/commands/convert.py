"""``tunesmith convert``: between JSONL, JSON, Parquet and datasets folders; Alpaca or chat."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c


def register(app: typer.Typer) -> None:
    @app.command("convert")
    @c.options
    def convert(
        src: Path = typer.Argument(..., help="Input dataset (any supported format)."),
        dst: Path = typer.Argument(..., help="Output path: .jsonl, .json, .parquet or a folder."),
        style: str = typer.Option("native", "--style", help="native, alpaca or messages"),
        *,
        rows: c.DataOptions,
    ) -> None:
        """Convert a dataset between formats and row styles. Columns that are not instruction,
        input or output are kept (in meta, and as columns again in alpaca/messages style)."""
        from tunesmith.errors import ConfigError
        from tunesmith.formats import lost_in_style
        from tunesmith.io import EXPORT_STYLES, describe_fields, write_records

        if style not in EXPORT_STYLES:
            raise ConfigError(f"unknown --style '{style}' (choose from {', '.join(EXPORT_STYLES)})")
        records = rows.read(src)
        for line in describe_fields(records):
            typer.echo(f"read {line}", err=True)
        if note := lost_in_style(records, style):
            typer.echo(f"note: {note}", err=True)
        path = write_records(dst, records, style=style)
        typer.echo(f"wrote {len(records)} rows -> {path}")
