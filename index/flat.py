"""Exact inner-product search, run at the machine's memory bandwidth (single query) or sgemm
rate (batches).

Why not faiss ``IndexFlatIP``: for one query faiss scans on a single thread with its own kernel
and reaches about half the read bandwidth; BLAS ``sgemv`` over the same rows uses every core.
For batches both use sgemm, but faiss keeps a heap per query; here each row block is compared to
a running k-th-best threshold per query (one vectorised pass) and only the few survivors are
selected exactly. See ``bench/flat.py`` for the measured fractions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from index.base import F32, I64, Bool, IdSelector, SearchResult, check_ids, check_vectors
from index.params import canonical_part
from index.topk import merge_topk, topk_1d

#: Rows per sgemm block in batched search: the (nq, BLOCK) score block stays cache-sized.
BLOCK = 32768
#: Above this fraction of allowed rows a filtered search scans everything and masks, because
#: gathering rows costs a copy that is no cheaper than the scan itself.
GATHER_MAX_FRACTION = 0.5


@dataclass(frozen=True)
class FlatParams:
    """Flat has no parameters: it is the ground truth."""


class FlatIndex:
    """Exact MIPS over a growable float32 matrix; removals are tombstones until compaction."""

    Params = FlatParams
    persist: ClassVar[bool] = False
    exact: ClassVar[bool] = True

    def __init__(self, dim: int, params: FlatParams | None = None) -> None:
        self._dim = dim
        self.params = params or FlatParams()
        self._x: F32 = np.empty((0, dim), dtype=np.float32)
        self._ids: I64 = np.empty(0, dtype=np.int64)
        self._n = 0
        self._dead: Bool | None = None
        self._ndead = 0
        self._sorted = True

    @property
    def spec(self) -> str:
        return canonical_part("Flat", self.params)

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        """Live (not removed) vectors."""
        return self._n - self._ndead

    @property
    def ids(self) -> I64:
        """``(n,) int64`` ids of every row, removed ones included."""
        return self._ids[: self._n]

    @property
    def vectors(self) -> F32:
        """``(n, d) float32`` rows, removed ones included (a view: do not write)."""
        return self._x[: self._n]

    def alive_mask(self) -> Bool:
        """``(n,) bool``: True where the row has not been removed."""
        if self._dead is None:
            return np.ones(self._n, dtype=bool)
        return ~self._dead[: self._n]

    def add(self, ids: I64, vectors: F32) -> None:
        """Append ``vectors (n, d) float32`` under ``ids (n,) int64``."""
        vectors = check_vectors(vectors, self._dim)
        ids = check_ids(ids, len(vectors))
        m = len(ids)
        if m == 0:
            return
        if self._sorted:
            last = self._ids[self._n - 1] if self._n else np.iinfo(np.int64).min
            self._sorted = bool(ids[0] > last and (m == 1 or np.all(ids[1:] > ids[:-1])))
        self._reserve(self._n + m)
        self._x[self._n : self._n + m] = vectors
        self._ids[self._n : self._n + m] = ids
        self._n += m

    def _reserve(self, need: int) -> None:
        cap = len(self._ids)
        if need <= cap:
            return
        # Grow geometrically so a stream of small appends stays amortised O(1) per row.
        new_cap = max(need, int(cap * 1.5) + 1024) if cap else need
        x = np.empty((new_cap, self._dim), dtype=np.float32)
        x[: self._n] = self._x[: self._n]
        ids = np.empty(new_cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        if self._dead is not None:
            dead = np.zeros(new_cap, dtype=bool)
            dead[: self._n] = self._dead[: self._n]
            self._dead = dead
        # Readers may hold views of the old buffers; they stay valid because we never write
        # below ``_n`` in place, we swap in fresh arrays instead.
        self._x, self._ids = x, ids

    def rows_of(self, ids: I64) -> I64:
        """Rows holding ``ids`` (live or removed); ids not present are skipped."""
        return IdSelector(ids).rows_in(self.ids, self._sorted)

    def remove(self, ids: I64) -> int:
        """Tombstone ``ids``; returns how many live vectors were removed."""
        rows = self.rows_of(np.asarray(ids, dtype=np.int64))
        if len(rows) == 0:
            return 0
        if self._dead is None:
            self._dead = np.zeros(len(self._ids), dtype=bool)
        fresh = rows[~self._dead[rows]]
        self._dead[fresh] = True
        self._ndead += len(fresh)
        return int(len(fresh))

    def nbytes(self) -> int:
        dead = 0 if self._dead is None else self._dead.nbytes
        return int(self._x.nbytes + self._ids.nbytes + dead)

    def search(self, queries: F32, k: int, selector: IdSelector | None = None) -> SearchResult:
        """Exact top-``k`` by inner product for ``queries (nq, d) float32``."""
        queries = check_vectors(queries, self._dim, "queries")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        n = self._n
        x, ids = self._x[:n], self._ids[:n]
        rows: I64 | None = None
        if selector is not None:
            rows = selector.rows_in(ids, self._sorted)
        if self._ndead and self._dead is not None:
            dead = self._dead[:n]
            rows = np.flatnonzero(~dead) if rows is None else rows[~dead[rows]]
        if rows is not None and len(rows) <= GATHER_MAX_FRACTION * n:
            return scan(queries, x[rows], ids[rows], k)
        mask = None
        if rows is not None:
            mask = np.ones(n, dtype=bool)
            mask[rows] = False
        return scan(queries, x, ids, k, excluded=mask)

    def save(self, path: Path) -> None:
        """Write ``vectors.npy``, ``ids.npy``, ``alive.npy`` and ``index.json`` into ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "vectors.npy", self.vectors)
        np.save(path / "ids.npy", self.ids)
        np.save(path / "alive.npy", self.alive_mask())
        (path / "index.json").write_text(json.dumps({"spec": self.spec, "dim": self._dim}))

    @classmethod
    def load(cls, path: Path) -> Self:
        meta = json.loads((path / "index.json").read_text())
        index = cls(int(meta["dim"]))
        ids = np.load(path / "ids.npy")
        index.add(ids, np.load(path / "vectors.npy"))
        alive = np.load(path / "alive.npy")
        index.remove(ids[~alive])
        return index


def scan(
    queries: F32, x: F32, ids: I64, k: int, excluded: Bool | None = None
) -> SearchResult:
    """Exact top-``k`` of ``queries (nq, d)`` against rows ``x (n, d)`` labelled ``ids (n,)``.

    ``excluded (n,) bool`` marks rows that must not be returned. Results are ordered by
    score descending then id ascending; rows beyond the available hits are ``-1`` / ``-inf``.
    """
    nq, n = len(queries), len(x)
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    if n == 0 or nq == 0:
        return SearchResult(out_s, out_i)
    if nq == 1:
        # One sgemv over all rows is bandwidth-bound and multi-threaded inside BLAS.
        scores = x @ queries[0]
        if excluded is not None:
            scores[excluded] = -np.inf
        s, i = topk_1d(scores, ids, k)
        out_s[0, : len(s)], out_i[0, : len(i)] = s, i
        return SearchResult(out_s, out_i)
    thr = np.full(nq, -np.inf, dtype=np.float32)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        block = queries @ x[start:stop].T  # (nq, b) via sgemm
        if excluded is not None:
            block[:, excluded[start:stop]] = -np.inf
        merge_topk(block, ids[start:stop], out_s, out_i, thr)
    return SearchResult(out_s, out_i)
