"""Merge per-segment top-k lists into one, keeping the (score desc, id asc) order.

>>> a = SearchResult(np.array([[3.0, 1.0]], np.float32), np.array([[4, 2]]))
>>> b = SearchResult(np.array([[3.0, 2.0]], np.float32), np.array([[1, 9]]))
>>> merge_results([a, b], 3).ids.tolist()
[[1, 4, 9]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.base import SearchResult


def merge_results(parts: Sequence[SearchResult], k: int) -> SearchResult:
    """Best ``k`` per query across ``parts`` (all with the same ``nq``); ``-1`` pads."""
    if not parts:
        raise ValueError("nothing to merge")
    nq = parts[0].nq
    scores = np.concatenate([p.scores for p in parts], axis=1)
    ids = np.concatenate([p.ids for p in parts], axis=1)
    # Pads sort last whatever their score: give them the largest id and -inf.
    key_ids = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    key_scores = np.where(ids < 0, -np.inf, scores)
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    for q in range(nq):
        o = np.lexsort((key_ids[q], -key_scores[q]))[:k]
        o = o[ids[q, o] >= 0]
        out_s[q, : len(o)] = scores[q, o]
        out_i[q, : len(o)] = ids[q, o]
    return SearchResult(out_s, out_i)
