"""SeDi-Instruct quadrant clustering and the one-per-cluster batch sampler."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from tunesmith.errors import ConfigError
from tunesmith.records import Record
from tunesmith.train.batching import (
    batch_order,
    diverse_batches,
    quadrant_clusters,
    read_batch_order,
    write_batch_order,
)


def svd_quadrants(x: np.ndarray, d: int) -> np.ndarray:
    """Reference: centre, take the top-d right singular vectors with numpy, read the signs."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = centred @ vt[:d].T
    return ((comps >= 0) * (1 << np.arange(d))).sum(axis=1)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to renaming the clusters (a component's sign is arbitrary in PCA)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_clusters_are_the_sign_pattern_of_the_principal_components():
    rng = np.random.default_rng(0)
    # anisotropic data: the top three directions are well separated from the rest
    x = rng.normal(size=(200, 12)) * np.array([9, 6, 4] + [1] * 9)
    labels = quadrant_clusters(x, 8)
    comps = PCA(n_components=3, random_state=0).fit_transform(x)
    assert np.array_equal(labels, ((comps >= 0) * np.array([1, 2, 4])).sum(axis=1))
    assert same_partition(labels, svd_quadrants(x, 3))
    # not any sign pattern: the raw first three coordinates give another partition
    assert not same_partition(labels, ((x[:, :3] >= 0) * np.array([1, 2, 4])).sum(axis=1))


def test_batch_order_gives_every_batch_one_row_per_cluster():
    # 4 well-separated groups along two axes, written group after group (the worst input order)
    rng = np.random.default_rng(4)
    centres = np.array([[5, 5], [5, -5], [-5, 5], [-5, -5]], dtype=float)
    vecs = np.concatenate([c + rng.normal(size=(10, 2)) for c in centres])
    vecs = np.concatenate([vecs, 0.01 * rng.normal(size=(40, 6))], axis=1)
    recs = [Record(id=f"g{i // 10}-{i}", instruction=f"t{i}") for i in range(40)]
    order = batch_order(recs, 4, vectors=vecs)
    assert len(order["batches"]) == 10
    for batch in order["batches"]:
        assert sorted(rid.split("-")[0] for rid in batch) == ["g0", "g1", "g2", "g3"]
    assert same_partition(np.array([order["clusters"][r.id] for r in recs]), svd_quadrants(vecs, 2))


def test_batch_size_must_be_power_of_two():
    with pytest.raises(ConfigError):
        quadrant_clusters(np.zeros((3, 4)), 12)


def test_every_full_batch_draws_from_distinct_clusters():
    rng = np.random.default_rng(1)
    clusters = rng.integers(0, 16, size=500).tolist()
    batches = diverse_batches(clusters, 16, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for b in batches:
        labels = [clusters[i] for i in b]
        assert len(labels) <= 16
    # while all 16 clusters are non-empty, each batch has 16 distinct clusters
    sizes = np.bincount(clusters, minlength=16)
    full = int(sizes.min())
    assert all(len({clusters[i] for i in b}) == 16 for b in batches[:full])


def test_sampler_repeats_a_cluster_only_when_fewer_clusters_remain():
    clusters = [0] * 6 + [1] * 2 + [2] * 1
    batches = diverse_batches(clusters, 4, seed=0)
    labels = [[clusters[i] for i in b] for b in batches]
    assert sorted(labels[0][:3]) == [0, 1, 2]
    assert sum(len(b) for b in batches) == 9


def test_batch_order_file_round_trip(tmp_path):
    recs = [Record(id=f"r{i}", instruction=f"t{i}") for i in range(40)]
    vecs = np.random.default_rng(2).normal(size=(40, 8))
    order = batch_order(recs, 4, vectors=vecs)
    path = write_batch_order(tmp_path / "batches.json", order)
    batches = read_batch_order(path)
    assert sorted(i for b in batches for i in b) == sorted(r.id for r in recs)
    assert all(len(b) == 4 for b in batches[:-1])


@pytest.mark.integration
def test_batch_order_with_packaged_minilm_mixes_two_topics():
    cooking = [
        "Give a recipe for tomato soup.",
        "How long should I boil an egg?",
        "Suggest a spice for roasted carrots.",
        "Explain how to knead bread dough.",
        "What can I cook with rice and beans?",
        "How do I make pancakes fluffy?",
    ]
    maths = [
        "Solve 3x + 5 = 20 for x.",
        "What is the derivative of x squared?",
        "Compute 17 times 23.",
        "Is 91 a prime number?",
        "Find the area of a circle of radius 4.",
        "Simplify the fraction 18/24.",
    ]
    recs = [Record(id=f"{k}{i}", instruction=t) for k, texts in (("c", cooking), ("m", maths))
            for i, t in enumerate(texts)]  # fmt: skip
    order = batch_order(recs, 2)
    # the first principal component separates the topics, so each batch of 2 takes one of each
    assert order["dims"] == 1 and order["cluster_sizes"] == {"0": 6, "1": 6}
    for batch in order["batches"]:
        assert sorted(rid[0] for rid in batch) == ["c", "m"]
