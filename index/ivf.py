"""Approximate MIPS on faiss inverted lists (``IndexIVFFlat`` with an ``IndexFlatIP`` quantizer).

Training: :meth:`IVFIndex.train` on a sample, or else implicitly on the first :meth:`IVFIndex.add`
(on the vectors given; later adds reuse those centroids). k-means runs with faiss's clustering
seed set from ``seed`` on a seeded subsample of at most ``256 * nlist`` of the training vectors,
so the same data and seed build the same index.

**The spec's ``nlist`` is an upper bound.** The lists actually trained are::

    min(nlist, max(1, m // MIN_TRAIN_PER_LIST), max(1, n // MIN_POINTS_PER_LIST))

for ``m`` training vectors and ``n`` vectors the index is meant to hold (``n_total`` given to
:meth:`~IVFIndex.train`, otherwise ``m``: the training vectors are taken to be the data). The first
bound is faiss's k-means floor (39 points per centroid); the second keeps lists at 256 vectors or
more, because with 39-vector lists ``nprobe=16`` scans so little of a small segment that recall
collapses (3,000 x 24 Gaussian MIPS data: recall@10 0.76 with ``n // 39`` = 76 lists, 1.0 with 11).
The effective value is kept (:attr:`IVFIndex.nlist`, ``index.json``); the spec string stays as
given so it round-trips. From 262,144 vectors (``256 * 1024``) the default ``nlist`` is used as is.

``nprobe`` is applied per search (never above the effective ``nlist``). A query whose probed
lists hold fewer than ``k`` admissible vectors is re-run over every list (exact), and small
allowed sets are searched exactly; see :mod:`index.hnsw` for the shared row/tombstone layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import faiss as _faiss
import numpy as np

from index.base import F32, I64, check_vectors
from index.hnsw import FaissIndex, faiss_result

#: faiss as ``Any``: the stubs bundled since faiss 1.15 lack ``SearchParametersHNSW`` and the
#: Python wrapper's keyword and array constructors (older faiss has no stubs at all).
faiss: Any = _faiss

#: Fewest vectors per inverted list when the data is too small for the spec's ``nlist``.
MIN_POINTS_PER_LIST = 256
#: Fewest training vectors per centroid (faiss's k-means ``min_points_per_centroid``).
MIN_TRAIN_PER_LIST = 39
#: k-means training sample cap, per list (faiss's ``max_points_per_centroid``).
MAX_TRAIN_PER_LIST = 256


@dataclass(frozen=True)
class IVFParams:
    """``nlist``: inverted lists (an upper bound, see the module docstring); ``nprobe``: lists
    scanned per query; ``seed``: k-means and training-sample seed."""

    nlist: int = 1024
    nprobe: int = 16
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.nlist < 1 or self.nprobe < 1:
            raise ValueError("nlist and nprobe must be >= 1")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be in [0, 2**31), got {self.seed}")


class IVFSearch:
    """The searches of a faiss IVF index (IVF-Flat here, IVF-PQ in :mod:`index.muvera_pq`):
    ``nprobe`` lists, or every list for an exhaustive pass, filtered by ``sel``."""

    _faiss: Any
    _nlist: int
    params: Any

    def _search_approx(self, queries: F32, k: int, sel: Any, **knobs: int) -> tuple[F32, I64]:
        nprobe = min(int(knobs.get("nprobe") or self.params.nprobe), self._nlist)
        params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
        return faiss_result(*self._faiss.search(queries, k, params=params))

    def _search_exact(self, queries: F32, k: int, sel: Any) -> tuple[F32, I64]:
        # Every list probed: an exhaustive scan, filtered by ``sel`` before any score.
        params = faiss.SearchParametersIVF(nprobe=self._nlist, sel=sel)
        return faiss_result(*self._faiss.search(queries, k, params=params))


class IVFIndex(IVFSearch, FaissIndex):
    """Inner-product IVF-Flat over tombstoned rows; trained on the first add."""

    NAME: ClassVar[str] = "IVF"
    Params: ClassVar[type[Any]] = IVFParams
    KNOBS: ClassVar[tuple[str, ...]] = ("nprobe",)

    def __init__(self, dim: int, params: IVFParams | None = None) -> None:
        super().__init__(dim, params)
        self._nlist = 0  # effective number of lists, 0 until trained

    @property
    def nlist(self) -> int:
        """Lists actually trained (0 before training); at most the spec's ``nlist``."""
        return self._nlist

    def train(self, vectors: F32, n_total: int | None = None) -> None:
        """Train the coarse quantizer on ``vectors (m, d) float32`` before any :meth:`add`.

        ``n_total`` is how many vectors the index will hold (default ``m``); it only caps the
        effective ``nlist`` (see the module docstring). Training again replaces the centroids.
        """
        vectors = check_vectors(vectors, self._dim)
        if self._n:
            raise ValueError("IVF: train() after add(): the inverted lists are already filled")
        if len(vectors) == 0:
            raise ValueError("IVF: train() needs at least one vector")
        self._faiss = self._train(vectors, len(vectors) if n_total is None else n_total)

    def _add_vectors(self, vectors: F32) -> None:
        if self._faiss is None:
            self._faiss = self._train(vectors, len(vectors))
        self._faiss.add(vectors)

    def _train(self, x: F32, n_total: int) -> Any:
        p: IVFParams = self.params
        m, d = x.shape
        nlist = min(
            p.nlist, max(1, m // MIN_TRAIN_PER_LIST), max(1, n_total // MIN_POINTS_PER_LIST)
        )
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = p.seed
        if nlist == 1:
            # One list holds everything: any centroid will do, no k-means (and no faiss warning).
            quantizer.add(x.mean(axis=0, keepdims=True))
            ivf.is_trained = True
        else:
            cap = MAX_TRAIN_PER_LIST * nlist
            if m > cap:
                rng = np.random.default_rng(p.seed)
                x = x[np.sort(rng.choice(m, size=cap, replace=False))]
            ivf.train(x)
        self._nlist = nlist
        return ivf

    def _faiss_nbytes(self) -> int:
        if self._faiss is None:
            return 0
        n = int(self._faiss.ntotal)
        return n * (self._dim * 4 + 8) + self._nlist * self._dim * 4

    def _meta(self) -> dict[str, Any]:
        return {"nlist_effective": self._nlist}

    def _restore(self, meta: dict[str, Any], native: Any) -> None:
        self._faiss = native
        self._nlist = 0 if native is None else int(native.nlist)
