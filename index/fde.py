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
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from index.base import F32, I64
from index.flat import _blas

I8 = npt.NDArray[np.int8]
Fill = Literal["nearest", "zero"]

#: Largest ``k_sim``: 2**10 buckets per repetition already makes FDEs of R * 1024 * d_proj dims.
MAX_K_SIM = 10
#: Elements of the per-chunk working arrays (tokens x repetitions x max(buckets, d_proj)): about
#: 32 MB of float64/int64 scratch, large enough that per-chunk Python overhead is noise.
CHUNK_ELEMENTS = 1 << 18

__all__ = [
    "FDEMatrices",
    "draw_matrices",
    "encode_documents",
    "encode_queries",
    "gray_decode",
    "gray_encode",
    "simhash_buckets",
]


def gray_encode(b: npt.ArrayLike) -> I64:
    """Sign pattern (Gray-code word) of bucket ``b``: ``b ^ (b >> 1)``; any shape, int64."""
    x = np.asarray(b, dtype=np.int64)
    out: I64 = x ^ (x >> 1)
    return out


def gray_decode(g: npt.ArrayLike) -> I64:
    """Bucket (rank in Gray-code order) of sign pattern ``g``: prefix XOR from the top bit."""
    x = np.array(g, dtype=np.int64, copy=True)
    shift = 1
    while shift < 32:  # patterns have at most MAX_K_SIM bits; 32 covers any uint32 word
        x ^= x >> shift
        shift *= 2
    return x


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


def _chunks(offsets: I64, per_token: int) -> list[tuple[int, int]]:
    """Consecutive set ranges ``[a, b)`` of at most ``CHUNK_ELEMENTS / per_token`` tokens each
    (a single larger set gets a chunk of its own)."""
    budget = max(1, CHUNK_ELEMENTS // max(1, per_token))
    n = len(offsets) - 1
    out, a = [], 0
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + budget, side="right")) - 1
        b = min(max(b, a + 1), n)
        out.append((a, b))
        a = b
    return out


def _encode(m: FDEMatrices, tokens: F32, offsets: I64, document: bool, fill: Fill) -> F32:
    """Shared kernel; see :func:`encode_queries` and :func:`encode_documents`.

    numpy's BLAS runs on one thread here: the products are small, and on a busy 2-core box a
    multi-threaded small sgemm waits for its second thread to be scheduled (measured ~12 ms per
    call instead of ~0.2 ms; encoding end to end was 7x slower). A second worker thread does not
    help either: ``np.bincount`` holds the GIL.
    """
    n = len(offsets) - 1
    out = np.empty((n, m.fde_dim), dtype=np.float32)
    with _blas.single_threaded():
        for a, b in _chunks(offsets, m.r_reps * max(m.buckets, m.d_proj)):
            out[a:b] = _encode_chunk(m, tokens, offsets[a : b + 1], document, fill)
    return out


def _encode_chunk(m: FDEMatrices, tokens: F32, offsets: I64, document: bool, fill: Fill) -> F32:
    """FDEs ``(n, fde_dim)`` of the sets delimited by ``offsets (n + 1,)`` (absolute rows)."""
    r_reps, nb, p = m.r_reps, m.buckets, m.d_proj
    lo, hi = int(offsets[0]), int(offsets[-1])
    x, nc, nt = tokens[lo:hi], len(offsets) - 1, hi - lo
    local = offsets - lo
    nseg = nc * r_reps * nb
    words, bucket = simhash_buckets(m, x)  # (nt, R)
    owner = np.repeat(np.arange(nc, dtype=np.int64), np.diff(local))  # set of each token
    # One segment per (set, repetition, bucket); seg[t, r] is token t's in repetition r.
    seg = (owner[:, None] * r_reps + np.arange(r_reps)) * nb + bucket
    proj = m._proj_cols()
    if proj is None:
        vals = np.broadcast_to(x[:, None, :], (nt, r_reps, p))
    else:
        vals = (x @ proj).reshape(nt, r_reps, p)  # (nt, R, p)
    # One weighted bincount per coordinate: its (segments,) output stays in cache, unlike one
    # bincount over (segment, coordinate) cells; both beat sort + reduceat and np.add.at.
    flat_seg = seg.ravel()
    sums = np.empty((nseg, p), dtype=np.float64)
    for j in range(p):
        sums[:, j] = np.bincount(flat_seg, weights=vals[:, :, j].ravel(), minlength=nseg)
    if document:
        counts = np.bincount(flat_seg, minlength=nseg)
        sums /= np.maximum(counts, 1)[:, None]
    block = sums.astype(np.float32).reshape(nc, r_reps, nb, p)
    if document and fill == "nearest" and m.k_sim > 0:
        _fill_nearest(block, seg, local, vals, m.k_sim)
    flat = block.reshape(nc, m.full_dim)
    return _count_sketch(m, flat) if m.sketch_index is not None else flat


def _fill_nearest(block: F32, seg: I64, local: I64, vals: Any, k_sim: int) -> None:
    """Fill each empty ``block[i, r, b]`` with set ``i``'s projected token (``vals (nt, R, p)``)
    whose sign pattern in repetition ``r`` is nearest in Hamming distance to bucket ``b``'s;
    ties take the set's first such token, as the reference does.

    Each occupied bucket starts with key ``rank of its first token``, each empty one with
    infinity; a distance transform over the k_sim-cube of sign patterns (one min-plus pass per
    bit, exact for Hamming distance because it is a sum over bits) leaves every bucket the key
    ``distance << shift | rank`` of its nearest first-token. Cost O(sets * R * B * k_sim)
    instead of O(tokens * R * B) for comparing every token with every bucket.
    """
    nc, r_reps, nb, _ = block.shape
    sizes = np.diff(local)
    shift = int(sizes.max()).bit_length()
    rank = np.arange(len(seg), dtype=np.int64) - np.repeat(local[:-1], sizes)
    far = np.int64(1) << 62
    first = np.full(nc * r_reps * nb, far, dtype=np.int64)
    np.minimum.at(first, seg.ravel(), np.repeat(rank, r_reps))
    empty = (first == far).reshape(nc, r_reps, nb)
    if not empty.any():
        return
    # Re-index buckets by sign pattern so that bit j of the last axis is hyperplane bit j.
    key = first.reshape(nc * r_reps, nb)[:, gray_decode(np.arange(nb))]
    step = np.int64(1) << shift
    for j in range(k_sim):
        cube = key.reshape(nc * r_reps, nb >> (j + 1), 2, 1 << j)
        lo, hi = cube[:, :, 0, :], cube[:, :, 1, :]
        lo_next = np.minimum(lo, hi + step)
        np.minimum(hi, lo + step, out=hi)
        lo[...] = lo_next
    best = key[:, gray_encode(np.arange(nb))].reshape(nc, r_reps, nb) & (step - 1)
    i, r, b = np.nonzero(empty)
    block[i, r, b] = vals[local[i] + best[i, r, b], r]


def _count_sketch(m: FDEMatrices, x: F32) -> F32:
    """``(n, d_final)``: coordinate ``j`` of ``x (n, full_dim)`` added with ``sketch_sign[j]``
    into column ``sketch_index[j]``."""
    order, signs, starts, target = m._sketch_plan()
    out = np.zeros((len(x), m.d_final), dtype=np.float32)
    out[:, target] = np.add.reduceat(x[:, order] * signs, starts, axis=1)
    return out


def encode_queries(m: FDEMatrices, tokens: F32, offsets: I64) -> F32:
    """Query FDEs: per repetition and bucket, the SUM of the set's projected tokens.

    Args:
        m: the matrices (:func:`draw_matrices`).
        tokens: ``(N, d) float32``, every query's tokens back to back.
        offsets: ``(n + 1,) int64``, query ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.

    Returns:
        ``(n, m.fde_dim) float32``. An empty query raises ``ValueError`` naming it.
    """
    tokens, offsets = _check(m, tokens, offsets, "query")
    return _encode(m, tokens, offsets, document=False, fill="zero")


def encode_documents(m: FDEMatrices, tokens: F32, offsets: I64, fill: Fill = "nearest") -> F32:
    """Document FDEs: per repetition and bucket, the MEAN of the set's projected tokens.

    Args:
        m: the matrices (:func:`draw_matrices`).
        tokens: ``(N, d) float32``, every document's tokens back to back.
        offsets: ``(n + 1,) int64``, document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
        fill: ``"nearest"`` puts into an empty bucket the document's token whose sign pattern
            is nearest in Hamming distance (the paper's fill); ``"zero"`` leaves it zero.

    Returns:
        ``(n, m.fde_dim) float32``. An empty document raises ``ValueError`` naming it.
    """
    if fill not in ("nearest", "zero"):
        raise ValueError(f"fill must be 'nearest' or 'zero', got {fill!r}")
    tokens, offsets = _check(m, tokens, offsets, "document")
    return _encode(m, tokens, offsets, document=True, fill=fill)
