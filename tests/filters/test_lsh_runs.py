"""The LSH bucket runs against brute force on random keys (few distinct values: many hits)."""

from __future__ import annotations

import numpy as np

from tunesmith.filters.lsh_runs import BandRuns, batch_pairs


def test_query_finds_exactly_the_items_sharing_a_band_key() -> None:
    rng = np.random.default_rng(0)
    runs, pool = BandRuns(), []
    for batch in range(12):  # batches of uneven size, so runs get merged at several levels
        keys = rng.integers(0, 40, (int(rng.integers(1, 30)), 3)).astype(np.uint64)
        keys |= np.arange(3, dtype=np.uint64) << np.uint64(32)  # the band in the high bits
        query = rng.integers(0, 40, (7, 3)).astype(np.uint64) | (
            np.arange(3, dtype=np.uint64) << np.uint64(32)
        )
        rows, items = runs.query(query)
        want = {(r, i) for r in range(7) for i, k in enumerate(pool) if (query[r] == k).any()}
        assert set(zip(rows.tolist(), items.tolist(), strict=True)) == want, batch
        start = len(pool)
        pool.extend(keys)
        runs.add(keys, np.arange(start, start + len(keys), dtype=np.int32))
    assert len(runs.runs) < 12  # merged


def test_batch_pairs_are_the_earlier_rows_sharing_a_key() -> None:
    keys = np.random.default_rng(1).integers(0, 5, (30, 4)).astype(np.uint64)
    keys |= np.arange(4, dtype=np.uint64) << np.uint64(32)
    later, earlier = batch_pairs(keys)
    want = {(i, j) for i in range(30) for j in range(i) if (keys[i] == keys[j]).any()}
    got = set(zip(later.tolist(), earlier.tolist(), strict=True))
    assert got == want and all(j < i for i, j in got)
    assert batch_pairs(keys[:0])[0].size == 0
