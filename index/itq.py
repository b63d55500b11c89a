"""Sign and ITQ codes for :mod:`index.binary`: norm-augmented residuals (see :mod:`index.codes`)
projected to ``L`` hyperplanes, one bit each, ranked by Hamming distance in faiss
``IndexBinaryFlat`` (popcount, filters applied while scanning).

* ``sign``: the hyperplanes are the rows of seeded random rotations of ``d + 1`` dims
  (``L = bits * d``; past ``d + 1`` rows a fresh rotation is stacked).
* ``itq``: PCA of the centred training residuals, then Gong & Lazebnik's learned rotation
  (``ITQ_ITERS`` iterations on at most ``ITQ_SAMPLE`` rows, seeded), ``L = d``; each learned
  direction keeps the norm-coordinate weight the random rotation would give it
  (:func:`~index.codes.itq_projection`).

The query code is ``sign(q / |q| @ W)``; the Hamming distance maps back to an inner-product
estimate with :func:`~index.codes.hamming_to_ip`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from index.base import F32, I64, Bool
from index.codes import (
    augment,
    fit_itq,
    hamming_to_ip,
    itq_projection,
    sign_codes,
    stacked_rotations,
    unit_queries,
)
from index.flat import _blas

#: faiss as ``Any`` (partial stubs since 1.15; see :mod:`index.hnsw`).
faiss: Any = _faiss

#: ITQ iterations and the cap on the rows it trains on (the mean and ``M`` use every row).
ITQ_ITERS = 50
ITQ_SAMPLE = 10_000


@contextmanager
def _omp_threads(n: int) -> Iterator[None]:
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


class HammingCodec:
    """Sign or ITQ bits of the norm-augmented residual, searched by Hamming distance."""

    def __init__(self, dim: int, encoding: str, bits: int, seed: int) -> None:
        self.dim, self.encoding, self.seed = dim, encoding, seed
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
        d = self.dim
        rng = np.random.default_rng(self.seed)
        mean = sample.astype(np.float64).mean(axis=0)
        r = sample.astype(np.float64) - mean
        norm = float(np.sqrt(np.einsum("ij,ij->i", r, r).max()))
        self.mean = mean.astype(np.float32)
        self.max_norm = norm if norm > 0 else 1.0
        planes = stacked_rotations(rng, self.code_bits, d + 1)  # (L, d + 1)
        if self.encoding == "sign":
            self.projection = np.ascontiguousarray(planes.T, dtype=np.float32)
        else:
            if len(r) > ITQ_SAMPLE:
                r = r[np.sort(rng.choice(len(r), ITQ_SAMPLE, replace=False))]
            cov = r.T @ r
            with _blas.single_threaded():  # (d, d) eigh: faster on one thread
                _, vecs = np.linalg.eigh(cov)
            pca = vecs[:, ::-1]  # principal directions, largest variance first
            rot, self.itq_loss = fit_itq(r @ pca, rng, ITQ_ITERS)
            self.pca, self.itq_rotation = pca.astype(np.float32), rot.astype(np.float32)
            proj = itq_projection(pca, rot, planes[:, d])
            self.projection = np.ascontiguousarray(proj, dtype=np.float32)
        self.index = faiss.IndexBinaryFlat(8 * -(-self.code_bits // 8))

    def encode(self, x: F32) -> Any:
        return sign_codes(augment(x, self.mean, self.max_norm), self.projection)

    def add(self, x: F32) -> None:
        self.index.add(self.encode(x))

    def code_bytes(self) -> float:
        return float(-(-self.code_bits // 8))

    def search(
        self, queries: F32, depth: int, allowed: Bool | None, n_allowed: int
    ) -> tuple[F32, I64]:
        """Best ``depth`` rows by Hamming distance, as inner-product estimates; ``(scores,
        rows) (nq, depth)`` with ``-1`` pads. ``allowed (n,)`` masks rows while scanning."""
        codes = sign_codes(unit_queries(queries), self.projection)
        params = None
        if allowed is not None:
            sel = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
            params = faiss.SearchParameters(sel=sel)
        with _omp_threads(1 if len(codes) < faiss.omp_get_max_threads() else 0):
            dist, rows = self.index.search(codes, depth, params=params)
        rows = np.asarray(rows, dtype=np.int64)
        est = hamming_to_ip(np.asarray(dist), self.code_bits, queries, self.mean, self.max_norm)
        return np.where(rows >= 0, est, -np.inf).astype(np.float32), rows

    def meta(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm, "code_bits": self.code_bits, "itq_loss": self.itq_loss}

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
        self.mean = np.load(path / "mean.npy")
        self.projection = np.load(path / "projection.npy")
        if (path / "pca.npy").exists():
            self.pca = np.load(path / "pca.npy")
            self.itq_rotation = np.load(path / "itq_rotation.npy")
        if (path / "codes.faiss").exists():
            self.index = faiss.read_index_binary(str(path / "codes.faiss"))
