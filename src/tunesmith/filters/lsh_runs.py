"""LSH band keys of a growing pool, as sorted per-band runs queried a batch at a time.

The bucket tables of MinHash LSH (Broder 1997; Indyk and Motwani 1998) kept as numpy arrays
instead of per-band dicts: a run holds, per band, the sorted low 32 bits of its items' keys and
the items (8 bytes per item and band), and a batch of queries is answered with ``searchsorted``
(no per-row Python). Runs of similar size are merged (an LSM), so there are O(log n) runs and
each key is re-sorted O(log n) times. Two keys equal in their low 32 bits but not in full only
add a proposal, which the caller verifies. Used by :mod:`tunesmith.filters.minhash_novelty`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_LOW32 = np.uint64(0xFFFFFFFF)
_NO_KEYS, _NO_ITEMS = np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.int32)


class BandRuns:
    """The pool's band keys as sorted runs, one array per band, merged LSM-style.

    A run holds, per band, the low 32 bits of its items' keys (sorted) and the items: 8 bytes
    per item and band. Merging band by band frees each old band as it goes, so a merge needs
    one band's worth of extra memory, not a run's.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[list[NDArray[np.uint32]], list[NDArray[np.int32]]]] = []

    def add(self, keys: NDArray[np.uint64], items: NDArray[np.int32]) -> None:
        """Add ``keys`` (n x bands) of pool ``items`` (n,)."""
        if not items.size:
            return
        low = (keys & _LOW32).astype(np.uint32)
        orders = [np.argsort(low[:, band], kind="stable") for band in range(keys.shape[1])]
        self.runs.append(
            ([low[order, band] for band, order in enumerate(orders)], [items[o] for o in orders])
        )
        # merge while the newest run is at least half the one before: O(log n) runs, each row
        # re-sorted O(log n) times in all
        while len(self.runs) > 1 and 2 * self.runs[-1][1][0].size >= self.runs[-2][1][0].size:
            (k2, i2), (k1, i1) = self.runs.pop(), self.runs.pop()
            for band in range(len(k1)):
                k, i = np.concatenate([k1[band], k2[band]]), np.concatenate([i1[band], i2[band]])
                order = np.argsort(k, kind="stable")
                k1[band], i1[band] = k[order], i[order]
                k2[band], i2[band] = _NO_KEYS, _NO_ITEMS  # free the merged band now
            self.runs.append((k1, i1))

    def query(self, keys: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Pairs ``(row, item)`` of query rows and pool items sharing a key (repeats possible)."""
        low = (keys & _LOW32).astype(np.uint32)
        rows, items = [], []
        for band in range(keys.shape[1]):
            order = np.argsort(low[:, band])  # sorted needles make searchsorted much faster
            needles = low[order, band]
            for run_keys, run_items in self.runs:
                lo = np.searchsorted(run_keys[band], needles, side="left")
                count = np.searchsorted(run_keys[band], needles, side="right") - lo
                hit = np.flatnonzero(count)
                if not hit.size:
                    continue
                lo, count = lo[hit], count[hit]
                # positions lo, lo+1, ..., lo+count-1 for every hit, without a Python loop
                ends = np.cumsum(count)
                pos = np.arange(int(ends[-1])) - np.repeat(ends - count - lo, count)
                rows.append(np.repeat(order[hit], count))
                items.append(run_items[band][pos].astype(np.int64))
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(rows), np.concatenate(items)


def batch_pairs(keys: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pairs ``(row, earlier row)`` of a batch's rows sharing a band key (repeats possible)."""
    flat = keys.ravel()
    if not flat.size:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    order = np.argsort(flat, kind="stable")  # stable: rows ascending within a key
    sorted_keys, rows = flat[order], order // keys.shape[1]
    at = np.arange(flat.size)
    is_first = np.empty(flat.size, dtype=bool)
    is_first[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=is_first[1:])
    start = np.maximum.accumulate(np.where(is_first, at, 0))
    count = at - start  # how many rows earlier in the same bucket
    ends = np.cumsum(count)
    pos = np.arange(int(ends[-1])) - np.repeat(ends - count - start, count)
    return np.repeat(rows, count), rows[pos]
