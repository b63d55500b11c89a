"""Hypencoder reranking: each query becomes a small MLP, its q-net, applied to document vectors.

Hypencoder (Killingback, Zeng, Zamani; SIGIR 2025) replaces the query vector by a q-net whose
weights a hypernetwork (:mod:`index.hypencoder_head`) produces from the query's token
embeddings; relevance = ``qnet(document vector)``. The q-net has ``n`` hidden layers of width
``h`` (the document dimension), each ``linear -> ReLU -> layer norm (no learned parameters) ->
residual`` (the last hidden layer without residual unless ``residual_last``), then a linear
``h -> 1`` without bias. Scoring ``m`` candidates is one batched matmul per layer.

A q-net with no hidden layer and output weight ``q`` is exactly inner product with ``q``:

>>> q = np.array([1.0, 2.0], np.float32)
>>> docs = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
>>> QNet.inner_product(q).scores(docs)
array([1., 2., 3.], dtype=float32)

One hidden layer (``W = I``, ``b = 0``): ReLU, then layer norm over the 2 features, then ``w``:

>>> net = QNet((np.eye(2, dtype=np.float32), np.array([[1], [0]], np.float32)),
...            (np.zeros(2, np.float32),))
>>> net.scores(np.array([[3, 1], [1, 3]], np.float32)).round(3)
array([ 1., -1.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from index.base import F32, I64, Bool, SearchResult
from index.flat import _blas
from index.topk import topk_1d

__all__ = [
    "HypencoderParams",
    "HypencoderReranker",
    "LN_EPS",
    "QNet",
    "QNetSource",
    "VectorStore",
    "layer_norm",
]

#: Layer-norm epsilon, as torch's ``F.layer_norm`` default (the trainer uses the same).
LN_EPS = 1e-5


def layer_norm(x: F32, eps: float = LN_EPS) -> F32:
    """Layer norm over the last axis without learned scale or shift (float32 in and out).

    >>> layer_norm(np.array([[1, 3]], np.float32)).round(3)
    array([[-1.,  1.]], dtype=float32)
    """
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True, dtype=np.float32)
    out: F32 = (centred / np.sqrt(var + np.float32(eps))).astype(np.float32, copy=False)
    return out


@dataclass(frozen=True)
class QNet:
    """The weights of one query's q-net, or of ``nq`` queries' q-nets stacked.

    ``weights[i]``: ``(h, h)`` for hidden layer ``i`` and ``(h, 1)`` last, or with a leading
    ``nq`` axis each; ``biases[i]``: ``(h,)`` per hidden layer (``(nq, h)`` stacked). All float32.
    """

    weights: tuple[F32, ...]
    biases: tuple[F32, ...]
    residual_last: bool = False

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.biases) + 1:
            raise ValueError(
                f"a q-net with {len(self.biases)} hidden layers needs "
                f"{len(self.biases) + 1} weight matrices, got {len(self.weights)}"
            )
        lead = self.weights[-1].shape[:-2]
        if len(lead) > 1:
            raise ValueError(
                f"weights must be (in, out) or (nq, in, out), got {self.weights[-1].shape}"
            )
        for i, w in enumerate(self.weights):
            if w.dtype != np.float32 or w.ndim != 2 + len(lead) or w.shape[:-2] != lead:
                raise ValueError(
                    f"weights[{i}] must be float32 {'(nq, in, out)' if lead else '(in, out)'}, "
                    f"got {w.dtype} {w.shape}"
                )
            want_out = 1 if i == len(self.weights) - 1 else self.dim
            if w.shape[-2:] != (self.dim, want_out):
                raise ValueError(
                    f"weights[{i}] must end in ({self.dim}, {want_out}), got {w.shape}"
                )
        for i, b in enumerate(self.biases):
            if b.dtype != np.float32 or b.shape != (*lead, self.dim):
                raise ValueError(
                    f"biases[{i}] must be float32 {(*lead, self.dim)}, got {b.dtype} {b.shape}"
                )

    @classmethod
    def inner_product(cls, query: npt.ArrayLike) -> QNet:
        """The ``[d, 1]`` q-net (no hidden layer) that scores ``<query, doc>``."""
        q = np.ascontiguousarray(query, dtype=np.float32)
        if q.ndim != 1:
            raise ValueError(f"query must be (d,), got {q.shape}")
        return cls((q[:, None],), ())

    @property
    def dim(self) -> int:
        """``h``: the document dimension the q-net takes."""
        return int(self.weights[0].shape[-2])

    @property
    def n_hidden(self) -> int:
        return len(self.biases)

    @property
    def nq(self) -> int | None:
        """How many q-nets are stacked, or None for one unstacked q-net."""
        return int(self.weights[0].shape[0]) if self.weights[0].ndim == 3 else None

    def query(self, i: int) -> QNet:
        """Q-net ``i`` of a stack, unstacked."""
        if self.nq is None:
            raise ValueError("this q-net is not stacked")
        return QNet(
            tuple(w[i] for w in self.weights), tuple(b[i] for b in self.biases), self.residual_last
        )

    @classmethod
    def stack(cls, nets: Sequence[QNet]) -> QNet:
        """Stack unstacked q-nets of one shape into one ``nq``-batch."""
        if not nets:
            raise ValueError("stack needs at least one q-net")
        first = nets[0]
        return cls(
            tuple(np.stack([n.weights[i] for n in nets]) for i in range(len(first.weights))),
            tuple(np.stack([n.biases[i] for n in nets]) for i in range(len(first.biases))),
            first.residual_last,
        )

    def scores(self, docs: npt.ArrayLike) -> F32:
        """Relevance of documents: ``(m, h) -> (m,)``; stacked: ``(m, h)`` or ``(nq, m, h)``
        -> ``(nq, m)``. float32, one matmul per layer."""
        x = np.asarray(docs, dtype=np.float32)
        lead = () if self.nq is None else (self.nq,)
        if x.ndim not in (2, 2 + len(lead)) or x.shape[-1] != self.dim:
            raise ValueError(f"docs must be (m, {self.dim}) float32, got {x.shape}")
        if x.ndim == 3 and x.shape[0] != self.nq:
            raise ValueError(f"docs (nq, m, h) must have nq={self.nq}, got {x.shape}")
        last = self.n_hidden - 1
        for i, (w, b) in enumerate(zip(self.weights[:-1], self.biases, strict=True)):
            z = x @ w + (b[:, None, :] if lead else b)
            np.maximum(z, 0, out=z)
            z = layer_norm(z)
            x = z + x if (i < last or self.residual_last) else z
        out: F32 = (x @ self.weights[-1])[..., 0].astype(np.float32, copy=False)
        return out


class VectorStore(Protocol):
    """Where the reranker reads document vectors (``index.flat.FlatIndex`` is one)."""

    @property
    def dim(self) -> int: ...

    @property
    def ids(self) -> I64: ...

    @property
    def vectors(self) -> F32: ...

    def rows_of(self, ids: I64) -> I64: ...

    def alive_mask(self) -> Bool: ...


class QNetSource(Protocol):
    """Turns a query's token embeddings into its q-net (``index.hypencoder_head.HyperHead``)."""

    @property
    def dim(self) -> int: ...

    @property
    def token_dim(self) -> int: ...

    def qnet(self, tokens: F32) -> QNet: ...


@dataclass(frozen=True)
class HypencoderParams:
    """``Hypencoder(model=<head>,candidates=1000)``: re-rank what any index finds.

    ``model``: a head's name (the service looks in its heads directory, then among the heads
    bundled with the package) or an absolute path to a head directory (``HyperHead.save``;
    local only, nothing is downloaded). ``candidates``: first-stage hits per query that the
    q-net re-scores.
    """

    model: str
    candidates: int = 1000

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must name a head or a head directory (HyperHead.save)")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")


class HypencoderReranker:
    """Re-scores candidate ids with the query's q-net over stored document vectors."""

    def __init__(self, head: QNetSource, store: VectorStore) -> None:
        if head.dim != store.dim:
            raise ValueError(f"head scores {head.dim}-d documents, the store holds {store.dim}-d")
        self.head = head
        self.store = store

    @classmethod
    def from_params(
        cls, params: HypencoderParams, store: VectorStore, heads: Path | None = None
    ) -> HypencoderReranker:
        """Load the head of a spec's ``Hypencoder(model=...)`` part: a directory path, or a
        name under ``heads``."""
        from index.hypencoder_head import HyperHead

        path = Path(params.model).expanduser()
        if not path.is_absolute():
            if heads is None:
                raise ValueError(f"model {params.model!r} is a name; give the heads directory")
            path = heads / params.model
        return cls(HyperHead.load(path), store)

    def rerank(self, query: F32, candidates: I64, k: int) -> SearchResult:
        """Best ``k`` of ``candidates (m,) int64`` by the q-net of ``query``.

        Args:
            query: ``(t, token_dim) float32`` token embeddings of one query, ``t >= 1``.
            candidates: first-stage ids; unknown, removed, duplicate and ``-1`` ids are skipped.
            k: hits to keep.

        Returns:
            A one-row :class:`~index.base.SearchResult` (score desc, id asc; ``-1``/``-inf`` pad).
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        with _blas.single_threaded():
            net = self.head.qnet(query)
        return self.rerank_qnet(net, candidates, k)

    def rerank_qnet(self, net: QNet, candidates: I64, k: int) -> SearchResult:
        """:meth:`rerank` with the q-net already built (one query, unstacked)."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if net.nq is not None:
            raise ValueError("rerank takes one query's q-net, not a stack")
        out_s = np.full((1, k), -np.inf, dtype=np.float32)
        out_i = np.full((1, k), -1, dtype=np.int64)
        cand = np.unique(np.asarray(candidates, dtype=np.int64).ravel())
        rows = self.store.rows_of(cand[cand >= 0])
        rows = rows[self.store.alive_mask()[rows]]
        if len(rows):
            # Small matmuls (one query): a second BLAS thread on a busy box only adds waiting
            # (the same reason as in index.maxsim).
            with _blas.single_threaded():
                scores = net.scores(self.store.vectors[rows])
            s, i = topk_1d(scores, self.store.ids[rows], k)
            out_s[0, : len(s)], out_i[0, : len(i)] = s, i
        return SearchResult(out_s, out_i)
