"""Selection: similarity bound on the returned set, determinism, ranking, k-center sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunesmith.errors import ConfigError
from tunesmith.records import Record
from tunesmith.select.diversity import (
    greedy_diverse,
    kcenter_greedy,
    parse_score_spec,
    rank_order,
    score_of,
)
from tunesmith.select.select_stage import SelectStage


def clustered(n: int = 400, d: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight clusters, so many pairs are above 0.9 cosine."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d))
    x = centers[rng.integers(0, 20, n)] + 0.15 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def naive_greedy(emb: np.ndarray, order: np.ndarray, k: int, threshold: float) -> list[int]:
    """Reference: the full N x N similarity matrix, one row at a time."""
    sims = emb.astype(np.float64) @ emb.astype(np.float64).T
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if not chosen or sims[i, chosen].max() <= threshold:
            chosen.append(int(i))
    return chosen


def records(n: int, seed: int = 1) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [
        Record(
            id=str(i), instruction=f"task {i}", scores={"a": float(rng.integers(0, 5)), "b": 2.0}
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("block", [1, 7, 512])
def test_greedy_matches_naive_reference_and_respects_bound(block: int) -> None:
    emb = clustered()
    order = rank_order(np.random.default_rng(3).random(len(emb)))
    got, too_close = greedy_diverse(emb, order, k=60, threshold=0.9, block=block)
    assert got == naive_greedy(emb, order, 60, 0.9)
    sims = emb.astype(np.float64)[got] @ emb.astype(np.float64)[got].T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 0.9 + 1e-9
    assert all(s > 0.9 for s in too_close.values())
    assert len(got) < 60 or len(too_close) > 0


def test_select_stage_bound_ties_and_determinism() -> None:
    recs = records(400)
    emb = clustered(400)
    stage = SelectStage(k=15, score="a*b", threshold=0.9)
    first = stage.select(recs, emb)
    second = SelectStage(k=15, score="a*b", threshold=0.9).select(recs, emb)
    ids = [r.id for r in first.kept]
    assert ids == [r.id for r in second.kept]
    assert len(ids) == 15 and len(first.kept) + len(first.rejected) == 400
    idx = [int(i) for i in ids]
    sims = emb.astype(np.float64)[idx] @ emb.astype(np.float64)[idx].T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 0.9 + 1e-6
    # ranked by a*b descending, ties in input order
    values = [recs[i].scores["a"] * 2.0 for i in idx]
    assert values == sorted(values, reverse=True)
    for j in range(len(idx) - 1):
        if values[j] == values[j + 1]:
            assert idx[j] < idx[j + 1]
    assert [r.scores["select_rank"] for r in first.kept] == list(range(15))
    reasons = {r.reason.split(" ")[0] for r in first.rejected}
    assert reasons <= {"cosine", "beyond"}


def test_rows_without_the_score_are_rejected_with_reason() -> None:
    recs = [Record(id="x", instruction="a", scores={"q": 3}), Record(id="y", instruction="b")]
    emb = np.eye(2, dtype=np.float32)
    res = SelectStage(k=5, score="q").select(recs, emb)
    assert [r.id for r in res.kept] == ["x"]
    assert res.rejected[0].reason == "no q score"


def test_ascending_ranks_smallest_first() -> None:
    recs = [Record(id=str(i), instruction="t", scores={"ppl": v}) for i, v in enumerate([5, 1, 3])]
    res = SelectStage(k=3, score="ppl", ascending=True).select(recs, np.eye(3, dtype=np.float32))
    assert [r.id for r in res.kept] == ["1", "2", "0"]


def test_kcenter_picks_one_per_cluster_first() -> None:
    rng = np.random.default_rng(0)
    centers = np.eye(8)
    labels = np.repeat(np.arange(8), 30)
    x = centers[labels] + 0.05 * rng.normal(size=(240, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = kcenter_greedy(x, 8)
    assert sorted(labels[got].tolist()) == list(range(8))
    assert got == kcenter_greedy(x, 8)
    assert len(set(kcenter_greedy(x, 240))) == 240


def test_kcenter_matches_bruteforce_reference() -> None:
    x = clustered(120, 8, seed=5).astype(np.float64)
    got = kcenter_greedy(x, 15)
    chosen = [0]
    dist = 1 - x @ x.T
    while len(chosen) < 15:
        d = dist[:, chosen].min(axis=1)
        d[chosen] = -np.inf
        chosen.append(int(np.argmax(d)))
    assert got == chosen


def test_kcenter_stage_needs_no_scores() -> None:
    recs = [Record(id=str(i), instruction="t") for i in range(10)]
    res = SelectStage(k=3, method="kcenter").select(recs, clustered(10))
    assert len(res.kept) == 3 and len(res.rejected) == 7


def test_score_spec_and_bad_params() -> None:
    assert parse_score_spec("complexity * quality") == ["complexity", "quality"]
    assert score_of(Record(id="1", instruction="t", scores={"a": 2, "b": 0.5}), ["a", "b"]) == 1.0
    assert score_of(Record(id="1", instruction="t", scores={"a": "x"}), ["a"]) is None
    with pytest.raises(ConfigError):
        parse_score_spec("a**b")
    with pytest.raises(ConfigError):
        SelectStage(method="random")
    with pytest.raises(ConfigError):
        SelectStage(k=0)


@pytest.mark.integration
def test_select_with_real_minilm_embeddings() -> None:
    texts = ["Name a fruit.", "Name one fruit.", "Write a poem about the sea.", "Add 2 and 3."]
    recs = [Record(id=str(i), instruction=t, scores={"q": 4 - i}) for i, t in enumerate(texts)]
    stage = SelectStage(k=4, score="q", field="instruction")
    res = stage.run(recs)
    emb = stage.embed(recs)
    idx = [int(r.id) for r in res.kept]
    sims = emb[idx] @ emb[idx].T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 0.9 + 1e-6
    assert "0" in [r.id for r in res.kept]


def test_embedding_cache_embeds_each_text_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunesmith.embeddings

    seen: list[str] = []

    def fake_embed(texts: list[str], model: str | None = None) -> np.ndarray:
        seen.extend(texts)
        return np.stack([np.eye(8, dtype=np.float32)[len(t) % 8] for t in texts])

    monkeypatch.setattr(tunesmith.embeddings, "embed", fake_embed)
    cache = tmp_path / "emb.npz"
    recs = [Record(id=str(i), instruction=f"task number {i}") for i in range(5)]
    stage = SelectStage(k=2, field="instruction", embedding_cache=str(cache))
    first = stage.embed(recs)
    assert len(seen) == 5 and cache.exists()
    more = [*recs, Record(id="x", instruction="a new one")]
    again = SelectStage(k=2, field="instruction", embedding_cache=str(cache)).embed(more)
    assert seen[5:] == ["a new one"]
    np.testing.assert_array_equal(again[:5], first)


def test_kcenter_starts_from_the_best_scored_row() -> None:
    recs = [Record(id=str(i), instruction="t", scores={"q": float(i == 3)}) for i in range(6)]
    res = SelectStage(k=2, method="kcenter", score="q").select(recs, clustered(6))
    assert res.kept[0].id == "3"
