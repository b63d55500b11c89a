"""Exact inner-product search at the machine's read bandwidth (one query) and close to its sgemm
rate (batches).

The rows are cut into blocks (see :func:`block_rows`). One worker thread per BLAS thread pulls
blocks, multiplies each with *single-threaded* BLAS (``sgemv`` for one query; for batches
``sgemm`` as ``(b, d) @ (d, nq)``, the orientation OpenBLAS runs fastest for small ``nq``) and
folds the scores into its own exact running top-k (:class:`~index.topk.RunningTopK`): one scalar
compare against the lowest k-th-best threshold finds the handful of entries that can still
enter, and those are merged in batches. A worker seeds its thresholds from its first block;
workers share them as they rise.

Why workers rather than BLAS's own threads: selection on one core overlaps the other's
multiply; no BLAS thread waits on another (OpenBLAS's 2-thread sgemm is ~15% slower at nq=64
and degrades badly when another process takes a core); and OpenBLAS threads that were woken
keep spinning for a while after a call, taking a core from whatever runs next. faiss
``IndexFlatIP`` scans a single query on one thread with its own kernel (about half the
bandwidth) and keeps a heap per query in batches. ``bench/flat.py`` measures all of it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from index.base import F32, I64, Bool, IdSelector, SearchResult, check_ids, check_vectors
from index.params import canonical_part
from index.topk import RunningTopK, merge_candidates

#: Rows per sgemm block in batched search. 4096-16384 measured alike (selection costs ~4% of
#: the sgemm time at nq=64); smaller blocks add per-block Python, larger ones leave a worker
#: idle longer at the end of the scan.
BLOCK = 8192
#: Largest block (single queries): 65536 x 384 float32 rows are 100 MB, ~5 ms of sgemv.
MAX_BLOCK = 65536
#: Smallest block, whatever ``n``: below this per-block Python dominates.
MIN_BLOCK = 1024
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

    @classmethod
    def wrap(cls, ids: I64, vectors: F32) -> Self:
        """A store over ``vectors (n, d) float32`` as given, without copying: a read-only
        ``np.memmap`` stays on disk (page cache) until a later :meth:`add` copies it."""
        if vectors.ndim != 2 or vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
            raise ValueError(f"vectors must be C-contiguous (n, d) float32, got {vectors.dtype}")
        index = cls(int(vectors.shape[1]))
        index._ids = check_ids(ids, len(vectors)).copy()
        index._x = vectors
        index._n = len(vectors)
        index._sorted = bool(len(ids) < 2 or np.all(index._ids[1:] > index._ids[:-1]))
        return index

    @property
    def mapped(self) -> bool:
        """True while the rows are a memory map rather than process memory."""
        return isinstance(self._x, np.memmap)

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
        rows = 0 if self.mapped else self._x.nbytes
        return int(rows + self._ids.nbytes + dead)

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


def scan(queries: F32, x: F32, ids: I64, k: int, excluded: Bool | None = None) -> SearchResult:
    """Exact top-``k`` of ``queries (nq, d)`` against rows ``x (n, d)`` labelled ``ids (n,)``.

    ``excluded (n,) bool`` marks rows that must not be returned. Results are ordered by
    score descending then id ascending; rows beyond the available hits are ``-1`` / ``-inf``.
    While a scan runs its worker threads, numpy's BLAS is limited to one thread process-wide
    (reference-counted, restored by the last scan out).
    """
    nq, n = len(queries), len(x)
    if n == 0 or nq == 0:
        return SearchResult(
            np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
        )
    q_t = np.ascontiguousarray(queries.T)
    threads = _blas.threads()
    rows = block_rows(nq, n, threads)
    starts = list(range(0, n, rows))
    shared = np.full(nq, -np.inf, dtype=np.float32)
    tops = [RunningTopK(nq, k, shared)]
    workers = min(threads, len(starts))
    if workers <= 1:
        _scan_blocks(tops[0], iter(starts), rows, q_t, x, ids, excluded)
    else:
        # Each worker runs single-threaded BLAS on the blocks it pulls and selects from them
        # while the other multiplies: both cores stay busy, no BLAS thread waits on another.
        tops += [RunningTopK(nq, k, shared) for _ in range(workers - 1)]
        pulled = _Blocks(starts)
        with _blas.single_threaded(), ThreadPoolExecutor(workers) as pool:
            futures = [
                pool.submit(_scan_blocks, top, pulled, rows, q_t, x, ids, excluded) for top in tops
            ]
            for f in futures:
                f.result()
    out = tops[0]
    for top in tops[1:]:
        qi, col = np.nonzero(top.ids >= 0)
        merge_candidates(qi, top.scores[qi, col], top.ids[qi, col], out.scores, out.ids, out.thr)
    return SearchResult(out.scores, out.ids)


def block_rows(nq: int, n: int, workers: int) -> int:
    """Rows per block for ``nq`` queries over ``n`` rows shared by ``workers`` threads.

    At most ``BLOCK`` rows at 64 queries and up, more for fewer queries (up to ``MAX_BLOCK`` for
    one), so per-block Python stays ~1% of the BLAS time; and at most ``n / (16 * workers)`` so
    the worker that finishes first idles at most one short block while the other ends its last.
    """
    cap = min(MAX_BLOCK, max(BLOCK, BLOCK * 64 // nq))
    return int(max(MIN_BLOCK, min(cap, -(-n // (16 * workers)))))


def _part(excluded: Bool | None, start: int, stop: int) -> Bool | None:
    """``excluded[start:stop]``, or None when nothing there is excluded."""
    if excluded is None:
        return None
    part = excluded[start:stop]
    return part if part.any() else None


def _scan_blocks(
    top: RunningTopK,
    starts: Iterator[int],
    rows: int,
    q_t: F32,
    x: F32,
    ids: I64,
    excluded: Bool | None,
) -> None:
    """Fold the ``rows``-row blocks beginning at ``starts`` into ``top`` (``x_block @ q_t``)."""
    n, nq = len(x), q_t.shape[1]
    block = np.empty((min(rows, n), nq), dtype=np.float32)
    mask = np.empty(block.shape, dtype=bool)
    for start in starts:
        stop = min(start + rows, n)
        scores = block[: stop - start]
        if nq == 1:  # sgemv, bandwidth-bound
            np.matmul(x[start:stop], q_t[:, 0], out=scores[:, 0])
        else:
            # (b, d) @ (d, nq): ~1.25x faster in OpenBLAS than (nq, d) @ (d, b) at nq=64.
            np.matmul(x[start:stop], q_t, out=scores)
        top.fold(scores, ids[start:stop], _part(excluded, start, stop), mask)
    top.flush()


class _Blocks:
    """A thread-safe iterator over block starts shared by the scan workers."""

    def __init__(self, starts: list[int]) -> None:
        self._it = iter(starts)
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        with self._lock:
            return next(self._it)


class _BlasThreads:
    """Reference-counted "BLAS on one thread" switch for numpy's BLAS (via threadpoolctl).

    Concurrent scans each enter it; the first one in lowers the limit and the last one out
    restores the original, so overlapping scans never restore each other's lowered value.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._libs: list[Any] | None = None
        self._saved: list[int] = []

    def _controllers(self) -> list[Any]:
        if self._libs is None:
            try:
                from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
            except ImportError:  # pragma: no cover - threadpoolctl is a dependency
                self._libs = []
                return self._libs
            libs = ThreadpoolController().select(user_api="blas").lib_controllers
            # Only numpy's BLAS: faiss may bring its own, and its limits are its own business.
            mine = [c for c in libs if "numpy" in str(c.filepath)]
            self._libs = mine or libs
        return self._libs

    def threads(self) -> int:
        """Threads numpy's BLAS would use outside any scan (1 when unknown)."""
        with self._lock:
            if self._users:
                return max(self._saved, default=1)
            return max((int(c.num_threads) for c in self._controllers()), default=1)

    @contextmanager
    def single_threaded(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                libs = self._controllers()
                self._saved = [int(c.num_threads) for c in libs]
                for c in libs:
                    c.set_num_threads(1)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    for c, t in zip(self._controllers(), self._saved, strict=True):
                        c.set_num_threads(t)


_blas = _BlasThreads()
