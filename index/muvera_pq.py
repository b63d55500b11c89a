"""Product-quantised inner index for MUVERA FDEs: ``Muvera(...),PQ(m=...,nbits=8),MaxSim(...)``.

faiss ``IndexIVFPQ`` (inner product) over the FDEs, ``nlist=1`` by default: one inverted list,
so every search scans every code (an exhaustive PQ scan) and, unlike ``IndexPQ``, takes faiss's
ID selectors, hence tombstones and filters work as for HNSW and IVF (row bookkeeping in
:class:`~index.hnsw.FaissIndex`). ``m`` sub-quantizers of ``nbits`` bits: ``m * nbits / 8`` bytes
per document instead of ``4 * fde_dim``; the default ``m=0`` means ``fde_dim / 8`` (8 dims per
sub-quantizer, 1 byte each: 32x smaller, 1,280 B instead of 40 KB for the default preset).
``nlist > 1`` adds a coarse quantizer (``nprobe`` lists scanned, as :mod:`index.ivf`).

PQ scores only choose the candidates that MuVERA re-ranks by exact MaxSim, so what counts is
recall after the re-rank (measured in ``bench/muvera.py``, recorded in ``index/MUVERA_NOTES.md``).

Training: :meth:`PQIndex.train`, or else the first :meth:`~PQIndex.add` trains on the vectors
given (the background build's first chunk of documents): a seeded subsample of at most
:data:`MAX_TRAIN` rows, :data:`NITER` k-means iterations per sub-quantizer, one OpenMP thread.
With fewer than ``2**nbits`` training vectors the codebooks get ``floor(log2(n))`` bits instead
(``nbits_effective`` in ``index.json``): a tiny first add still builds an index, with coarser
codes. Only Muvera composes this index (it is not a top-level spec: its default ``m`` is sized
for FDEs, and PQ alone gives no exact scores).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import faiss as _faiss
import numpy as np

from index.base import F32, Index, check_vectors
from index.hnsw import FaissIndex
from index.ivf import MIN_TRAIN_PER_LIST, IVFSearch
from index.params import SpecError, bind
from index.spec import index_factory, parse_spec

faiss: Any = _faiss

#: Training rows at most (a seeded subsample): 16 per 8-bit centroid.
MAX_TRAIN = 4096
#: k-means iterations per sub-quantizer (faiss's default is 25).
NITER = 10


@dataclass(frozen=True)
class PQParams:
    """``m``: sub-quantizers (0: ``dim / 8``; must divide ``dim``); ``nbits``: bits per code;
    ``nlist``/``nprobe``: coarse lists and lists scanned (1/1: one exhaustive list);
    ``seed``: k-means and training-sample seed."""

    m: int = 0
    nbits: int = 8
    nlist: int = 1
    nprobe: int = 1
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.m < 0 or not 1 <= self.nbits <= 16:
            raise ValueError("m must be >= 0 and nbits in [1, 16]")
        if self.nlist < 1 or self.nprobe < 1:
            raise ValueError("nlist and nprobe must be >= 1")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be in [0, 2**31), got {self.seed}")


class PQIndex(IVFSearch, FaissIndex):
    """Inner-product IVF-PQ over tombstoned rows; trained on the first add."""

    NAME: ClassVar[str] = "PQ"
    Params: ClassVar[type[Any]] = PQParams
    KNOBS: ClassVar[tuple[str, ...]] = ("nprobe",)

    def __init__(self, dim: int, params: PQParams | None = None) -> None:
        super().__init__(dim, params)
        p: PQParams = self.params
        self.m = p.m or _divisor_at_most(dim, max(1, dim // 8))
        if dim % self.m:
            raise SpecError(f"PQ: m={self.m} must divide the dimension {dim}")
        self._nlist = 0  # effective lists, 0 until trained
        self._nbits = 0  # effective bits per code, 0 until trained

    @property
    def trained(self) -> bool:
        return self._faiss is not None

    def train(self, vectors: F32, n_total: int | None = None) -> None:
        """Train the codebooks (and coarse quantizer) on ``vectors (m, d) float32``."""
        vectors = check_vectors(vectors, self._dim)
        if self._n:
            raise ValueError("PQ: train() after add(): the codes are already written")
        if len(vectors) == 0:
            raise ValueError("PQ: train() needs at least one vector")
        self._faiss = self._train(vectors)

    def _add_vectors(self, vectors: F32) -> None:
        if self._faiss is None:
            self._faiss = self._train(vectors)
        self._faiss.add(vectors)

    def _train(self, x: F32) -> Any:
        p: PQParams = self.params
        if len(x) > MAX_TRAIN:
            rng = np.random.default_rng(p.seed)
            x = x[np.sort(rng.choice(len(x), size=MAX_TRAIN, replace=False))]
        n, d = x.shape
        nbits = min(p.nbits, max(1, n.bit_length() - 1))  # 2**nbits <= n (one point: 1 bit)
        nlist = min(p.nlist, max(1, n // MIN_TRAIN_PER_LIST))
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, nlist, self.m, nbits, faiss.METRIC_INNER_PRODUCT)
        for cp in (ivf.cp, ivf.pq.cp):
            cp.seed = p.seed
            cp.min_points_per_centroid = 1  # small samples are expected (see above): no warning
        ivf.pq.cp.niter = NITER
        if n < (1 << nbits):  # one training vector: 1-bit codes need two points
            x = np.concatenate([x, -x])
        if nlist == 1:  # one list: its centroid is the mean, no k-means
            quantizer.add(x.mean(axis=0, keepdims=True))
        with _one_omp_thread():
            ivf.train(x)
        self._nlist, self._nbits = nlist, nbits
        return ivf

    def _faiss_nbytes(self) -> int:
        if self._faiss is None:
            return 0
        n = int(self._faiss.ntotal)
        codes = n * (int(self._faiss.code_size) + 8)  # codes + faiss's stored row numbers
        books = self.m * (1 << self._nbits) * (self._dim // self.m) * 4
        return codes + books + self._nlist * self._dim * 4

    def _meta(self) -> dict[str, Any]:
        return {
            "m_effective": self.m,
            "nbits_effective": self._nbits,
            "nlist_effective": self._nlist,
        }

    def _restore(self, meta: dict[str, Any], native: Any) -> None:
        self._faiss = native
        self._nlist = 0 if native is None else int(native.nlist)
        self._nbits = 0 if native is None else int(native.pq.nbits)


@contextmanager
def _one_omp_thread() -> Iterator[None]:
    """faiss's OpenMP on one thread (this thread's setting, restored after). PQ training runs
    one small k-means per sub-quantizer (1,280 for the default FDEs): with two OpenMP threads
    on a busy 2-core box every barrier waits for a descheduled thread, and 1,000 x 10,240
    training vectors took 271 s instead of 27 s."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _divisor_at_most(n: int, cap: int) -> int:
    """The largest divisor of ``n`` that is at most ``cap``."""
    return next(m for m in range(cap, 0, -1) if n % m == 0)


#: Inner indexes only Muvera composes, by spec name (others: :data:`index.spec.REGISTRY`).
INNER: dict[str, type[Any]] = {"PQ": PQIndex}


def inner_class(name: str) -> type[Any]:
    """The class of an inner index part name (``PQ`` here, anything else from the registry)."""
    from index.spec import lookup

    return INNER.get(name) or lookup(name)


def inner_factory(dim: int, spec: str) -> Index:
    """An empty inner index of dimension ``dim``: ``PQ(...)`` here, any other spec through
    :func:`index.spec.index_factory`."""
    parts = parse_spec(spec).parts
    cls = INNER.get(parts[0].name)
    if cls is None:
        return index_factory(dim, spec)
    if len(parts) > 1:
        raise SpecError(f"{parts[0].name} takes no further parts, got {spec!r}")
    index: Index = cls(dim, bind(parts[0].name, cls, parts[0]))
    return index
