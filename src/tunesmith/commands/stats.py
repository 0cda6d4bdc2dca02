"""``tunesmith stats``: diversity and quality metrics of datasets or run folders, one row each."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands._options import DataOptions, OptionGroup, _option
from tunesmith.commands._options import options as with_option_groups

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


class _Progress:
    """A bar with ETA on a terminal; one line per step otherwise (never with --json).

    It holds the stderr of its creation: inside ``quiet_libraries`` stderr is a sink for
    library chatter, and tunesmith's own progress must still show.
    """

    def __init__(self, total: float, *, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.err = sys.stderr
        console = Console(file=self.err)
        self.quiet, self.name, self._last = quiet, "", ""
        self.live = console.is_terminal and not quiet
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                            console=console, disable=not self.live, redirect_stdout=False,
                            redirect_stderr=False)  # fmt: skip
        self.task = self.bar.add_task("stats", total=max(total, 1e-9))

    def tick(self, label: str, units: float) -> None:
        self.bar.update(self.task, advance=units, description=f"{self.name}: {label}")
        if not self.live and not self.quiet and label != self._last:
            self.err.write(f"... {self.name}: {label}\n")
            self.err.flush()
        self._last = label


def _field_text(record: Any, field: str) -> str:
    return str(record.prompt_text() if field == "prompt" else getattr(record, field, ""))


_METRICS_HELP = (
    "Comma-separated: lengths, unique_tokens, rep_n, self_bleu, memorization, mauve, "
    "perplexity, verb_noun, embedding, or a column name; 'cheap' = the first five "
    "(default: all; heavy ones are skipped with a note if their extra is missing)."
)
_SAMPLE_HELP = (
    "Rows (seeded sample) the model-based metrics read: perplexity, embedding, MAUVE, verb-noun; "
    "0 = every row."
)
_EQUAL_SIZE_HELP = (
    "Compare unique tokens, rep-n, diversity and Self-BLEU on equal-size seeded samples (the "
    "smallest dataset's size) when several datasets are given."
)


@dataclasses.dataclass(frozen=True)
class StatsOptions(OptionGroup):
    """What ``stats`` measures and how: metrics, samples, field, tokenizer, models."""

    reference: Path | None = _option(None, "--reference", "-r", help="Reference data for MAUVE.")
    train: Path | None = _option(None, "--train", help="Training data for memorization.")
    as_json: bool = _option(False, "--json", help="Print JSON (one object per dataset).")
    metrics: str | None = _option(None, "--metrics", help=_METRICS_HELP)
    sample: int = _option(1000, "--sample", help=_SAMPLE_HELP)
    equal_size: bool = _option(True, "--equal-size/--no-equal-size", help=_EQUAL_SIZE_HELP)
    seed: int = _option(0, "--seed", help="Seed for sampling and k-means.")
    field: str = _option("instruction", "--field", help="instruction, input, output or prompt")
    tokenizer: str = _option("spacy", "--tokenizer", help="spacy, nltk or whitespace")
    ppl_model: str | None = _option(
        None, "--ppl-model", help="Causal LM for perplexity (default: embedded SmolLM2)."
    )
    ppl_threshold: float = _option(
        150.0, "--ppl-threshold", help="ppl_share_below counts texts under this (DiffTune: 150)."
    )
    embed_model: str | None = _option(
        None, "--embed-model", help="Sentence-transformers model (default: packaged MiniLM)."
    )

    def read(self, paths: list[Path], reading: DataOptions) -> list[tuple[Path, list[Any]]]:
        """Each dataset's rows (an empty instruction is fine when another field is measured)."""
        from tunesmith.metrics.stats import load_dataset

        read = functools.partial(
            load_dataset, field_map=reading.field_map(),
            allow_empty_instruction=reading.allow_empty_instruction
            or self.field in ("input", "output"),
        )  # fmt: skip
        return [(path, read(path)[: reading.limit or None]) for path in paths]

    def compute_kwargs(self, wanted: Any) -> dict[str, Any]:
        """``compute_stats``'s settings but the sample size; reads ``--reference``, ``--train``."""
        from tunesmith.metrics.stats import load_dataset

        return {
            "reference": load_dataset(self.reference) if self.reference else None,
            "train": load_dataset(self.train) if self.train else None, "metrics": wanted,
            "field": self.field, "sample": self.sample, "size_sample": None, "seed": self.seed,
            "tokenizer": self.tokenizer, "ppl_model": self.ppl_model,
            "ppl_threshold": self.ppl_threshold, "embed_model": self.embed_model,
        }  # fmt: skip

    def size_sample(self, sizes: Iterable[int]) -> int | None:
        """The equal-size sample of the cheap metrics (``--equal-size``): the smallest size."""
        from tunesmith.metrics.sampling import equal_size_target

        return equal_size_target(sizes) if self.equal_size else None


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)


@with_option_groups
def stats(
    data: list[Path] = typer.Argument(..., help="Datasets (any supported format) or run folders."),
    *,
    opts: StatsOptions,
    reading: DataOptions,
) -> None:
    """Size, lengths, rep-n, diversity, Self-BLEU, memorization, MAUVE, perplexity, verb-noun
    structure and embedding diversity (DiffTune Tables 1/3, Self-Instruct Figure 2)."""
    from tunesmith.metrics.stats import resolve_metrics

    wanted = resolve_metrics(opts.metrics.split(",")) if opts.metrics else None
    kwargs = opts.compute_kwargs(wanted)
    datasets = opts.read(data, reading)
    kwargs["size_sample"] = opts.size_sample(len(r) for _, r in datasets)
    rows = _compute_rows(datasets, kwargs, quiet=opts.as_json)
    if opts.as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_table(rows)


def _compute_rows(
    datasets: list[tuple[Path, list[Any]]], kwargs: dict[str, Any], quiet: bool
) -> list[dict[str, Any]]:
    """One stats row per dataset, with a progress bar over the estimated work of all of them."""
    from tunesmith.io import describe_fields
    from tunesmith.metrics.quiet import quiet_libraries
    from tunesmith.metrics.stats import compute_stats, estimate_work

    field = kwargs["field"]
    work = functools.partial(estimate_work, metrics=kwargs["metrics"], sample=kwargs["sample"],
                             size_sample=kwargs["size_sample"],
                             has_reference=bool(kwargs["reference"]), field=field)  # fmt: skip
    progress = _Progress(sum(work(len(r)) for _, r in datasets), quiet=quiet)
    rows = []
    with quiet_libraries(), progress.bar:
        for path, records in datasets:
            progress.name = path.name
            row = compute_stats(records, name=str(path), progress=progress.tick, **kwargs)
            row["notes"].extend(f"read {line}" for line in describe_fields(records))
            if not any(_field_text(r, field).strip() for r in records):
                row["notes"].append(f"every row's {field} is empty: these numbers measure nothing")
            rows.append(row)
    return rows
