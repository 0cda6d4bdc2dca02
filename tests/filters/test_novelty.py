"""The novelty filter makes rouge-score's decisions, on real data, ties and near-duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from tunesmith.errors import ConfigError
from tunesmith.filters.novelty import (
    NoveltyDecision,
    NoveltyFilter,
    dedup_records,
)
from tunesmith.filters.novelty_stage import NoveltyStage
from tunesmith.records import Record

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference_dedup(
    texts: list[str], threshold: float, pool: list[str] = ()
) -> list[tuple[bool, float]]:
    """The public Self-Instruct/Alpaca loop: rouge-score against seeds + everything kept so far."""
    pool_tokens = [SCORER._tokenizer.tokenize(p) for p in pool]
    out = []
    for text in texts:
        tokens = SCORER._tokenizer.tokenize(text)
        scores = [rouge_scorer._score_lcs(tokens, p).fmeasure for p in pool_tokens]
        best = float(max(scores)) if scores else 0.0
        out.append((best <= threshold, best))
        if best <= threshold:
            pool_tokens.append(tokens)
    return out


def load_instructions(path: Path, limit: int) -> list[str]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [r["instruction"] for r in rows[:limit]]


def load_seeds(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["instruction"] for line in lines if line.strip()]


# -- basics -----------------------------------------------------------------------------------
def test_empty_pool_keeps_with_zero_score() -> None:
    flt = NoveltyFilter(0.7)
    assert flt.check(["Write a poem about the sea."], commit=False) == [
        NoveltyDecision(kept=True, max_score=0.0, nearest=None)
    ]
    assert flt.pool_texts == []


def test_streaming_kept_candidate_joins_pool_immediately() -> None:
    flt = NoveltyFilter(0.7, pool=["Translate the sentence into French."])
    texts = ["Write a poem about the sea.", "Write a poem about the sea!", "Name three rivers."]
    decisions = flt.check(texts)
    assert [d.kept for d in decisions] == [True, False, True]
    assert decisions[1].max_score == 1.0 and decisions[1].nearest == 1
    assert flt.pool_texts == ["Translate the sentence into French.", texts[0], texts[2]]


def test_commit_false_does_not_grow_pool() -> None:
    flt = NoveltyFilter(0.7)
    decisions = flt.check(["Sort the list.", "Sort the list."], commit=False)
    assert [d.kept for d in decisions] == [True, True]
    assert flt.pool_texts == []


def test_texts_without_tokens_score_zero() -> None:
    flt = NoveltyFilter(0.7, pool=["???", "Describe a cat."])
    (d,) = flt.check(["!!!"])
    assert d == NoveltyDecision(kept=True, max_score=0.0, nearest=None)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_threshold_is_a_config_error(bad: float) -> None:
    with pytest.raises(ConfigError):
        NoveltyFilter(bad)


# -- real data against rouge-score -------------------------------------------------------------
def near_duplicates(rows: list[dict[str, str]]) -> list[str]:
    """Alpaca instructions interleaved with real-world style near-duplicates of earlier ones."""
    texts = []
    for i, row in enumerate(rows):
        inst = row["instruction"]
        texts.append(inst)
        words = inst.split()
        variant = i % 5
        if variant == 0:
            texts.append(inst.upper())  # case
        elif variant == 1:
            texts.append(" ".join(w.strip(".,!?;:") for w in words) + " ...")  # punctuation
        elif variant == 2 and len(words) > 3:
            half = len(words) // 2
            texts.append(" ".join(words[half:] + words[:half]))  # word order
        elif variant == 3 and row.get("input"):
            texts.append(f"{inst} {row['input'].split('.')[0]}")  # instruction + input
    return texts


def reference_from_matrix(
    matrix: dict[tuple[int, int], float], n_pool: int, n_texts: int, threshold: float
) -> list[tuple[bool, float]]:
    """The sequential loop, reading rouge-score's pairwise F from a precomputed matrix."""
    out, kept = [], list(range(n_pool))
    for i in range(n_texts):
        j = n_pool + i
        scores = [matrix[(j, k)] for k in kept]
        best = float(max(scores)) if scores else 0.0
        out.append((best <= threshold, best))
        if best <= threshold:
            kept.append(j)
    return out


@pytest.mark.integration
def test_decisions_match_rouge_score_on_alpaca(alpaca_9k_path: Path, seed_tasks_path: Path) -> None:
    rows = json.loads(alpaca_9k_path.read_text(encoding="utf-8"))[:300]
    texts = near_duplicates(rows)
    seeds = load_seeds(seed_tasks_path)[:60]
    everything = seeds + texts
    tokens = [SCORER._tokenizer.tokenize(t) for t in everything]
    matrix = {}  # rouge-score's F for every (later, earlier) pair, computed once
    for j in range(len(seeds), len(everything)):
        for k in range(j):
            matrix[(j, k)] = rouge_scorer._score_lcs(tokens[j], tokens[k]).fmeasure
    for threshold in (0.5, 0.7, 0.85):
        want = reference_from_matrix(matrix, len(seeds), len(texts), threshold)
        assert 0 < sum(not k for k, _ in want) < len(texts)  # the data exercises both outcomes
        flt = NoveltyFilter(threshold, pool=seeds)
        assert [(d.kept, d.max_score) for d in flt.check(texts)] == want
        streamed = NoveltyFilter(threshold, pool=seeds)
        got = []
        for i in range(0, len(texts), 20):
            got.extend((d.kept, d.max_score) for d in streamed.check(texts[i : i + 20]))
        assert got == want


def test_decisions_match_sequential_reference_on_small_mix() -> None:
    texts = [
        "Give three tips for staying healthy.",
        "GIVE THREE TIPS FOR STAYING HEALTHY",
        "Staying healthy: give three tips.",
        "What are the three primary colors?",
        "three primary colors what are the",
        "Describe the structure of an atom.",
        "Describe the structure of a molecule.",
        "",
        "!!!",
        "Describe the structure of an atom and a molecule in detail.",
    ]
    for threshold in (0.0, 0.3, 0.5, 0.7, 0.85, 1.0):
        flt = NoveltyFilter(threshold, pool=["Describe an atom."])
        got = [(d.kept, d.max_score) for d in flt.check(texts)]
        assert got == reference_dedup(texts, threshold, ["Describe an atom."])


def test_streaming_in_batches_equals_one_batch() -> None:
    words = [
        "write",
        "a",
        "short",
        "poem",
        "story",
        "list",
        "three",
        "tips",
        "about",
        "the",
        "sea",
        "city",
        "rain",
        "summer",
    ]
    texts = [" ".join(words[(i * 7) % 13 : (i * 7) % 13 + 3 + i % 5]) for i in range(60)]
    whole = NoveltyFilter(0.6, pool=["Write a poem."]).check(texts)
    streamed = NoveltyFilter(0.6, pool=["Write a poem."])
    parts = []
    for size in (1, 7, 20, 32):
        start = len(parts)
        parts.extend(streamed.check(texts[start : start + size]))
    assert parts == whole[: len(parts)]
    assert any(not d.kept for d in whole) and any(d.kept for d in whole)


# -- exact ties -----------------------------------------------------------------------------------
def tie_pair(m: int, n: int, lcs: int) -> tuple[str, str]:
    """A candidate of m distinct words and a pool text of n words sharing an LCS of ``lcs``."""
    words = [f"w{i}" for i in range(m)]
    other = words[:lcs] + [f"z{i}" for i in range(n - lcs)]
    return " ".join(words), " ".join(other).capitalize() + "."


@pytest.mark.parametrize(
    ("threshold", "m", "n", "lcs", "kept"),
    [
        (0.7, 10, 10, 7, True),  # F == 0.7 exactly: kept
        (0.7, 10, 10, 8, False),  # one token more overlap: rejected
        (0.7, 20, 20, 14, True),
        (0.7, 8, 12, 7, False),  # 0.7 on paper, 0.7000000000000001 in rouge-score: rejected there
        (0.7, 23, 37, 21, True),  # 0.7 on paper, 0.6999999999999998 in rouge-score: kept
        (0.85, 20, 20, 17, True),  # F == 0.85 exactly: kept
        (0.85, 20, 20, 18, False),
        (0.85, 19, 21, 17, False),  # 0.8500000000000001 in rouge-score
    ],
)
def test_exact_ties_decide_like_rouge_score(
    threshold: float, m: int, n: int, lcs: int, kept: bool
) -> None:
    candidate, pooled = tie_pair(m, n, lcs)
    reference = SCORER.score(candidate, pooled)["rougeL"].fmeasure
    assert (reference <= threshold) is kept
    (d,) = NoveltyFilter(threshold, pool=["Unrelated words here.", pooled]).check([candidate])
    assert d.kept is kept and d.max_score == reference and d.nearest == 1


def test_ties_between_pool_items_name_the_first() -> None:
    flt = NoveltyFilter(0.5, pool=["alpha beta", "gamma delta", "alpha beta"])
    (d,) = flt.check(["alpha beta gamma delta"])
    assert d.max_score == SCORER.score("alpha beta gamma delta", "alpha beta")["rougeL"].fmeasure
    assert d.nearest == 0


# -- near-duplicates -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "variant",
    [
        "WRITE A HAIKU ABOUT THE AUTUMN RAIN",  # case
        "write a haiku, about the autumn rain!!!",  # punctuation
        "Write a haiku about the autumn rains.",  # one word changed
        "Write a short haiku about the autumn rain.",  # one word added
    ],
)
def test_near_duplicates_are_rejected(variant: str) -> None:
    (d,) = NoveltyFilter(0.7, pool=["Write a haiku about the autumn rain."]).check([variant])
    assert not d.kept and d.nearest == 0
    expected = SCORER.score(variant, "Write a haiku about the autumn rain.")["rougeL"].fmeasure
    assert d.max_score == expected


def test_reordered_words_follow_lcs_not_bag_of_words() -> None:
    pool = ["the autumn rain write a haiku about"]
    (d,) = NoveltyFilter(0.7, pool=pool).check(["Write a haiku about the autumn rain."])
    assert d.kept  # same 7 words, but the LCS is 4 (F = 4/7)
    assert (
        d.max_score
        == SCORER.score("Write a haiku about the autumn rain.", pool[0])["rougeL"].fmeasure
    )


def test_top_k_records_most_similar_and_mean() -> None:
    pool = ["Write a poem about rain.", "Translate to French.", "Write a poem about snow."]
    flt = NoveltyFilter(0.9, pool=pool, top_k=2)
    (d,) = flt.check(["Write a poem about the rain."])
    scores = [SCORER.score("Write a poem about the rain.", p)["rougeL"].fmeasure for p in pool]
    assert d.top == ((0, scores[0]), (2, scores[2]))
    assert d.mean_score == pytest.approx(sum(scores) / 3)
    assert d.max_score == scores[0] and d.nearest == 0


def test_dedup_records_names_collisions() -> None:
    records = [
        Record(id="a", instruction="Give three tips for staying healthy."),
        Record(id="b", instruction="Give 3 tips for staying healthy."),
        Record(id="c", instruction="Summarise the plot of Hamlet."),
    ]
    kept, rejected = dedup_records(records, threshold=0.7, pool=["Summarize the plot of Hamlet"])
    assert [r.id for r in kept] == ["a"]
    assert kept[0].scores["rouge_l_max"] == 0.0
    assert [r.record.id for r in rejected] == ["b", "c"]
    assert "vs a" in rejected[0].reason and "vs pool[0]" in rejected[1].reason
    assert rejected[0].score == pytest.approx(2 * 5 / 12)


def test_stage_keeps_pool_across_batches() -> None:
    stage = NoveltyStage(threshold=0.7)
    first = stage.run([Record(id="a", instruction="List the planets of the solar system.")])
    second = stage.run([Record(id="b", instruction="List the planets in the solar system")])
    assert [r.id for r in first.kept] == ["a"]
    assert [r.record.id for r in second.rejected] == ["b"]
