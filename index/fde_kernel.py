"""The batched FDE kernel behind :func:`index.fde.encode_documents` and ``encode_queries``.

A batch of sets (``tokens (N, d)`` back to back, ``offsets (n + 1,)``) is cut into chunks of whole
sets (:func:`chunks`); each chunk costs ONE sgemm, ``tokens @ [hyperplanes | projections]``
(``d x R*(k_sim + d_proj)``), which yields every token's SimHash bits and its projected blocks
for every repetition at once; then per-coordinate ``bincount`` sums per (set, repetition,
bucket), a division by the bucket counts for documents, the nearest-pattern fill and the
optional count-sketch. Chunks run on ``threads`` Python threads with numpy's BLAS held to one
thread each: the sgemm (about two thirds of the time on 384-dim tokens) releases the GIL, so two
cores encode about twice as fast, without OpenBLAS's own threads (which, on a busy box, wait
for each other on every small product).

The per-token projection is deliberate: projecting the per-bucket sums instead (fewer FLOPs)
needs the raw ``d``-dim tokens gathered or scattered per repetition, which numpy does at memory
speed, not sgemm speed; see ``index/MUVERA_NOTES.md`` for the measurements.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from index.base import F32, I64
from index.flat import _blas

if TYPE_CHECKING:
    from index.fde import FDEMatrices

Fill = Literal["nearest", "zero"]

#: Elements of the per-chunk working arrays (tokens x repetitions x max(buckets, d_proj)): about
#: 8 MB of float64/int64 scratch per thread, large enough that per-chunk Python overhead is noise.
CHUNK_ELEMENTS = 1 << 20
#: Default encoding threads: every core (at most 8). ``threads=1`` encodes on the caller's thread.
THREADS = max(1, min(8, os.cpu_count() or 1))


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


def sign_words(bits: npt.NDArray[np.bool_], k: int) -> I64:
    """``(..., k) bool`` sign bits (first hyperplane most significant) -> ``(...) int64`` words."""
    w = np.zeros(bits.shape[:-1], dtype=np.int64)
    for j in range(k):
        w <<= 1
        w |= bits[..., j]
    return w


def chunks(offsets: I64, per_token: int, at_least: int = 1) -> list[tuple[int, int]]:
    """Consecutive set ranges ``[a, b)`` of at most ``CHUNK_ELEMENTS / per_token`` tokens each
    (a single larger set gets a chunk of its own), and of at most ``1 / at_least`` of all the
    tokens, so that a small batch still gives each of ``at_least`` threads a share."""
    budget = max(1, CHUNK_ELEMENTS // max(1, per_token))
    total = int(offsets[-1] - offsets[0])
    budget = min(budget, max(1, -(-total // max(1, at_least))))
    n = len(offsets) - 1
    out, a = [], 0
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + budget, side="right")) - 1
        b = min(max(b, a + 1), n)
        out.append((a, b))
        a = b
    return out


_POOL: list[tuple[int, ThreadPoolExecutor]] = []  # (threads, pool): at most one, grown on demand
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """The shared encoding pool, with at least ``size`` threads."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0][0] < size:
            if _POOL:
                _POOL.pop()[1].shutdown(wait=False)  # its queued work still runs
            size = max(size, THREADS - 1)
            _POOL.append((size, ThreadPoolExecutor(size, thread_name_prefix="fde")))
        return _POOL[0][1]


def encode(
    m: FDEMatrices, tokens: F32, offsets: I64, document: bool, fill: Fill, threads: int | None
) -> F32:
    """FDEs ``(n, m.fde_dim) float32`` of the (validated) sets; ``threads`` None: :data:`THREADS`.

    Chunks are independent and write disjoint rows of the output, so any thread count gives
    the same bits.
    """
    n = len(offsets) - 1
    out = np.empty((n, m.fde_dim), dtype=np.float32)
    wanted = THREADS if threads is None else threads
    parts = chunks(offsets, m.r_reps * max(m.buckets, m.d_proj), wanted)
    workers = max(1, min(wanted, len(parts)))

    def run(share: list[tuple[int, int]]) -> None:
        for a, b in share:
            out[a:b] = encode_chunk(m, tokens, offsets[a : b + 1], document, fill)

    shares = [parts[i::workers] for i in range(workers)]
    with _blas.single_threaded():
        # The caller's thread encodes the first share; the pool (kept between calls: starting
        # threads cost a few per cent of a 100-query batch) the others.
        futures = [_pool(workers - 1).submit(run, sh) for sh in shares[1:]] if workers > 1 else []
        run(shares[0])
        for f in futures:
            f.result()
    return out


def encode_chunk(m: FDEMatrices, tokens: F32, offsets: I64, document: bool, fill: Fill) -> F32:
    """FDEs ``(n, fde_dim)`` of the sets delimited by ``offsets (n + 1,)`` (absolute rows)."""
    r_reps, nb, p, k = m.r_reps, m.buckets, m.d_proj, m.k_sim
    lo, hi = int(offsets[0]), int(offsets[-1])
    x, nc, nt = tokens[lo:hi], len(offsets) - 1, hi - lo
    local = offsets - lo
    nseg = nc * r_reps * nb
    fused = m._fused_cols()
    y = x @ fused if fused is not None else None  # (nt, R*k [+ R*p])
    if k == 0 or y is None:
        bucket = np.zeros((nt, r_reps), dtype=np.int64)
    else:
        bits = (y[:, : r_reps * k] > 0).reshape(nt, r_reps, k)
        bucket = m._gray_table()[sign_words(bits, k)]  # (nt, R)
    if m.signs is None:
        vals: Any = np.broadcast_to(x[:, None, :], (nt, r_reps, p))
    else:
        assert y is not None
        vals = y[:, r_reps * k :].reshape(nt, r_reps, p)  # (nt, R, p) view
    owner = np.repeat(np.arange(nc, dtype=np.int64), np.diff(local))  # set of each token
    # One segment per (set, repetition, bucket); seg[t, r] is token t's in repetition r.
    seg = (owner[:, None] * r_reps + np.arange(r_reps)) * nb + bucket
    flat_seg = seg.ravel()
    # One weighted bincount per coordinate over contiguous float64 weights (one transposing
    # copy for all p): each (segments,) output stays in cache; measured faster than one
    # bincount over (segment, coordinate) cells, sort + reduceat, np.add.at and one-hot sgemm.
    weights = np.empty((p, nt, r_reps), dtype=np.float64)
    weights[...] = vals.transpose(2, 0, 1)
    wflat = weights.reshape(p, nt * r_reps)
    sums = np.empty((nseg, p), dtype=np.float64)
    for j in range(p):
        sums[:, j] = np.bincount(flat_seg, weights=wflat[j], minlength=nseg)
    if document:
        counts = np.bincount(flat_seg, minlength=nseg)
        sums /= np.maximum(counts, 1)[:, None]
    block = sums.astype(np.float32).reshape(nc, r_reps, nb, p)
    if document and fill == "nearest" and k > 0:
        fill_nearest(block, seg, local, vals, k)
    flat = block.reshape(nc, m.full_dim)
    return count_sketch(m, flat) if m.sketch_index is not None else flat


def fill_nearest(block: F32, seg: I64, local: I64, vals: Any, k_sim: int) -> None:
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


def count_sketch(m: FDEMatrices, x: F32) -> F32:
    """``(n, d_final)``: coordinate ``j`` of ``x (n, full_dim)`` added with ``sketch_sign[j]``
    into column ``sketch_index[j]``."""
    order, signs, starts, target = m._sketch_plan()
    out = np.zeros((len(x), m.d_final), dtype=np.float32)
    out[:, target] = np.add.reduceat(x[:, order] * signs, starts, axis=1)
    return out
