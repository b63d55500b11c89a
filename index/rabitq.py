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

**Filters.** faiss 1.15's fast-scan search takes no ``IDSelector``; :meth:`RaBitQCodec.search`
over-fetches by ``n / allowed`` and drops rows outside the mask, retrying the queries that
come back short with 4x more (up to every row, which is then complete).
"""

from __future__ import annotations

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


class RaBitQCodec:
    """Seeded rotation + faiss ``IndexRaBitQFastScan`` (inner product) of ``bits`` per dim."""

    def __init__(self, dim: int, bits: int, seed: int) -> None:
        self.dim, self.bits = dim, bits
        self.rotation: F32 = random_orthogonal(np.random.default_rng(seed), dim).astype(np.float32)
        self.index: Any = None

    @property
    def trained(self) -> bool:
        return self.index is not None

    def rotate(self, x: F32) -> F32:
        out: F32 = np.ascontiguousarray(x @ self.rotation.T, dtype=np.float32)
        return out

    def train(self, sample: F32) -> None:
        """Learn the centre (faiss: the mean of the rotated sample)."""
        index = faiss.IndexRaBitQFastScan(self.dim, faiss.METRIC_INNER_PRODUCT, BBS, self.bits)
        index.train(self.rotate(sample))
        self.index = index

    def add(self, x: F32) -> None:
        self.index.add(self.rotate(x))

    @property
    def center(self) -> F32:
        out: F32 = faiss.vector_to_array(self.index.center).astype(np.float32)
        return out

    def code_bytes(self) -> float:
        """Bytes per row of codes and factors as faiss stores them (blocks of 32 rows)."""
        n = int(self.index.ntotal) if self.index is not None else 0
        if n == 0:
            return float(self.index.code_size) if self.index is not None else 0.0
        return float(self.index.codes.size()) / n

    def search(
        self, queries: F32, depth: int, allowed: Bool | None, n_allowed: int
    ) -> tuple[F32, I64]:
        """Best ``depth`` rows by estimate, ``(scores, rows) (nq, depth)`` with ``-1`` pads;
        ``allowed (n,)`` masks rows (tombstones, filters), ``n_allowed`` its count."""
        qr = self.rotate(queries)
        n = int(self.index.ntotal)
        if allowed is None:
            d_, i_ = self.index.search(qr, depth)
            return np.asarray(d_, dtype=np.float32), np.asarray(i_, dtype=np.int64)
        nq = len(qr)
        out_s = np.full((nq, depth), -np.inf, dtype=np.float32)
        out_r = np.full((nq, depth), -1, dtype=np.int64)
        pending = np.arange(nq)
        fetch = min(n, int(np.ceil(depth * n / max(1, n_allowed) * FETCH_SLACK)) + 16)
        while len(pending):
            d_, i_ = self.index.search(np.ascontiguousarray(qr[pending]), fetch)
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

    def save(self, path: Path, write_npy: Any) -> None:
        write_npy(path / "rotation.npy", self.rotation)
        if self.index is None:
            return
        tmp = path / "codes.faiss.tmp"
        faiss.write_index(self.index, str(tmp))
        tmp.replace(path / "codes.faiss")

    def meta(self) -> dict[str, Any]:
        return {}

    def load(self, path: Path, meta: dict[str, Any]) -> None:
        self.rotation = np.load(path / "rotation.npy")
        if (path / "codes.faiss").exists():
            self.index = faiss.read_index(str(path / "codes.faiss"))
