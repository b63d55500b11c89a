"""Exact top-k selection with the (score desc, id asc) order, cheap on long score rows.

Every helper first finds a threshold no larger than the true k-th best score, keeps the entries at
or above it (ties included, so the id tie-break is exact) and sorts only those few.

>>> s, i = topk_1d(np.array([1, 3, 3, 2], np.float32), np.array([7, 9, 8, 6]), 2)
>>> s.tolist(), i.tolist()
([3.0, 3.0], [8, 9])

Running top-k over score blocks whose rows are database rows and columns queries
(:class:`RunningTopK` does the same with merges batched; ``index.flat.scan`` runs one per worker):

>>> out_s = np.full((2, 2), -np.inf, np.float32); out_i = np.full((2, 2), -1, np.int64)
>>> thr = np.full(2, -np.inf, np.float32)
>>> fold_block(np.array([[1, 5], [2, 5]], np.float32), np.array([10, 11]), out_s, out_i, thr)
>>> fold_block(np.array([[3, 0], [2, 7]], np.float32), np.array([12, 9]), out_s, out_i, thr)
>>> out_i.tolist(), thr.tolist()
([[12, 9], [9, 10]], [2.0, 5.0])
"""

from __future__ import annotations

import numpy as np

from index.base import F32, I64, Bool

#: Rows sampled to guess a threshold before the exact pass in :func:`topk_1d`.
SAMPLE = 16384
#: Rows of a block whose k-th best seeds a query that has no threshold yet.
SEED_ROWS = 2048
#: A block lets at most ``max(4k + HEAVY_EXTRA, b / 16)`` entries per query through to the merge;
#: beyond that the query's threshold is first raised from the block itself.
HEAVY_EXTRA = 64
_ID_LAST = np.iinfo(np.int64).max


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


def merge_candidates(q: I64, s: F32, ids: I64, out_s: F32, out_i: I64, thr: F32) -> None:
    """Fold candidate hits ``(query q[j], score s[j], id ids[j])`` into running top-k, in place.

    ``out_s/out_i (nq, k)`` hold the best so far in (score desc, id asc) order with ``-inf``/``-1``
    pads; only the queries named in ``q`` are touched. ``thr (nq,)`` is raised to each touched
    query's k-th best score. Candidates must be finite and not already present.
    """
    if len(q) == 0:
        return
    k = out_s.shape[1]
    touched, group = np.unique(q, return_inverse=True)
    nu = len(touched)
    all_g = np.concatenate([np.repeat(np.arange(nu), k), group.reshape(-1)])
    all_s = np.concatenate([out_s[touched].ravel(), s.astype(np.float32, copy=False)])
    all_i = np.concatenate([out_i[touched].ravel(), ids.astype(np.int64, copy=False)])
    # Pads (id -1, -inf) must sort after real hits of any score, so give them the largest id.
    key = np.where(all_i < 0, _ID_LAST, all_i)
    perm = np.lexsort((key, -all_s, all_g))
    sg = all_g[perm]
    starts = np.searchsorted(sg, np.arange(nu))
    keep = perm[np.arange(len(sg)) - starts[sg] < k]
    # Every group holds its k previous slots, so exactly k entries per group survive, in order.
    new_s = all_s[keep].reshape(nu, k)
    new_i = all_i[keep].reshape(nu, k)
    new_i[np.isneginf(new_s)] = -1
    out_s[touched] = new_s
    out_i[touched] = new_i
    thr[touched] = np.maximum(thr[touched], new_s[:, k - 1])


def _seed(block: F32, thr: F32, k: int, excluded: Bool | None) -> None:
    """Give queries whose threshold is still ``-inf`` the k-th best of the block's first rows.

    The k-th best of any subset of the allowed rows is a lower bound on the final k-th best, so
    this is safe, and it costs one partition of ``SEED_ROWS`` rows instead of merging a whole
    wide-open block. Queries left with fewer than k allowed rows there stay at ``-inf``.
    """
    b = block.shape[0]
    m = min(b, max(SEED_ROWS, 4 * k))
    if m < k:
        return
    unset = np.flatnonzero(thr == -np.inf)
    sample = block[:m, unset]
    if excluded is not None:
        sample[excluded[:m]] = -np.inf
    thr[unset] = np.partition(sample, m - k, axis=0)[m - k]


def _tighten(block: F32, mask: Bool, thr: F32, k: int, limit: int, excluded: Bool | None) -> None:
    """Raise ``thr`` to the block's own k-th best for queries with more than ``limit`` entries
    passing it in ``block (b, nq)`` (a loose threshold: rows in ascending order, heavy
    exclusions). Excluded rows are set to ``-inf`` in ``block`` first."""
    b = block.shape[0]
    heavy = np.flatnonzero(mask.sum(axis=0) > limit)
    if len(heavy) == 0 or b < k:
        return
    if excluded is not None:
        block[excluded] = -np.inf
    cols = np.ascontiguousarray(block[:, heavy].T)  # (h, b): partitions run along rows
    kth = np.partition(cols, b - k, axis=1)[:, b - k]
    thr[heavy] = np.maximum(thr[heavy], kth)
    np.greater_equal(block, thr, out=mask)


def block_candidates(
    block: F32,
    thr: F32,
    k: int,
    excluded: Bool | None = None,
    mask: Bool | None = None,
    floor: float | None = None,
) -> tuple[I64, I64, F32]:
    """Entries of ``block (b, nq)`` that may enter a running top-k with thresholds ``thr (nq,)``.

    Returns ``(rows, queries, scores)``: a superset of the finite entries with
    ``score >= thr[query]`` outside ``excluded (b,)`` rows (ties included); entries below their
    query's threshold may come along and are dropped by the merge. ``thr`` may be raised from
    the block itself, always to a safe lower bound of the final k-th best.

    The common case is one scalar compare against ``floor`` (default ``thr.min()``; ~3x cheaper
    than a per-column compare) and one ``flatnonzero``. Queries without a threshold yet are
    seeded from the block's first rows (:func:`_seed`); when the scalar compare lets too much
    through the compare is done per query, and a query that still has many entries gets its
    threshold from the whole block (:func:`_tighten`). ``mask`` is an optional
    ``(>= b, nq) bool`` scratch buffer; ``block`` may be overwritten.
    """
    b, nq = block.shape
    m = np.empty(block.shape, dtype=bool) if mask is None else mask[:b]
    limit = max(4 * k + HEAVY_EXTRA, b // 16)
    t = float(thr.min(initial=np.inf)) if floor is None else floor
    if t == -np.inf:
        _seed(block, thr, k, excluded)
        t = float(thr.min(initial=np.inf))
    flat: I64 | None = None
    if t > -np.inf:
        np.greater_equal(block, t, out=m)
        flat = np.flatnonzero(m)
        if len(flat) > limit * nq // 4:
            flat = None
    exact = flat is None
    if flat is None:
        np.greater_equal(block, thr, out=m)
        if np.count_nonzero(m) > limit * nq // 4:
            _tighten(block, m, thr, k, limit, excluded)
        flat = np.flatnonzero(m)
    r, c = np.divmod(flat, nq)
    s = block.reshape(-1)[flat] if block.flags.c_contiguous else block[r, c]
    if exact or excluded is not None:
        keep = s > -np.inf
        if excluded is not None:
            keep &= ~excluded[r]
        r, c, s = r[keep], c[keep], s[keep]
    return r, c, s


def fold_block(
    block: F32,
    block_ids: I64,
    out_s: F32,
    out_i: I64,
    thr: F32,
    excluded: Bool | None = None,
    mask: Bool | None = None,
) -> None:
    """Fold scores ``block (b, nq)`` (rows = database rows ``block_ids (b,)``) into running top-k.

    ``out_s/out_i (nq, k)`` and ``thr (nq,)`` are as in :func:`merge_candidates`; rows flagged in
    ``excluded (b,)`` never enter. ``mask`` and ``block`` as in :func:`block_candidates`.
    """
    r, c, s = block_candidates(block, thr, out_s.shape[1], excluded, mask)
    merge_candidates(c, s, block_ids[r], out_s, out_i, thr)


class RunningTopK:
    """Exact running top-``k`` of ``nq`` queries over score blocks, with merges batched.

    Candidates from each block are kept aside and merged once there are about ``nq * k`` of
    them: late blocks yield a handful each, and one merge costs the same for one or hundreds.
    ``shared (nq,)``, if given, is a threshold array other scanners of disjoint rows also raise;
    each one's k-th best is a safe lower bound for all, so everyone filters with the maximum.
    """

    def __init__(self, nq: int, k: int, shared: F32 | None = None) -> None:
        self.k = k
        self.scores: F32 = np.full((nq, k), -np.inf, dtype=np.float32)
        self.ids: I64 = np.full((nq, k), -1, dtype=np.int64)
        self.thr: F32 = np.full(nq, -np.inf, dtype=np.float32)
        self.shared = shared
        if shared is not None:
            np.maximum(self.thr, shared, out=self.thr)
        self._pending: list[tuple[I64, F32, I64]] = []
        self._npending = 0
        self._flush_at = max(nq * k, 256)
        self._floor = float(self.thr.min(initial=np.inf))

    def fold(
        self, block: F32, block_ids: I64, excluded: Bool | None = None, mask: Bool | None = None
    ) -> None:
        """Take candidates from ``block (b, nq)`` of rows ``block_ids (b,)`` (see
        :func:`block_candidates`)."""
        r, c, s = block_candidates(block, self.thr, self.k, excluded, mask, self._floor)
        if self._floor == -np.inf:  # the block may have set the first finite thresholds
            self._floor = float(self.thr.min(initial=np.inf))
        if len(r) == 0:
            return
        self._pending.append((c, s, block_ids[r]))
        self._npending += len(r)
        if self._npending >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        """Merge the pending candidates into ``scores/ids`` and raise the thresholds."""
        if self._pending:
            c, s, i = (np.concatenate(parts) for parts in zip(*self._pending, strict=True))
            self._pending, self._npending = [], 0
            merge_candidates(c, s, i, self.scores, self.ids, self.thr)
        if self.shared is not None:
            np.maximum(self.shared, self.thr, out=self.shared)
            np.maximum(self.thr, self.shared, out=self.thr)
        self._floor = float(self.thr.min(initial=np.inf))


def merge_topk(block: F32, block_ids: I64, out_s: F32, out_i: I64, thr: F32) -> None:
    """Fold a score block ``(nq, b)`` with column ids ``(b,)`` into running top-k, in place.

    ``out_s/out_i (nq, k)`` hold the best so far (``-inf``/``-1`` pads); ``thr (nq,)`` is each
    query's current k-th best score and is raised as the block is absorbed. This is
    :func:`fold_block` for the query-major layout.
    """
    fold_block(np.ascontiguousarray(block.T), block_ids, out_s, out_i, thr)
