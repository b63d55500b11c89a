"""RaBitQ (Gao & Long, SIGMOD 2024) for :mod:`index.binary`: faiss's SIMD fast-scan kernel behind
our own seeded rotation, plus a numpy reference of the 1-bit estimator that tests hold it to.

**Encoding.** Rows are rotated by a seeded Haar rotation ``P`` (ours, saved as
``rotation.npy``); faiss then centres them on their mean ``c`` (learned by ``train``) and keeps,
per row, the sign bits of the residual ``r = Px - c`` plus two float factors (``|r|`` and
``<o_bar, o>``); ``bits > 1`` adds the extended-RaBitQ refinement codes (faiss >= 1.13).

**Estimator (inner product, any norms).** With ``o = r / |r|`` and the code read as the unit
vector ``o_bar = (2b - 1) / sqrt(d)``::

    <x, q> = <q, c> + <c, r> + |r| <o, q - c>      ~   ... + |r| <o_bar, q - c> / <o_bar, o>

The ratio is an unbiased estimate of ``<o, q - c>`` over the random rotation, with error
``O(|q - c| / sqrt(d))``; every norm enters exactly, so rows of any length are ranked right up
to that error. :func:`estimate` computes it in float64; faiss computes the same quantity with
the query quantized to 8 bits, and SIMD lookup tables over 32 rows at a time.

**Centroids (``lists > 1``).** faiss ``IndexIVFRaBitQFastScan`` instead: k-means (faiss,
seeded) splits the rotated rows into ``lists`` cells and each row is coded as the residual
against its cell's centroid; the estimate is ``<q, c_j>`` plus the RaBitQ estimate of
``<q, x - c_j>``. ``scan_all`` (``backend=flat``) probes every cell, so the candidate step is
a full scan of smaller residuals; otherwise (``backend=ivf``) only the ``nprobe`` cells of
largest ``<q, c_j>``. Each row then also carries faiss's 8-byte list id.

**Filters.** faiss 1.15's flat fast-scan search takes no ``IDSelector``; :func:`overfetch`
fetches ``n / allowed`` times more and drops rows outside the mask, retrying the queries that
come back short with 4x more (up to every row, which is then complete). The IVF index filters
while it scans (``IDSelectorBitmap``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from index.base import F32, I64, Bool
from index.codes import F64, random_orthogonal

#: faiss as ``Any`` (partial stubs since 1.15; see :mod:`index.hnsw`).
faiss: Any = _faiss

#: Rows per fast-scan block (faiss's default).
BBS = 32
#: Extra rows fetched beyond ``depth * n / allowed`` on a filtered search.
FETCH_SLACK = 1.25
#: Fewest training rows per k-means cell (faiss's ``min_points_per_centroid``).
MIN_TRAIN_PER_LIST = 39
#: k-means iterations for the cells, and the rows per cell it trains on at most (seeded).
KMEANS_ITERS = 10
KMEANS_SAMPLE_PER_LIST = 64


def encode_reference(xr: F32, center: F32) -> tuple[Bool, F64, F64, F64]:
    """1-bit RaBitQ of rotated rows ``xr (n, d)`` around ``center (d,)``: sign bits ``(n, d)``
    and the factors ``|r|``, ``<o_bar, o>`` and ``<c, r>`` (each ``(n,)``)."""
    r = xr.astype(np.float64) - center.astype(np.float64)
    norm = np.linalg.norm(r, axis=1)
    bits = r > 0
    d = xr.shape[1]
    dot = np.abs(r).sum(axis=1) / np.sqrt(d) / np.where(norm > 0, norm, 1.0)
    return bits, norm, dot, r @ center.astype(np.float64)


def estimate(qr: F32, center: F32, bits: Bool, norm: F64, dot: F64, c_dot_r: F64) -> F64:
    """Estimated ``<x, q> (nq, n)`` for rotated queries ``qr (nq, d)`` (see the module doc).

    >>> rng = np.random.default_rng(0)
    >>> x, q, c = rng.standard_normal((3, 4)), rng.standard_normal((1, 4)), np.zeros(4)
    >>> b, nrm, dot, cr = encode_reference(np.sign(x), c)  # rows on the code's own corners
    >>> bool(np.allclose(estimate(q, c, b, nrm, dot, cr), q @ np.sign(x).T))
    True
    """
    d = qr.shape[1]
    q64, c64 = qr.astype(np.float64), center.astype(np.float64)
    o_bar = np.where(bits, 1.0, -1.0) / np.sqrt(d)
    ratio = ((q64 - c64) @ o_bar.T) / np.where(dot > 0, dot, 1.0)
    out: F64 = (q64 @ c64)[:, None] + c_dot_r[None, :] + norm[None, :] * ratio
    return out


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """faiss's OpenMP threads for this thread's next calls (``0``: leave them). faiss scans a
    binary index in parallel over *queries*, so one query gains nothing from a second thread,
    and on a busy box the idle thread's barrier stalls it: ``IndexBinaryFlat`` over 57k codes
    took 70-100 ms on 2 threads vs 0.2 ms on 1 (``index/BINARY_NOTES.md``). OpenMP keeps the
    thread count per calling thread, so concurrent searches on other threads are unaffected."""
    if n <= 0:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def overfetch(
    search: Callable[[Any, int], tuple[Any, Any]],
    queries: np.ndarray[Any, Any],
    depth: int,
    allowed: Bool,
    n_allowed: int,
    n: int,
) -> tuple[F32, I64]:
    """Best ``depth`` allowed rows per query from an unfiltered ``search(queries, fetch) ->
    (scores, rows)``, fetching ``depth * n / n_allowed`` (x ``FETCH_SLACK``) and 4x more for
    the queries left short, up to ``n``; ``(scores, rows) (nq, depth)``, ``-1`` pads."""
    nq = len(queries)
    out_s = np.full((nq, depth), -np.inf, dtype=np.float32)
    out_r = np.full((nq, depth), -1, dtype=np.int64)
    pending = np.arange(nq)
    fetch = min(n, int(np.ceil(depth * n / max(1, n_allowed) * FETCH_SLACK)) + 16)
    while len(pending):
        d_, i_ = search(np.ascontiguousarray(queries[pending]), fetch)
        rows = np.asarray(i_, dtype=np.int64)
        ok = (rows >= 0) & allowed[np.maximum(rows, 0)]
        first = np.argsort(~ok, axis=1, kind="stable")[:, :depth]  # allowed rows, in order
        keep = np.take_along_axis(ok, first, axis=1)
        got_r = np.where(keep, np.take_along_axis(rows, first, axis=1), -1)
        got_s = np.where(keep, np.take_along_axis(np.asarray(d_), first, axis=1), -np.inf)
        w = got_r.shape[1]
        out_r[pending, :w], out_s[pending, :w] = got_r, got_s
        done = (keep.sum(axis=1) >= min(depth, n_allowed)) | (fetch >= n)
        pending = pending[~done]
        fetch = min(n, fetch * 4)
    return out_s, out_r


def bitmap(allowed: Bool) -> Any:
    """faiss ``IDSelectorBitmap`` admitting the rows where ``allowed (n,)`` is True."""
    return faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))


class RaBitQCodec:
    """Seeded rotation + faiss RaBitQ fast-scan (inner product) of ``bits`` per dim: one centre
    (``IndexRaBitQFastScan``) or ``centroids`` k-means cells (``IndexIVFRaBitQFastScan``)."""

    def __init__(
        self, dim: int, bits: int, seed: int, centroids: int = 1, scan_all: bool = True
    ) -> None:
        self.dim, self.bits, self.seed = dim, bits, seed
        self.centroids, self.scan_all = centroids, scan_all
        self.rotation: F32 = random_orthogonal(np.random.default_rng(seed), dim).astype(np.float32)
        self.index: Any = None
        self.lists = 0  # cells actually trained (0: single centre)

    @property
    def trained(self) -> bool:
        return self.index is not None

    def rotate(self, x: F32) -> F32:
        out: F32 = np.ascontiguousarray(x @ self.rotation.T, dtype=np.float32)
        return out

    def train(self, sample: F32) -> None:
        """Learn the centre (faiss: the mean of the rotated sample), or the k-means cells."""
        ip = faiss.METRIC_INNER_PRODUCT
        if self.centroids == 1 and self.scan_all:
            index = faiss.IndexRaBitQFastScan(self.dim, ip, BBS, self.bits)
        else:
            self.lists = max(1, min(self.centroids, len(sample) // MIN_TRAIN_PER_LIST))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFRaBitQFastScan(
                quantizer, self.dim, self.lists, ip, BBS, True, self.bits
            )
            index.cp.seed, index.cp.niter = self.seed, KMEANS_ITERS
            index.cp.max_points_per_centroid = KMEANS_SAMPLE_PER_LIST
            self.quantizer = quantizer  # faiss's index does not own it until saved/loaded
        index.train(self.rotate(sample))
        self.index = index

    def add(self, x: F32) -> None:
        self.index.add(self.rotate(x))

    @property
    def center(self) -> F32:
        out: F32 = faiss.vector_to_array(self.index.center).astype(np.float32)
        return out

    def code_bytes(self) -> float:
        """Bytes per row of codes and factors as faiss stores them (blocks of 32 rows; with
        cells, each cell's last block is padded and every row has an 8-byte list id)."""
        index = self.index
        if index is None:
            return 0.0
        n = int(index.ntotal)
        if self.lists == 0:
            return float(index.codes.size()) / n if n else float(index.code_size)
        inv = faiss.downcast_InvertedLists(index.invlists)
        blocks = sum(-(-inv.list_size(i) // inv.n_per_block) for i in range(self.lists))
        if n == 0:
            return float(index.code_size + 8)
        return float(blocks * inv.block_size) / n + 8.0

    def search(
        self, queries: F32, depth: int, allowed: Bool | None, n_allowed: int, nprobe: int = 0
    ) -> tuple[F32, I64]:
        """Best ``depth`` rows by estimate, ``(scores, rows) (nq, depth)`` with ``-1`` pads;
        ``allowed (n,)`` masks rows (tombstones, filters), ``n_allowed`` its count; ``nprobe``
        cells are scanned when the codec has cells and does not ``scan_all``."""
        qr = self.rotate(queries)
        n = int(self.index.ntotal)
        if self.lists:
            params = faiss.IVFSearchParameters()
            params.nprobe = self.lists if self.scan_all else max(1, min(nprobe, self.lists))
            if allowed is not None:
                params.sel = bitmap(allowed)
            with omp_threads(1 if len(qr) < faiss.omp_get_max_threads() else 0):
                d_, i_ = self.index.search(qr, depth, params=params)
            return np.asarray(d_, dtype=np.float32), np.asarray(i_, dtype=np.int64)
        if allowed is None:
            d_, i_ = self.index.search(qr, depth)
            return np.asarray(d_, dtype=np.float32), np.asarray(i_, dtype=np.int64)
        return overfetch(self.index.search, qr, depth, allowed, n_allowed, n)

    def save(self, path: Path, write_npy: Any) -> None:
        write_npy(path / "rotation.npy", self.rotation)
        if self.index is None:
            return
        tmp = path / "codes.faiss.tmp"
        faiss.write_index(self.index, str(tmp))
        tmp.replace(path / "codes.faiss")

    def meta(self) -> dict[str, Any]:
        return {"lists": self.lists}

    def load(self, path: Path, meta: dict[str, Any]) -> None:
        self.rotation = np.load(path / "rotation.npy")
        self.lists = int(meta.get("lists", 0))
        if (path / "codes.faiss").exists():
            self.index = faiss.read_index(str(path / "codes.faiss"))
