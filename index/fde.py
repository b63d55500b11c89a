"""MUVERA Fixed Dimensional Encodings (Dhulipala et al., NeurIPS 2024), vectorised in numpy.

An FDE turns a set of token vectors into one vector whose inner product with another set's FDE
approximates Chamfer similarity ``sum_{q in Q} max_{p in P} <q, p>``. Each of ``r_reps``
repetitions draws ``k_sim`` Gaussian hyperplanes (SimHash), which cut space into
``B = 2**k_sim`` buckets. A query SUMS its tokens per bucket; a document AVERAGES its tokens per
bucket and (``fill="nearest"``) fills each empty bucket with its token whose sign pattern is
nearest in Hamming distance. Each bucket block is projected to ``d_proj`` dims by a random ±1
matrix scaled ``1/sqrt(d_proj)`` (identity when ``d_proj == d``); the blocks are concatenated
repetition-major, then bucket, then coordinate: ``R * B * d_proj`` dims. An optional count-sketch
maps the whole vector to ``d_final`` dims.

Bucket numbering follows the reference implementation (google/graph-mining,
``sketching/point_cloud/fixed_dimensional_encoding.cc``): a token's sign bits, first hyperplane
most significant, are read as a Gray-code word and the bucket is that word's rank in Gray-code
order, so buckets ``b`` and ``b + 1`` are one hyperplane apart. ``gray_encode(b)`` is the sign
pattern of bucket ``b``.

Layout of a batch of sets: ``tokens (N, d) float32`` holds every set's rows back to back and
``offsets (n + 1,) int64`` delimits them (set ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``).
Every random matrix comes from one ``np.random.default_rng(seed)`` (:func:`draw_matrices`) and is
saved with the index, so FDEs never depend on the numpy version that reloads them.

With one bucket and no projection the FDE product is ``sum(Q) . mean(P)`` exactly:

>>> m = draw_matrices(dim=3, k_sim=0, d_proj=3, r_reps=1, seed=0)
>>> q = np.array([[1, 0, 0], [0, 2, 0]], np.float32)
>>> p = np.array([[1, 1, 1], [3, 1, -1]], np.float32)
>>> fq = encode_queries(m, q, np.array([0, 2]))
>>> fd = encode_documents(m, p, np.array([0, 2]))
>>> fq.shape, float(fq[0] @ fd[0]), float(q.sum(0) @ p.mean(0))
((1, 3), 4.0, 4.0)
>>> gray_encode(np.arange(4)), gray_decode(gray_encode(np.arange(8)))
(array([0, 1, 3, 2]), array([0, 1, 2, 3, 4, 5, 6, 7]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from index.base import F32, I64
from index.fde_kernel import Fill, encode, gray_decode, gray_encode

I8 = npt.NDArray[np.int8]

#: Largest ``k_sim``: 2**10 buckets per repetition already makes FDEs of R * 1024 * d_proj dims.
MAX_K_SIM = 10
__all__ = [
    "FDEMatrices",
    "draw_matrices",
    "encode_documents",
    "encode_queries",
    "gray_decode",
    "gray_encode",
    "simhash_buckets",
]


@dataclass(frozen=True, eq=False)
class FDEMatrices:
    """Every random matrix of an FDE.

    Attributes:
        planes: ``(r_reps, d, k_sim) float32`` Gaussian SimHash hyperplane normals.
        signs: ``(r_reps, d, d_proj) int8`` ±1 projection entries, or None for the identity.
        sketch_index: ``(r_reps * 2**k_sim * d_proj,) int64`` count-sketch target of each
            coordinate in ``[0, d_final)``, or None for no final projection.
        sketch_sign: ``(r_reps * 2**k_sim * d_proj,) int8`` ±1 count-sketch signs, or None.
    """

    planes: F32
    signs: I8 | None = None
    sketch_index: I64 | None = None
    sketch_sign: I8 | None = None
    d_final: int = 0
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        r, d, k = self.planes.shape
        if self.signs is not None and self.signs.shape[:2] != (r, d):
            raise ValueError(f"signs {self.signs.shape} do not match planes {self.planes.shape}")
        if (self.sketch_index is None) != (self.sketch_sign is None):
            raise ValueError("sketch_index and sketch_sign come together")
        if self.sketch_index is not None:
            assert self.sketch_sign is not None
            full = r * (1 << k) * self.d_proj
            if self.sketch_index.shape != (full,) or self.sketch_sign.shape != (full,):
                raise ValueError(f"count-sketch arrays must have shape ({full},)")
            if self.d_final <= 0 or self.sketch_index.min(initial=0) < 0:
                raise ValueError("count-sketch needs d_final > 0 and indices in [0, d_final)")
            if self.sketch_index.max(initial=0) >= self.d_final:
                raise ValueError(f"count-sketch index out of range for d_final={self.d_final}")

    @property
    def r_reps(self) -> int:
        return int(self.planes.shape[0])

    @property
    def dim(self) -> int:
        """Token dimension ``d``."""
        return int(self.planes.shape[1])

    @property
    def k_sim(self) -> int:
        return int(self.planes.shape[2])

    @property
    def buckets(self) -> int:
        return 1 << self.k_sim

    @property
    def d_proj(self) -> int:
        return self.dim if self.signs is None else int(self.signs.shape[2])

    @property
    def fde_dim(self) -> int:
        """Output dimension: ``d_final`` if count-sketched, else ``r_reps * 2**k_sim * d_proj``."""
        return self.d_final if self.sketch_index is not None else self.full_dim

    @property
    def full_dim(self) -> int:
        """``r_reps * 2**k_sim * d_proj``, the dimension before any final projection."""
        return self.r_reps * self.buckets * self.d_proj

    def nbytes(self) -> int:
        arrays = (self.planes, self.signs, self.sketch_index, self.sketch_sign)
        return int(sum(a.nbytes for a in arrays if a is not None))

    # Derived float32 operands, computed once (cached_property cannot live on a frozen class).
    def _planes_2d(self) -> F32:
        """``(d, r_reps * k_sim)``: all hyperplanes side by side, one sgemm per chunk."""
        if "planes" not in self._cache:
            r, d, k = self.planes.shape
            self._cache["planes"] = np.ascontiguousarray(
                self.planes.transpose(1, 0, 2).reshape(d, r * k), dtype=np.float32
            )
        out: F32 = self._cache["planes"]
        return out

    def _proj_cols(self) -> F32 | None:
        """``(d, r_reps * d_proj)``: column ``r * d_proj + j`` is coordinate ``j`` of repetition
        ``r``'s scaled ±1 projection, or None for the identity."""
        if self.signs is None:
            return None
        if "proj" not in self._cache:
            r, d, p = self.signs.shape
            scaled = self.signs.astype(np.float32) / np.float32(np.sqrt(p))
            self._cache["proj"] = np.ascontiguousarray(scaled.transpose(1, 0, 2).reshape(d, r * p))
        out: F32 = self._cache["proj"]
        return out

    def _fused_cols(self) -> F32 | None:
        """``(d, r_reps * k_sim [+ r_reps * d_proj])``: the hyperplanes, then (with a projection)
        the scaled ±1 columns, so one sgemm per chunk gives the sign bits and projected tokens;
        None when there is neither (``k_sim == 0`` and no projection)."""
        if "fused" not in self._cache:
            parts = [a for a in (self._planes_2d(), self._proj_cols()) if a is not None]
            cols = sum(a.shape[1] for a in parts)
            self._cache["fused"] = np.ascontiguousarray(np.hstack(parts)) if cols else None
        out: F32 | None = self._cache["fused"]
        return out

    def _gray_table(self) -> I64:
        """``(2**k_sim,)``: bucket of each sign pattern (``gray_decode`` as a lookup table)."""
        if "gray" not in self._cache:
            self._cache["gray"] = gray_decode(np.arange(self.buckets))
        out: I64 = self._cache["gray"]
        return out

    def _warm(self) -> None:
        """Compute every derived operand now (before encoding threads share the cache)."""
        self._fused_cols()
        self._gray_table()
        if self.sketch_index is not None:
            self._sketch_plan()

    def _sketch_plan(self) -> tuple[I64, F32, I64, I64]:
        """Column order grouping equal targets, signs in that order, group starts, targets."""
        if "sketch" not in self._cache:
            assert self.sketch_index is not None and self.sketch_sign is not None
            order = np.argsort(self.sketch_index, kind="stable").astype(np.int64)
            target = self.sketch_index[order]
            starts = np.flatnonzero(np.r_[True, target[1:] != target[:-1]]).astype(np.int64)
            signs = self.sketch_sign[order].astype(np.float32)
            self._cache["sketch"] = (order, signs, starts, target[starts])
        plan: tuple[I64, F32, I64, I64] = self._cache["sketch"]
        return plan


def draw_matrices(
    dim: int, k_sim: int = 5, d_proj: int = 16, r_reps: int = 20, seed: int = 42, d_final: int = 0
) -> FDEMatrices:
    """Draw every random matrix from ``np.random.default_rng(seed)``.

    Args:
        dim: token dimension ``d``.
        k_sim: hyperplanes per repetition (``2**k_sim`` buckets), ``0 <= k_sim <= 10``.
        d_proj: projected block size, ``1 <= d_proj <= dim``; ``d_proj == dim`` is the identity.
        r_reps: repetitions, ``>= 1``.
        seed: the generator's seed, ``>= 0``.
        d_final: count-sketch the FDE to this many dims (0: no final projection).

    Returns:
        The matrices, drawn in a fixed order: hyperplanes, ±1 projections, count-sketch.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not 0 <= k_sim <= MAX_K_SIM:
        raise ValueError(f"k_sim must be in [0, {MAX_K_SIM}], got {k_sim}")
    if not 1 <= d_proj <= dim:
        raise ValueError(f"d_proj must be in [1, dim={dim}] (d_proj == dim: no projection)")
    if r_reps < 1 or d_final < 0 or seed < 0:
        raise ValueError("r_reps must be >= 1, d_final >= 0 and seed >= 0")
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((r_reps, dim, k_sim), dtype=np.float32)
    signs = None
    if d_proj < dim:
        signs = (rng.integers(0, 2, size=(r_reps, dim, d_proj), dtype=np.int8) * 2 - 1).astype(
            np.int8
        )
    index = sign = None
    if d_final:
        full = r_reps * (1 << k_sim) * d_proj
        index = rng.integers(0, d_final, size=full, dtype=np.int64)
        sign = (rng.integers(0, 2, size=full, dtype=np.int8) * 2 - 1).astype(np.int8)
    return FDEMatrices(planes, signs, index, sign, d_final)


def simhash_buckets(m: FDEMatrices, tokens: F32) -> tuple[I64, I64]:
    """Sign patterns and buckets of ``tokens (N, d)``: two ``(N, r_reps) int64`` arrays.

    Bit ``k_sim - 1 - j`` of a pattern is ``<token, plane j> > 0`` (as the reference: zero
    counts as negative); the bucket is ``gray_decode(pattern)``.
    """
    n, k = len(tokens), m.k_sim
    if k == 0:
        zeros = np.zeros((n, m.r_reps), dtype=np.int64)
        return zeros, zeros.copy()
    bits = (tokens @ m._planes_2d()) > 0  # (N, R*k)
    weights = np.left_shift(1, np.arange(k - 1, -1, -1, dtype=np.int64))
    words = bits.reshape(n, m.r_reps, k).astype(np.int64) @ weights  # (N, R)
    return words, gray_decode(words)


def _check(m: FDEMatrices, tokens: F32, offsets: I64, what: str) -> tuple[F32, I64]:
    tokens = np.ascontiguousarray(tokens, dtype=np.float32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[1] != m.dim:
        raise ValueError(f"{what} tokens must have shape (N, {m.dim}), got {tokens.shape}")
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(tokens):
        raise ValueError(f"offsets must be (n + 1,) from 0 to N={len(tokens)}")
    sizes = np.diff(offsets)
    if (sizes <= 0).any():
        raise ValueError(f"{what} {int(np.flatnonzero(sizes <= 0)[0])} has no tokens")
    return tokens, offsets


def encode_queries(m: FDEMatrices, tokens: F32, offsets: I64, *, threads: int | None = None) -> F32:
    """Query FDEs: per repetition and bucket, the SUM of the set's projected tokens.

    Args:
        m: the matrices (:func:`draw_matrices`).
        tokens: ``(N, d) float32``, every query's tokens back to back.
        offsets: ``(n + 1,) int64``, query ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
        threads: encoding threads (default :data:`index.fde_kernel.THREADS`, every core).

    Returns:
        ``(n, m.fde_dim) float32``. An empty query raises ``ValueError`` naming it.
    """
    tokens, offsets = _check(m, tokens, offsets, "query")
    m._warm()
    return encode(m, tokens, offsets, document=False, fill="zero", threads=threads)


def encode_documents(
    m: FDEMatrices,
    tokens: F32,
    offsets: I64,
    fill: Fill = "nearest",
    *,
    threads: int | None = None,
) -> F32:
    """Document FDEs: per repetition and bucket, the MEAN of the set's projected tokens.

    Args:
        m: the matrices (:func:`draw_matrices`).
        tokens: ``(N, d) float32``, every document's tokens back to back.
        offsets: ``(n + 1,) int64``, document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
        fill: ``"nearest"`` puts into an empty bucket the document's token whose sign pattern
            is nearest in Hamming distance (the paper's fill); ``"zero"`` leaves it zero.
        threads: encoding threads (default :data:`index.fde_kernel.THREADS`, every core).

    Returns:
        ``(n, m.fde_dim) float32``. An empty document raises ``ValueError`` naming it.
    """
    if fill not in ("nearest", "zero"):
        raise ValueError(f"fill must be 'nearest' or 'zero', got {fill!r}")
    tokens, offsets = _check(m, tokens, offsets, "document")
    m._warm()
    return encode(m, tokens, offsets, document=True, fill=fill, threads=threads)
