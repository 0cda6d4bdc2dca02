"""``tunesmith stats``: diversity and quality metrics of datasets or run folders, one row each."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import typer

# The columns in three narrow tables (a 25-column table is unreadable in a terminal).
_TABLES: dict[str, dict[str, str]] = {
    "size and length (words / tokens)": {
        "size": "size",
        "avg_instruction_words": "instr w",
        "avg_instruction_tokens": "instr tok",
        "avg_input_words": "input w",
        "avg_input_tokens": "input tok",
        "avg_output_words": "output w",
        "avg_output_tokens": "output tok",
    },
    "diversity": {
        "unique_tokens": "unique tok",
        "rep_2": "rep-2",
        "rep_3": "rep-3",
        "rep_4": "rep-4",
        "diversity": "diversity",
        "self_bleu": "self-bleu",
        "memorization": "memoriz.",
        "embed_mean_cos_dist": "embed dist",
        "cluster_entropy": "cluster H",
    },
    "quality and structure": {
        "mauve": "mauve",
        "ppl_mean": "ppl mean",
        "ppl_median": "ppl median",
        "ppl_share_below": "ppl < thr",
        "verb_noun_share": "verb-obj",
    },
}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 1000:
            return f"{value:.1f}"
        text = f"{value:.4g}"
        return text if any(ch in text for ch in ".en") else f"{text}.0"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    """One row per dataset (a few narrow tables); when that is wider than the terminal, one
    column per dataset instead. Columns nobody has a value for are left out."""
    from rich.console import Console

    console = Console()
    tables = [_row_table(title, headers, rows) for title, headers in _TABLES.items()]
    tables = [t for t in tables if t is not None]
    if max(_natural_width(headers, rows) for headers in _TABLES.values()) > console.width:
        tables = [_column_table(rows)]
    for table in tables:
        console.print(table)
    for row in rows:
        pairs = row.get("top_verb_nouns") or []
        if pairs:
            top = sorted(pairs, key=lambda p: -p["count"])[:8]
            shown = ", ".join(f"{p['verb']} {p['noun']} ({p['count']})" for p in top)
            console.print(f"top verb-object pairs in {Path(row['name']).name}: {shown}")
        for note in row["notes"]:
            console.print(f"[yellow]note[/yellow] {Path(row['name']).name}: {note}")


def _natural_width(headers: dict[str, str], rows: list[dict[str, Any]]) -> int:
    """Width of a one-row-per-dataset table whose headers and numbers are not cut."""
    name = min(20, max(len(Path(r["name"]).name) for r in rows))
    widths = [
        max(len(label), *(len(_fmt(r.get(col))) for r in rows))
        for col, label in headers.items()
        if any(r.get(col) is not None for r in rows)
    ]
    return sum(w + 3 for w in [name, *widths]) + 1


def _row_table(title: str, headers: dict[str, str], rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    columns = [c for c in headers if any(r.get(c) is not None for r in rows)]
    if not columns:
        return None
    table = Table(title=title, title_justify="left")
    table.add_column("dataset", no_wrap=True, max_width=20, overflow="ellipsis")
    for col in columns:  # numbers are never cut: the column is at least as wide as its values
        width = max(len(_fmt(r.get(col))) for r in rows)
        table.add_column(headers[col], justify="right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(Path(row["name"]).name, *(_fmt(row.get(c)) for c in columns))
    return table


def _column_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="tunesmith stats", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for row in rows:
        table.add_column(Path(row["name"]).name, justify="right", max_width=20)
    for headers in _TABLES.values():
        columns = [c for c in headers if any(r.get(c) is not None for r in rows)]
        for col in columns:
            table.add_row(col, *(_fmt(r.get(col)) for r in rows))
        if columns:
            table.add_section()
    return table


def _field_text(record: Any, field: str) -> str:
    return str(record.prompt_text() if field == "prompt" else getattr(record, field, ""))


def _say(name: str, msg: str, *, quiet: bool) -> None:
    if not quiet:
        typer.echo(f"... {name}: {msg}", err=True)


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats(
        data: list[Path] = typer.Argument(
            ..., help="Datasets (any supported format) or run folders."
        ),
        reference: Path = typer.Option(None, "--reference", "-r", help="Reference data for MAUVE."),
        train: Path = typer.Option(None, "--train", help="Training data for memorization."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per dataset)."),
        metrics: str = typer.Option(
            None,
            "--metrics",
            help="Comma-separated: lengths, unique_tokens, rep_n, self_bleu, memorization, mauve, "
            "perplexity, verb_noun, embedding, or a column name; 'cheap' = the first five "
            "(default: all; heavy ones are skipped with a note if their extra is missing).",
        ),
        sample: int = typer.Option(
            None, "--sample", help="Random sample size for Self-BLEU and model-based metrics."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed for sampling and k-means."),
        field: str = typer.Option(
            "instruction", "--field", help="instruction, input, output or prompt"
        ),
        tokenizer: str = typer.Option("spacy", "--tokenizer", help="spacy, nltk or whitespace"),
        ppl_model: str = typer.Option(
            None, "--ppl-model", help="Causal LM for perplexity (default: embedded SmolLM2)."
        ),
        ppl_threshold: float = typer.Option(
            150.0,
            "--ppl-threshold",
            help="ppl_share_below counts texts under this (DiffTune: 150).",
        ),
        embed_model: str = typer.Option(
            None, "--embed-model", help="Sentence-transformers model (default: packaged MiniLM)."
        ),
        field_map: list[str] = typer.Option(
            None,
            "--map",
            metavar="FIELD=COLUMN",
            help="Read a field of the datasets from this column (comma-separated or repeated), "
            "e.g. instruction=prompt",
        ),
        allow_empty_instruction: bool = typer.Option(
            False,
            "--allow-empty-instruction",
            help="Accept rows with an empty instruction (always so with --field input/output).",
        ),
    ) -> None:
        """Size, lengths, rep-n, diversity, Self-BLEU, memorization, MAUVE, perplexity, verb-noun
        structure and embedding diversity (DiffTune Tables 1/3, Self-Instruct Figure 2)."""
        from tunesmith.io import FieldMap, describe_fields
        from tunesmith.metrics.stats import compute_stats, load_dataset, resolve_metrics

        read = functools.partial(
            load_dataset,
            field_map=FieldMap.of(field_map),
            allow_empty_instruction=allow_empty_instruction or field in ("input", "output"),
        )
        wanted = resolve_metrics(metrics.split(",")) if metrics else None
        ref = load_dataset(reference) if reference else None
        train_rows = load_dataset(train) if train else None
        rows = []
        for path in data:
            records = read(path)
            rows.append(
                compute_stats(
                    records,
                    name=str(path),
                    reference=ref,
                    train=train_rows,
                    metrics=wanted,
                    field=field,
                    sample=sample,
                    seed=seed,
                    tokenizer=tokenizer,
                    ppl_model=ppl_model,
                    ppl_threshold=ppl_threshold,
                    embed_model=embed_model,
                    progress=functools.partial(_say, path.name, quiet=as_json),
                )
            )
            rows[-1]["notes"].extend(f"read {line}" for line in describe_fields(records))
            if not any(_field_text(r, field).strip() for r in records):
                rows[-1]["notes"].append(
                    f"every row's {field} is empty: these numbers measure nothing"
                )
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        else:
            print_table(rows)
