"""The report's metrics: a row of ``tunesmith.metrics.stats`` per dataset, length histograms and
the verb-noun pairs for the sunburst.

Levels (``--metrics``):

* ``none``: only the length histograms (pure Python, instant).
* ``cheap``: the fast statistics (lengths, unique tokens, rep-n, n-gram diversity, exact
  Self-BLEU; see ``tunesmith.metrics.stats``), plus root verb / direct object pairs (spaCy) on a seeded sample of at most
  ``VERB_NOUN_SAMPLE`` instructions, so the sunburst is there at the end of every run.
* ``all``: every statistic, the model-based ones included (perplexity, embeddings and the
  verb-noun parse read a seeded sample of ``tunesmith.metrics.stats.DEFAULT_SAMPLE`` rows, with
  a note, as ``tunesmith stats`` does by default).

Datasets of different sizes shown side by side (a run's kept rows and all it generated, or
several files) get their size-dependent metrics (unique tokens, rep-n, Self-BLEU) on seeded
samples of the smallest one's size, with a note, as ``tunesmith stats`` does.

Memorization and MAUVE compare against another dataset (``--train``/``--reference`` of
``tunesmith stats``), which a report does not have, so they are left out here.

A metric that cannot run (a missing extra) is skipped with a note, never silently.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from tunesmith.errors import ConfigError, MissingExtra, TunesmithError
from tunesmith.records import Record

LEVELS = ("cheap", "all", "none")
VERB_NOUN_SAMPLE = 2000
LENGTH_FIELDS = ("instruction", "input", "output")
MAX_BINS = 24
NEEDS_OTHER_DATA = frozenset({"memorization", "mauve"})  # need --train / --reference

# Column key -> heading, in display order; columns a stats row lacks are not shown.
COLUMN_LABELS: dict[str, str] = {
    "size": "rows",
    "avg_instruction_words": "instr. words",
    "avg_instruction_tokens": "instr. tokens",
    "avg_input_words": "input words",
    "avg_output_words": "output words",
    "avg_output_tokens": "output tokens",
    "unique_tokens": "unique tokens",
    "rep_2": "rep-2",
    "rep_3": "rep-3",
    "rep_4": "rep-4",
    "diversity": "diversity",
    "self_bleu": "Self-BLEU",
    "memorization": "memorization",
    "mauve": "MAUVE",
    "ppl_mean": "ppl mean",
    "ppl_median": "ppl median",
    "ppl_share_below": "ppl share below",
    "verb_noun_share": "verb-object share",
    "embed_mean_cos_dist": "mean cos. distance",
    "cluster_entropy": "cluster entropy",
}


def check_level(level: str) -> str:
    """Validate a ``--metrics`` level (cheap, all or none)."""
    if level not in LEVELS:
        raise ConfigError(f"unknown --metrics '{level}' (choose from {', '.join(LEVELS)})")
    return level


def dataset_metrics(
    records: Sequence[Record],
    *,
    name: str,
    level: str,
    verb_nouns: bool = True,
    size_sample: int | None = None,
) -> dict[str, Any]:
    """Statistics, word-length lists and verb-noun rows of one dataset for the report.

    Args:
        records: the dataset.
        name: its label in the table.
        level: ``cheap``, ``all`` or ``none`` (see the module docstring).
        verb_nouns: parse root verbs and objects (off for a second view of the same rows).
        size_sample: rows the size-dependent metrics read (the smallest dataset's size when
            datasets of different sizes are shown side by side; see ``compare_stats``).

    Returns:
        ``{"name", "stats": {column: value} | None, "notes": [str], "lengths": {field: [int]},
        "verb_nouns": [{verb, noun, count}]}``.
    """
    check_level(level)
    lengths = {f: [len(str(getattr(r, f)).split()) for r in records] for f in LENGTH_FIELDS}
    out: dict[str, Any] = {"name": name, "stats": None, "notes": [], "lengths": lengths,
                           "verb_nouns": []}  # fmt: skip
    if level == "none" or not records:
        return out
    try:
        from tunesmith.metrics.stats import compute_stats
    except ImportError as exc:  # the metrics package is optional for the report
        out["notes"].append(f"metrics skipped: {exc}")
        return out
    from tunesmith.metrics.quiet import quiet_libraries

    groups = _report_groups(level, verb_nouns)
    try:
        with quiet_libraries():  # a report is written at the end of every run: no library noise
            stats = compute_stats(records, name=name, metrics=groups, size_sample=size_sample)
    except TunesmithError as exc:  # a report is still worth writing without its statistics
        out["notes"].append(f"metrics skipped: {exc}")
        return out
    out["notes"].extend(stats.pop("notes", None) or [])
    out["verb_nouns"] = stats.pop("top_verb_nouns", None) or []
    if level == "cheap" and verb_nouns:
        out["verb_nouns"] = _sampled_verb_nouns(records, out["notes"])
    out["stats"] = stats
    return out


def _report_groups(level: str, verb_nouns: bool) -> set[str]:
    """The metric groups of ``level``; a report has no training set or reference, so what
    needs them is left out (no noise notes)."""
    from tunesmith.metrics.stats import CHEAP_METRICS, METRICS

    groups = set(CHEAP_METRICS if level == "cheap" else METRICS) - NEEDS_OTHER_DATA
    if not verb_nouns:
        groups.discard("verb_noun")
    return groups


def _sampled_verb_nouns(records: Sequence[Record], notes: list[str]) -> list[dict[str, Any]]:
    """Self-Instruct Figure 2 rows from at most VERB_NOUN_SAMPLE instructions (seeded sample)."""
    try:
        from tunesmith.metrics.stats import missing_requirement
        from tunesmith.metrics.verb_noun import top_verb_nouns, verb_noun_pairs
    except ImportError as exc:
        notes.append(f"verb-noun sunburst skipped: {exc}")
        return []
    missing = missing_requirement("verb_noun")
    if missing:
        notes.append(missing)
        return []
    texts = [r.instruction for r in records if r.instruction]
    if len(texts) > VERB_NOUN_SAMPLE:
        picked = sorted(random.Random(0).sample(range(len(texts)), VERB_NOUN_SAMPLE))
        texts = [texts[i] for i in picked]
        notes.append(
            f"verb-noun sunburst from a seeded sample of {VERB_NOUN_SAMPLE} instructions "
            "(--metrics all parses every one)"
        )
    from tunesmith.metrics.quiet import quiet_libraries

    try:
        with quiet_libraries():
            return top_verb_nouns(verb_noun_pairs(texts))
    except MissingExtra as exc:
        notes.append(f"verb-noun sunburst skipped: {exc}")
        return []


def table_columns(stats_rows: Sequence[dict[str, Any] | None]) -> list[tuple[str, str]]:
    """(key, heading) of the columns that at least one dataset has a number for."""
    return [
        (key, label)
        for key, label in COLUMN_LABELS.items()
        if any(row and isinstance(row.get(key), int | float) for row in stats_rows)
    ]


def histogram(values_by_series: dict[str, list[int]]) -> dict[str, Any]:
    """Shared integer bins for several series of lengths; the last bin collects the long tail.

    The range ends at the smaller of the 99th percentile and Tukey's far-out fence (Q3 + 3 IQR)
    of all values, so one very long row (a 1,200-word answer among 100-word ones) cannot squash
    every other bar, even in a small set where the 99th percentile is that row itself; longer
    rows fall in the last (``>=``) bin, labelled as such.
    """
    every = sorted(v for vals in values_by_series.values() for v in vals)
    if not every:
        return {"edges": [], "series": {}, "overflow": False}

    def q(p: float) -> int:
        return every[int(p * (len(every) - 1))]

    top = max(1, min(q(0.99), q(0.75) + 3 * (q(0.75) - q(0.25))))
    width = _nice_width(top / MAX_BINS)
    n_bins = max(1, math.ceil((top + 1) / width))
    edges = [i * width for i in range(n_bins + 1)]
    series = {}
    for name, vals in values_by_series.items():
        counts = [0] * n_bins
        for v in vals:
            counts[min(n_bins - 1, v // width)] += 1
        series[name] = counts
    return {"edges": edges, "series": series, "overflow": every[-1] >= edges[-1]}


def _nice_width(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that is at least ``raw``."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= raw:
                return step * m
        step *= 10
