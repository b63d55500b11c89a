"""Exact MaxSim (Chamfer) scoring of multi-vector queries against stored token sets.

``maxsim(Q, P) = sum_{q in Q} max_{p in P} <q, p>`` (ColBERT late interaction; Chamfer
similarity in MUVERA). Documents live in a :class:`TokenStore`: one ``(N, d)`` token matrix
(float32 or float16) with ``(n + 1,)`` offsets, ids and tombstones. Scoring gathers the candidate
documents' rows, runs one sgemm against the query tokens and takes per-document maxima with one
``np.maximum.reduceat`` — no Python loop over documents or tokens.

>>> q = np.array([[1, 0], [0, 1]], np.float32)
>>> tokens = np.array([[1, 0], [0, 2], [3, 3]], np.float32)   # doc 0: rows 0-1, doc 1: row 2
>>> maxsim_scores(q, tokens, np.array([0, 2, 3]))
array([3., 6.], dtype=float32)

Query-token ball carving (MUVERA section 4) merges near-duplicate query tokens before re-ranking:
``max_p <q1 + q2, p> <= max_p <q1, p> + max_p <q2, p>``, so carved scores never exceed exact
ones, and equal them when the merged tokens pick the same document token.

>>> carve(np.array([[1, 0], [0.99, 0.1], [0, 1]], np.float32), tau=0.9)
array([[1.99, 0.1 ],
       [0.  , 1.  ]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from index.base import F32, I64, Bool, IdSelector, SearchResult
from index.flat import _blas
from index.topk import RunningTopK, topk_1d

__all__ = [
    "MaxSimParams",
    "MaxSimReranker",
    "TokenStore",
    "carve",
    "chamfer",
    "maxsim_scores",
    "pack",
]

StoreDtype = Literal["float32", "float16"]
#: Token rows scored per sgemm in a brute-force scan: a (rows, query tokens) float32 block of a
#: few MB stays in cache, and per-block Python costs well under 1% at this size.
SCAN_ROWS = 32768


@dataclass(frozen=True)
class MaxSimParams:
    """``candidates``: documents per query fetched from the FDE index and re-ranked exactly."""

    candidates: int = 100

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")


def pack(sets: Sequence[npt.ArrayLike], dim: int, what: str = "document") -> tuple[F32, I64]:
    """Validate token sets and lay them out as one matrix plus offsets.

    Args:
        sets: ``n`` arrays, set ``i`` of shape ``(t_i, dim)`` with ``t_i >= 1`` finite values.
        dim: the token dimension every set must have.
        what: the noun used in error messages ("document", "query").

    Returns:
        ``tokens (sum t_i, dim) float32`` and ``offsets (n + 1,) int64``.

    Raises:
        ValueError: naming the first bad set (empty, ragged, wrong dimension, non-finite).
    """
    arrays: list[F32] = []
    for i, raw in enumerate(sets):
        try:
            arr = np.asarray(raw, dtype=np.float32)
        except (ValueError, TypeError):
            raise ValueError(f"{what} {i}: token vectors are ragged or not numbers") from None
        if arr.ndim != 2 or arr.shape[1] != dim:
            raise ValueError(f"{what} {i}: expected (t, {dim}) token vectors, got {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{what} {i} has no token vectors")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} {i}: token vectors must be finite")
        arrays.append(arr)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    tokens = np.concatenate(arrays) if arrays else np.empty((0, dim), dtype=np.float32)
    return np.ascontiguousarray(tokens, dtype=np.float32), offsets


def chamfer(query: npt.ArrayLike, doc: npt.ArrayLike) -> float:
    """Reference MaxSim of one pair, float64: ``sum_i max_j <query[i], doc[j]>``."""
    q, p = np.asarray(query, dtype=np.float64), np.asarray(doc, dtype=np.float64)
    return float((q @ p.T).max(axis=1).sum())


def carve(query: npt.ArrayLike, tau: float) -> F32:
    """Greedy ball carving of query tokens: ``(t, d) -> (b, d) float32``, ``b <= t``.

    Tokens are visited in order; each one not yet in a ball opens a ball that takes every
    remaining token whose cosine with it is ``>= tau``, and the ball is the SUM of its tokens
    (so a carved query's MaxSim lower-bounds the exact one; ``tau = 1`` merges only parallel
    tokens). Zero tokens merge into nothing and are kept as they are.

    Args:
        query: ``(t, d)`` query tokens, ``t >= 1``.
        tau: cosine threshold in ``(0, 1]``.

    Returns:
        ``(b, d) float32`` ball sums, in the order of each ball's first token.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    q = np.ascontiguousarray(query, dtype=np.float32)
    t = len(q)
    if t <= 1:
        return q.copy()
    norms = np.linalg.norm(q, axis=1)
    unit = q / np.where(norms > 0, norms, 1.0)[:, None]
    near = (unit @ unit.T) >= np.float32(tau)  # (t, t); a zero token is near nothing
    np.fill_diagonal(near, True)
    free = np.ones(t, dtype=bool)
    balls: list[F32] = []
    for i in range(t):  # t is a query's token count (tens): a short loop of vector ops
        if free[i]:
            members = free & near[i]
            free &= ~members
            balls.append(q[members].sum(axis=0))
    out: F32 = np.stack(balls).astype(np.float32, copy=False)
    return out


def gather_rows(offsets: I64, docs: I64) -> tuple[I64, I64]:
    """Token rows of documents ``docs (m,)`` back to back, and each one's start in that list.

    Returns ``rows (sum of lengths,) int64`` and ``starts (m,) int64``.
    """
    begin, end = offsets[docs], offsets[docs + 1]
    sizes = end - begin
    starts = np.zeros(len(docs), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    rows = np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(begin - starts, sizes)
    return rows, starts


def maxsim_scores(
    query: F32, tokens: npt.NDArray[Any], offsets: I64, docs: I64 | None = None
) -> F32:
    """MaxSim of one query against stored documents.

    Args:
        query: ``(t, d) float32`` query tokens.
        tokens: ``(N, d)`` float32 or float16 token matrix.
        offsets: ``(n + 1,) int64``; document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``
            and has at least one token.
        docs: ``(m,) int64`` document numbers to score (default: all ``n``).

    Returns:
        ``(m,) float32`` scores, in the order of ``docs``.
    """
    if docs is None:
        docs = np.arange(len(offsets) - 1, dtype=np.int64)
    if len(docs) == 0:
        return np.empty(0, dtype=np.float32)
    rows, starts = gather_rows(offsets, docs)
    block = np.asarray(tokens[rows], dtype=np.float32) @ query.T  # (rows, t)
    best: F32 = np.maximum.reduceat(block, starts, axis=0).sum(axis=1, dtype=np.float32)
    return best


class TokenStore:
    """Growable token matrix + offsets of documents under ``int64`` ids, with tombstones.

    ``dtype`` float16 halves the bytes; scoring converts the gathered rows to float32.
    """

    def __init__(self, dim: int, dtype: StoreDtype = "float32") -> None:
        self.dim = dim
        self.dtype: StoreDtype = dtype
        self._tokens: npt.NDArray[Any] = np.empty((0, dim), dtype=np.dtype(dtype))
        self._ntok = 0
        self._offsets: I64 = np.zeros(1, dtype=np.int64)
        self._ids: I64 = np.empty(0, dtype=np.int64)
        self._dead: Bool = np.zeros(0, dtype=bool)
        self._n = 0
        self._ndead = 0
        self._lookup: tuple[int, I64, I64] | None = None  # (version, sorted live ids, rows)
        self._version = 0

    def __len__(self) -> int:
        """Live documents."""
        return self._n - self._ndead

    @property
    def ids(self) -> I64:
        """``(n,) int64`` id of every stored document, removed ones included."""
        return self._ids[: self._n]

    @property
    def offsets(self) -> I64:
        """``(n + 1,) int64`` token offsets of every stored document."""
        return self._offsets[: self._n + 1]

    @property
    def tokens(self) -> npt.NDArray[Any]:
        """``(N, d)`` token matrix of every stored document (a view: do not write)."""
        return self._tokens[: self._ntok]

    def alive_mask(self) -> Bool:
        """``(n,) bool``: True where the document has not been removed."""
        return ~self._dead[: self._n]

    def add(self, ids: I64, tokens: F32, offsets: I64) -> None:
        """Append documents ``ids (n,)`` whose tokens are ``tokens[offsets[i]:offsets[i+1]]``."""
        m = len(ids)
        if m == 0:
            return
        if len(np.unique(ids)) != m:
            raise ValueError("ids must be unique within one add")
        present = self.rows_of(ids)
        if len(present):
            raise ValueError(f"id {int(self._ids[present[0]])} is already stored; remove it first")
        self._grow(self._n + m, self._ntok + len(tokens))
        self._tokens[self._ntok : self._ntok + len(tokens)] = tokens
        self._offsets[self._n + 1 : self._n + m + 1] = offsets[1:] + self._ntok
        self._ids[self._n : self._n + m] = ids
        self._n += m
        self._ntok += len(tokens)
        self._version += 1

    def _grow(self, docs: int, toks: int) -> None:
        # Geometric growth keeps streams of small adds amortised O(1); fresh arrays are swapped
        # in so that readers holding views of the old ones stay valid.
        if toks > len(self._tokens):
            cap = max(toks, int(len(self._tokens) * 1.5) + 4096)
            t = np.empty((cap, self.dim), dtype=self._tokens.dtype)
            t[: self._ntok] = self._tokens[: self._ntok]
            self._tokens = t
        if docs > len(self._ids):
            cap = max(docs, int(len(self._ids) * 1.5) + 256)
            o = np.zeros(cap + 1, dtype=np.int64)
            o[: self._n + 1] = self._offsets[: self._n + 1]
            ids = np.empty(cap, dtype=np.int64)
            ids[: self._n] = self._ids[: self._n]
            dead = np.zeros(cap, dtype=bool)
            dead[: self._n] = self._dead[: self._n]
            self._offsets, self._ids, self._dead = o, ids, dead

    def rows_of(self, ids: I64) -> I64:
        """Rows of the live documents among ``ids`` (unknown or removed ids are skipped)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) == 0 or len(self) == 0:
            return np.empty(0, dtype=np.int64)
        keys, rows = self._live_lookup()
        pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        found: I64 = rows[pos[keys[pos] == ids]]
        return found

    def _live_lookup(self) -> tuple[I64, I64]:
        """Sorted live ids and their rows, rebuilt after a change."""
        cached = self._lookup
        if cached is not None and cached[0] == self._version:
            return cached[1], cached[2]
        version = self._version
        rows = np.flatnonzero(self.alive_mask()).astype(np.int64)
        order = np.argsort(self._ids[rows], kind="stable")
        rows = rows[order]
        keys = self._ids[rows]
        self._lookup = (version, keys, rows)
        return keys, rows

    def remove(self, ids: I64) -> int:
        """Tombstone ``ids``; returns how many live documents were removed."""
        rows = self.rows_of(ids)
        if len(rows) == 0:
            return 0
        rows = np.unique(rows)
        self._dead[rows] = True
        self._ndead += len(rows)
        self._version += 1
        return int(len(rows))

    def nbytes(self) -> int:
        """Bytes held by the token matrix, offsets, ids and tombstones, growth slack included
        (appends grow capacity by 1.5x; a loaded store holds exactly its rows)."""
        arrays = (self._tokens, self._offsets, self._ids, self._dead)
        return int(sum(a.nbytes for a in arrays))

    def token_bytes(self) -> int:
        """Bytes of the stored token rows themselves (``N * d * itemsize``)."""
        return int(self._ntok * self.dim * self._tokens.dtype.itemsize)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The stored state as plain arrays (for ``np.save``)."""
        return {
            "tokens": self.tokens,
            "offsets": self.offsets,
            "ids": self.ids,
            "dead": self._dead[: self._n],
        }

    @classmethod
    def from_arrays(cls, dim: int, dtype: StoreDtype, arrays: dict[str, Any]) -> TokenStore:
        store = cls(dim, dtype)
        tokens = np.ascontiguousarray(arrays["tokens"], dtype=np.dtype(dtype))
        offsets = np.asarray(arrays["offsets"], dtype=np.int64)
        ids = np.asarray(arrays["ids"], dtype=np.int64)
        dead = np.asarray(arrays["dead"], dtype=bool)
        n = len(ids)
        if tokens.ndim != 2 or tokens.shape[1] != dim or offsets.shape != (n + 1,):
            raise ValueError("token store arrays disagree on shapes")
        if offsets[0] != 0 or offsets[-1] != len(tokens) or dead.shape != (n,):
            raise ValueError("token store offsets or tombstones are inconsistent")
        store._tokens, store._offsets, store._ids, store._dead = tokens, offsets, ids, dead
        store._n, store._ntok, store._ndead = n, len(tokens), int(dead.sum())
        return store


class MaxSimReranker:
    """Exact MaxSim over a :class:`TokenStore`: re-ranks candidates or scans everything."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    def rerank(
        self, query: F32, candidates: I64, k: int, *, tau: float | None = None
    ) -> SearchResult:
        """Best ``k`` of ``candidates (m,) int64`` ids for ``query (t, d) float32`` by MaxSim.

        Unknown, removed, duplicate and ``-1`` ids are skipped. ``tau`` ball-carves the query
        first (:func:`carve`): fewer query tokens, approximate (lower-bound) scores. Returns a
        one-row :class:`~index.base.SearchResult` (score desc, id asc; ``-1``/``-inf`` padding).
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        query = _check_query(query, self.store.dim)
        if tau is not None:
            query = carve(query, tau)
        out_s = np.full((1, k), -np.inf, dtype=np.float32)
        out_i = np.full((1, k), -1, dtype=np.int64)
        cand = np.unique(np.asarray(candidates, dtype=np.int64))
        rows = self.store.rows_of(cand[cand >= 0])
        if len(rows):
            # A few thousand rows: on one BLAS thread, a multi-threaded small sgemm on a busy
            # box waits for its second thread (measured 12 ms instead of 0.2 ms per call).
            with _blas.single_threaded():
                scores = maxsim_scores(query, self.store.tokens, self.store.offsets, rows)
            s, i = topk_1d(scores, self.store.ids[rows], k)
            out_s[0, : len(s)], out_i[0, : len(i)] = s, i
        return SearchResult(out_s, out_i)

    def search(
        self, tokens: F32, offsets: I64, k: int, selector: IdSelector | None = None
    ) -> SearchResult:
        """Exact top-``k`` of every live document (brute force: the ground truth).

        Args:
            tokens: ``(T, d) float32``, all queries' tokens back to back.
            offsets: ``(nq + 1,) int64``; query ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
            k: hits per query.
            selector: restrict to these ids.

        Returns:
            ``(nq, k)`` scores and ids. The store is scanned in blocks of ``SCAN_ROWS`` token
            rows cut at document boundaries; each block is one sgemm against every query token.
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        store, nq = self.store, len(offsets) - 1
        top = RunningTopK(nq, k)
        n = store._n
        allowed = store.alive_mask()
        if selector is not None:
            mask = np.zeros(n, dtype=bool)
            mask[selector.rows_in(store.ids, False)] = True
            allowed &= mask
        if nq == 0 or not allowed.any():
            return SearchResult(top.scores, top.ids)
        q_t = np.ascontiguousarray(tokens.T, dtype=np.float32)  # (d, T)
        qstarts = offsets[:-1]
        doc_off = store.offsets
        a = 0
        while a < n:
            b = int(np.searchsorted(doc_off, doc_off[a] + SCAN_ROWS, side="right")) - 1
            b = min(max(b, a + 1), n)
            if allowed[a:b].any():
                lo, hi = int(doc_off[a]), int(doc_off[b])
                sims = np.asarray(store.tokens[lo:hi], dtype=np.float32) @ q_t  # (rows, T)
                per_doc = np.maximum.reduceat(sims, doc_off[a:b] - lo, axis=0)  # (docs, T)
                scores = np.add.reduceat(per_doc, qstarts, axis=1)  # (docs, nq)
                top.fold(np.ascontiguousarray(scores), store.ids[a:b], ~allowed[a:b])
            a = b
        top.flush()
        return SearchResult(top.scores, top.ids)


def _check_query(query: npt.ArrayLike, dim: int) -> F32:
    q = np.ascontiguousarray(query, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim or q.shape[0] == 0:
        raise ValueError(f"query must be (t >= 1, {dim}) token vectors, got {q.shape}")
    return q
