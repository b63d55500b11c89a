"""Sign and ITQ codes for :mod:`index.binary`: norm-augmented residuals (see :mod:`index.codes`)
projected to ``L`` hyperplanes, one bit each, ranked by Hamming distance in faiss
``IndexBinaryFlat`` (popcount, filters applied while scanning).

* ``sign``: the hyperplanes are the rows of seeded random rotations of ``d + 1`` dims
  (``L = bits * d``; past ``d + 1`` rows a fresh rotation is stacked).
* ``itq``: PCA of the centred training residuals, then Gong & Lazebnik's learned rotation
  (``ITQ_ITERS`` iterations at most, fewer once the loss settles (``ITQ_TOL``) or the bits
  stop flipping (``ITQ_FLIPS``), on at most ``ITQ_SAMPLE`` rows, seeded), ``L = d``; each learned
  direction keeps the norm-coordinate weight the random rotation would give it
  (:func:`~index.codes.itq_projection`).

The query code is ``sign(q / |q| @ W)``; the Hamming distance maps back to an inner-product
estimate with :func:`~index.codes.hamming_to_ip`.

Backends: ``flat`` scans every code (``IndexBinaryFlat``, filters applied while scanning);
``hnsw`` walks a graph over the codes (``IndexBinaryHNSW``, ``m`` links, ``efSearch =
max(depth, ef_search)``, filters applied while walking); ``ivf`` scans the ``nprobe`` of
``lists`` Hamming k-means cells nearest the query code (``IndexBinaryIVF``; faiss 1.15 takes no
selector there, so filters over-fetch like :func:`~index.rabitq.overfetch`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from index.base import F32, I64, Bool
from index.codes import (
    augmented_codes,
    fit_itq,
    hamming_to_ip,
    itq_projection,
    sign_codes,
    stacked_rotations,
    unit_queries,
)
from index.flat import _blas
from index.rabitq import (
    KMEANS_ITERS,
    KMEANS_SAMPLE_PER_LIST,
    MIN_TRAIN_PER_LIST,
    bitmap,
    omp_threads,
    overfetch,
)

#: faiss as ``Any`` (partial stubs since 1.15; see :mod:`index.hnsw`).
faiss: Any = _faiss

#: ITQ iterations and the cap on the rows it trains on (the mean and ``M`` use every row).
ITQ_ITERS = 50
#: ... stopping early once an iteration lowers the loss by less than this fraction of it,
ITQ_TOL = 2e-4
#: ... or flips fewer than this fraction of the sample's bits (14 iterations on the clustered
#: synthetic set instead of 50: recall within the seed spread, ``index/BINARY_NOTES.md``).
ITQ_FLIPS = 0.005
ITQ_SAMPLE = 10_000


class HammingCodec:
    """Sign or ITQ bits of the norm-augmented residual, searched by Hamming distance."""

    def __init__(
        self,
        dim: int,
        encoding: str,
        bits: int,
        seed: int,
        backend: str = "flat",
        centroids: int = 1,
        m: int = 32,
    ) -> None:
        self.dim, self.encoding, self.seed = dim, encoding, seed
        self.backend, self.centroids, self.m = backend, centroids, m
        self.lists = 0  # Hamming k-means cells actually trained (ivf)
        self.code_bits = bits * dim if encoding == "sign" else dim
        self.mean: F32 = np.zeros(dim, dtype=np.float32)
        self.max_norm = 1.0
        self.projection: F32 = np.zeros((dim + 1, self.code_bits), dtype=np.float32)
        self.pca: F32 | None = None
        self.itq_rotation: F32 | None = None
        self.itq_loss: list[float] = []
        self.index: Any = None

    @property
    def trained(self) -> bool:
        return self.index is not None

    def train(self, sample: F32) -> None:
        """Learn the mean, the norm scale ``M`` and the hyperplanes from ``sample (m, d)``."""
        d = self.dim
        rng = np.random.default_rng(self.seed)
        mean = sample.mean(axis=0, dtype=np.float64)  # the same sums as a float64 copy's mean
        # The largest residual norm, found in float32 and re-measured in float64: no (m, d)
        # float64 copy (1.1 of 5 s of ITQ training on the real set).
        r32 = sample - mean.astype(np.float32)
        top = sample[int(np.argmax(np.einsum("ij,ij->i", r32, r32)))].astype(np.float64) - mean
        norm = float(np.sqrt(top @ top))
        del r32
        self.mean = mean.astype(np.float32)
        self.max_norm = norm if norm > 0 else 1.0
        planes = stacked_rotations(rng, self.code_bits, d + 1)  # (L, d + 1)
        if self.encoding == "sign":
            self.projection = np.ascontiguousarray(planes.T, dtype=np.float32)
        else:
            rows = np.arange(len(sample))
            if len(rows) > ITQ_SAMPLE:
                rows = np.sort(rng.choice(len(rows), ITQ_SAMPLE, replace=False))
            r = sample[rows].astype(np.float64) - mean  # (s, d)
            cov = r.T @ r
            with _blas.single_threaded():  # (d, d) eigh: faster on one thread
                _, vecs = np.linalg.eigh(cov)
            pca = vecs[:, ::-1]  # principal directions, largest variance first
            rot, self.itq_loss = fit_itq(r @ pca, rng, ITQ_ITERS, ITQ_TOL, ITQ_FLIPS)
            self.pca, self.itq_rotation = pca.astype(np.float32), rot.astype(np.float32)
            proj = itq_projection(pca, rot, planes[:, d])
            self.projection = np.ascontiguousarray(proj, dtype=np.float32)
        nbits = 8 * -(-self.code_bits // 8)
        if self.backend == "hnsw":
            self.index = faiss.IndexBinaryHNSW(nbits, self.m)
        elif self.backend == "ivf":
            self.lists = max(1, min(self.centroids, len(sample) // MIN_TRAIN_PER_LIST))
            self.quantizer = faiss.IndexBinaryFlat(nbits)
            index = faiss.IndexBinaryIVF(self.quantizer, nbits, self.lists)
            index.cp.seed, index.cp.niter = self.seed, KMEANS_ITERS
            index.cp.max_points_per_centroid = KMEANS_SAMPLE_PER_LIST
            index.train(self.encode(sample))
            self.index = index
        else:
            self.index = faiss.IndexBinaryFlat(nbits)

    def encode(self, x: F32) -> Any:
        return augmented_codes(x, self.mean, self.max_norm, self.projection)

    def add(self, x: F32) -> None:
        self.index.add(self.encode(x))

    def code_bytes(self) -> float:
        """Code bytes per row, plus the graph's links (hnsw: 4 bytes per neighbour slot, a level
        and an offset per row) or the lists' 8-byte ids (ivf)."""
        codes = float(-(-self.code_bits // 8))
        n = int(self.index.ntotal) if self.index is not None else 0
        if self.backend == "hnsw" and n:
            hnsw = self.index.hnsw
            links = hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8
            return codes + float(links) / n
        return codes + (8.0 if self.backend == "ivf" else 0.0)

    def search(
        self, queries: F32, depth: int, allowed: Bool | None, n_allowed: int, probe: int = 0
    ) -> tuple[F32, I64]:
        """Best ``depth`` rows by Hamming distance, as inner-product estimates; ``(scores,
        rows) (nq, depth)`` with ``-1`` pads. ``allowed (n,)`` masks rows; ``probe`` is the
        ivf backend's ``nprobe`` or the hnsw backend's ``ef_search``."""
        codes = sign_codes(unit_queries(queries), self.projection)
        n = int(self.index.ntotal)
        with omp_threads(1 if len(codes) < faiss.omp_get_max_threads() else 0):
            if self.backend == "ivf":
                params = faiss.IVFSearchParameters()
                params.nprobe = max(1, min(probe, self.lists))

                def run(c: Any, fetch: int) -> tuple[Any, Any]:
                    dist_, rows_ = self.index.search(c, fetch, params=params)
                    return dist_, rows_

                if allowed is None:
                    dist, rows = run(codes, depth)
                else:
                    dist, rows = overfetch(run, codes, depth, allowed, n_allowed, n)
                    dist = np.where(rows >= 0, dist, 0)
            else:
                if self.backend == "hnsw":
                    params = faiss.SearchParametersHNSW()
                    params.efSearch = max(depth, probe)
                else:
                    params = faiss.SearchParameters()
                if allowed is not None:
                    params.sel = bitmap(allowed)
                dist, rows = self.index.search(codes, depth, params=params)
        rows = np.asarray(rows, dtype=np.int64)
        est = hamming_to_ip(np.asarray(dist), self.code_bits, queries, self.mean, self.max_norm)
        return np.where(rows >= 0, est, -np.inf).astype(np.float32), rows

    def meta(self) -> dict[str, Any]:
        return {
            "max_norm": self.max_norm,
            "code_bits": self.code_bits,
            "itq_loss": self.itq_loss,
            "lists": self.lists,
        }

    def save(self, path: Path, write_npy: Any) -> None:
        write_npy(path / "mean.npy", self.mean)
        write_npy(path / "projection.npy", self.projection)
        if self.pca is not None and self.itq_rotation is not None:
            write_npy(path / "pca.npy", self.pca)
            write_npy(path / "itq_rotation.npy", self.itq_rotation)
        if self.index is not None:
            tmp = path / "codes.faiss.tmp"
            faiss.write_index_binary(self.index, str(tmp))
            tmp.replace(path / "codes.faiss")

    def load(self, path: Path, meta: dict[str, Any]) -> None:
        self.max_norm = float(meta["max_norm"])
        self.itq_loss = [float(v) for v in meta.get("itq_loss", [])]
        self.lists = int(meta.get("lists", 0))
        self.mean = np.load(path / "mean.npy")
        self.projection = np.load(path / "projection.npy")
        if (path / "pca.npy").exists():
            self.pca = np.load(path / "pca.npy")
            self.itq_rotation = np.load(path / "itq_rotation.npy")
        if (path / "codes.faiss").exists():
            self.index = faiss.read_index_binary(str(path / "codes.faiss"))
