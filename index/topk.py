"""Exact top-k selection with the (score desc, id asc) order, cheap on long score rows.

Both helpers first find a threshold no larger than the true k-th best score, keep the rows at or
above it (ties included, so the id tie-break is exact) and sort only those few.

>>> s, i = topk_1d(np.array([1, 3, 3, 2], np.float32), np.array([7, 9, 8, 6]), 2)
>>> s.tolist(), i.tolist()
([3.0, 3.0], [8, 9])
"""

from __future__ import annotations

import numpy as np

from index.base import F32, I64

#: Rows sampled to guess a threshold before the exact pass in :func:`topk_1d`.
SAMPLE = 65536


def order(scores: F32, ids: I64) -> I64:
    """Permutation sorting by score descending, then id ascending."""
    return np.lexsort((ids, -scores)).astype(np.int64)


def topk_1d(scores: F32, ids: I64, k: int) -> tuple[F32, I64]:
    """Best ``k`` of ``scores (m,)`` labelled ``ids (m,)``; ``-inf`` entries never returned."""
    m = len(scores)
    if m > 4 * k and m > 1024:
        # The k-th best of a prefix is <= the k-th best of the whole row: a safe threshold.
        head = scores[: min(m, max(SAMPLE, 4 * k))]
        t = np.partition(head, len(head) - k)[len(head) - k]
        cand = np.flatnonzero(scores >= t) if np.isfinite(t) else np.arange(m)
    else:
        cand = np.arange(m)
    cs = scores[cand]
    if len(cand) > k:
        t = np.partition(cs, len(cs) - k)[len(cs) - k]
        keep = cs >= t
        cand, cs = cand[keep], cs[keep]
    finite = cs > -np.inf
    cand, cs = cand[finite], cs[finite]
    o = order(cs, ids[cand])[:k]
    return cs[o].astype(np.float32), ids[cand[o]].astype(np.int64)


def merge_topk(block: F32, block_ids: I64, out_s: F32, out_i: I64, thr: F32) -> None:
    """Fold a score block ``(nq, b)`` with column ids ``(b,)`` into running top-k, in place.

    ``out_s/out_i (nq, k)`` hold the best so far (``-inf``/``-1`` pads); ``thr (nq,)`` is each
    query's current k-th best score and is raised as the block is absorbed.
    """
    nq, b = block.shape
    k = out_s.shape[1]
    mask = block >= thr[:, None]
    counts = mask.sum(axis=1)
    heavy = np.flatnonzero(counts > 4 * k + 64)
    if len(heavy) and b > k:
        # A first block (or adversarial order) lets most entries through: tighten with one
        # partition per heavy row instead of sorting them all.
        kth = np.partition(block[heavy], b - k, axis=1)[:, b - k]
        thr[heavy] = np.maximum(thr[heavy], kth)
        mask[heavy] = block[heavy] >= thr[heavy, None]
    unset = np.flatnonzero(np.isneginf(thr))
    if len(unset):
        mask[unset] &= block[unset] > -np.inf
    qi, ci = np.nonzero(mask)
    if len(qi) == 0:
        return
    all_q = np.concatenate([np.repeat(np.arange(nq), k), qi])
    all_s = np.concatenate([out_s.ravel(), block[qi, ci]])
    all_i = np.concatenate([out_i.ravel(), block_ids[ci]])
    # Pads (id -1, -inf) must sort after real hits of any score, so give them the largest id.
    all_i_key = np.where(all_i < 0, np.iinfo(np.int64).max, all_i)
    perm = np.lexsort((all_i_key, -all_s, all_q))
    sq = all_q[perm]
    starts = np.searchsorted(sq, np.arange(nq))
    rank = np.arange(len(sq)) - starts[sq]
    keep = rank < k
    rows, cols = sq[keep], rank[keep]
    out_s[rows, cols] = all_s[perm][keep]
    out_i[rows, cols] = all_i[perm][keep]
    pad = np.isneginf(out_s)
    out_i[pad] = -1
    np.maximum(thr, out_s[:, k - 1], out=thr)
