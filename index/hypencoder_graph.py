"""Approximate Hypencoder search: walk a neighbour graph of the documents, guided by q-net scores.

Scoring every document with a query's q-net costs one small MLP per document (at 57k × 384 and
one hidden layer, ~8 GFLOP a query). The Hypencoder paper instead searches a graph in which
each document links to its nearest neighbours: start from a few seeds (here, the inner-product
top hits the first stage already has), then repeatedly score the not-yet-seen neighbours of the
best ``expand`` documents not yet expanded, keeping the best ``beam``; stop when every document
in the beam has been expanded or after ``max_steps`` rounds. Every score returned is the exact
q-net score of a document that was visited; what is approximate is which documents are visited,
so quality is measured as recall against exhaustive q-net scoring (``bench/hypencoder_graph``).

The graph is any ``(n, m) int32`` table of row numbers (``-1`` pads short rows): :func:`knn_graph`
builds the exact inner-product neighbours, the level-0 links of an HNSW index serve as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from index.base import F32, I64, Bool
from index.hypencoder import QNet

__all__ = ["GraphHits", "graph_search", "knn_graph"]

I32 = npt.NDArray[np.int32]


def knn_graph(x: F32, m: int, block: int = 2048) -> I32:
    """The ``m`` nearest rows of each row of ``x (n, d) float32`` by inner product, self
    excluded, best first (ties: lower row first); ``(n, m) int32``, ``1 <= m < n``."""
    if x.ndim != 2 or x.dtype != np.float32:
        raise ValueError(f"x must be (n, d) float32, got {x.dtype} {x.shape}")
    n = len(x)
    if not 1 <= m < n:
        raise ValueError(f"m must be between 1 and n - 1 = {n - 1}, got {m}")
    out = np.empty((n, m), np.int32)
    for s in range(0, n, block):
        e = min(n, s + block)
        sims = x[s:e] @ x.T
        sims[np.arange(e - s), np.arange(s, e)] = -np.inf
        part = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        out[s:e] = np.take_along_axis(part, order, axis=1)
    return out


@dataclass
class GraphHits:
    """One query's result: ``rows``/``scores`` best first (score desc, row asc), how many
    documents the q-net scored, and the rounds taken."""

    rows: I64
    scores: F32
    scored: int
    steps: int


def _best(rows: I64, scores: F32, n: int) -> I64:
    """Positions of the ``n`` best (score desc, row asc)."""
    return np.lexsort((rows, -scores))[:n]


def graph_search(
    net: QNet,
    vectors: F32,
    graph: I32,
    seeds: I64,
    k: int,
    beam: int = 64,
    expand: int = 8,
    max_steps: int = 64,
    alive: Bool | None = None,
) -> GraphHits:
    """Best ``k`` rows of ``vectors (n, d) float32`` by one query's q-net, walking ``graph``.

    Args:
        net: one query's q-net (unstacked).
        graph: ``(n, m) int32`` neighbour rows, ``-1`` padded.
        seeds: ``(s,) int64`` rows to start from (``-1`` and repeats are skipped).
        beam: documents kept between rounds (``>= k``); larger finds more, scores more.
        expand: documents whose neighbours are scored per round.
        alive: ``(n,) bool``; dead rows score ``-inf``: never returned, never expanded.
    """
    n = len(vectors)
    if vectors.ndim != 2 or vectors.dtype != np.float32:
        raise ValueError(f"vectors must be (n, d) float32, got {vectors.dtype} {vectors.shape}")
    if graph.ndim != 2 or len(graph) != n or graph.dtype != np.int32:
        raise ValueError(f"graph must be ({n}, m) int32, got {graph.dtype} {graph.shape}")
    if net.nq is not None:
        raise ValueError("graph_search takes one query's q-net, not a stack")
    if k < 1 or beam < k or expand < 1 or max_steps < 0:
        raise ValueError(
            f"need k >= 1, beam >= k, expand >= 1, max_steps >= 0; got k={k}, beam={beam}, "
            f"expand={expand}, max_steps={max_steps}"
        )
    visited = np.zeros(n, bool)
    start = np.unique(np.asarray(seeds, np.int64))
    start = start[(start >= 0) & (start < n)]
    visited[start] = True
    rows, scores = start, _score(net, vectors, start, alive)
    done = np.zeros(len(rows), bool)  # expanded
    scored, steps = len(rows), 0
    while steps < max_steps:
        keep = _best(rows, scores, beam)
        rows, scores, done = rows[keep], scores[keep], done[keep]
        todo = np.flatnonzero(~done)[:expand]  # already in best-first order
        if not len(todo):
            break
        steps += 1
        done[todo] = True
        links = graph[rows[todo]].ravel()
        nb: I64 = np.unique(links[links >= 0]).astype(np.int64)
        nb = nb[~visited[nb]]
        if not len(nb):
            continue
        visited[nb] = True
        scored += len(nb)
        rows = np.concatenate([rows, nb])
        scores = np.concatenate([scores, _score(net, vectors, nb, alive)])
        done = np.concatenate([done, np.zeros(len(nb), bool)])
    top = _best(rows, scores, k)
    top = top[np.isfinite(scores[top])]
    return GraphHits(rows[top], scores[top], scored, steps)


def _score(net: QNet, vectors: F32, rows: I64, alive: Bool | None) -> F32:
    s = net.scores(vectors[rows]) if len(rows) else np.empty(0, np.float32)
    if alive is not None:
        s[~alive[rows]] = -np.inf
    out: F32 = s.astype(np.float32, copy=False)
    return out
