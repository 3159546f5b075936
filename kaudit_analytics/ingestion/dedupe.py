"""Deduplication of events on (``audit_id``, ``stage``): a compact index of key hashes."""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from kaudit_analytics import schema as s

__all__ = ["HASHES", "KeyIndex"]

KEY: Final = pl.concat_str(pl.col(s.AUDIT_ID), pl.col(s.STAGE).cast(pl.String), separator="\x00")
# Two independent 64-bit hashes of (audit_id, stage): 16 bytes per stored event keep the dedupe
# index small for millions of events, and a false match is about 1e-25 likely.
HASHES: Final = (KEY.hash(seed=0x6B61756469).alias("h1"), KEY.hash(seed=0x74).alias("h2"))


class KeyIndex:
    """The keys of one partition as sorted runs of hashes, merged as they grow (an LSM tree).

    A join against all keys so far rebuilt a hash table of the whole partition for every batch,
    which made a long load quadratic (3.7 of 10.8 s at 1 M events). Here a batch costs a binary
    search per run, and there are at most about log2(keys) runs.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def contains(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        # Sorted keys make each binary search start where the last one ended (numpy does that),
        # which halves the lookups' time against keys in arrival order.
        order = np.argsort(h1)
        s1, s2 = h1[order], h2[order]
        hit = np.zeros(len(h1), dtype=bool)
        for r1, r2 in self._runs:
            at = np.minimum(np.searchsorted(r1, s1), len(r1) - 1)
            # Two keys sharing h1 (odds ~1e-7 at 8 M keys) can only make a duplicate look new:
            # written twice at worst, never lost.
            hit |= (r1[at] == s1) & (r2[at] == s2)
        found = np.empty_like(hit)
        found[order] = hit
        return found

    def add(self, h1: np.ndarray, h2: np.ndarray) -> None:
        if not len(h1):
            return
        order = np.argsort(h1, kind="stable")
        self._runs.append((h1[order], h2[order]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (a1, a2), (b1, b2) = self._runs[-2:]
            c1, c2 = np.concatenate([a1, b1]), np.concatenate([a2, b2])
            order = np.argsort(c1, kind="stable")
            self._runs[-2:] = [(c1[order], c2[order])]
