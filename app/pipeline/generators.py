"""Generator stages: they make the candidates (``index``, ``exact``, ``ids``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.pipeline.base import DENSE, MULTI, Candidate, Context, Stage, Trace, rescan
from app.search import Query, search
from index.base import IdSelector, SearchResult
from index.flat import FlatIndex
from index.hnsw import EXACT_ROWS, EXACT_SQRT
from index.merge import merge_results

__all__ = ["ExactStage", "IdsStage", "IndexStage", "exact_top", "filter_note"]


class IndexStage(Stage):
    """The collection's own index (and unindexed tail), as ``/search`` runs it."""

    NAME = "index"
    generator = True
    ARGS = ("k", "params")

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        params = args.get("params", {})
        if not isinstance(params, dict) or not all(
            isinstance(v, int | float | bool) for v in params.values()
        ):
            raise InvalidInput(f"{where}.params: must be an object of numbers or booleans")
        self.params: dict[str, int | float | bool | str] = params
        self.needs = frozenset({"query"})

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        depth = min(self.k + (ctx.exclude is not None), ctx.max_k)
        if ctx.tokens is not None:
            q = Query(vectors=ctx.tokens, k=depth, filter=ctx.filter, params=self.params)
        else:
            assert ctx.vector is not None
            q = Query(vector=ctx.vector.tolist(), k=depth, filter=ctx.filter, params=self.params)
        q.with_payload = False
        try:
            outcome = search(ctx.col, [q], ctx.max_k)[0]
        except InvalidInput as e:
            raise InvalidInput(f"{self.where}: {e.message}", e.details) from e
        if ctx.filter is not None and ctx.explain:  # a pass over every segment's ids
            self.note = filter_note(ctx)
        hits = [(h.id, h.score) for h in outcome.hits if h.id != ctx.exclude]
        return hits[: self.k], outcome.exact, None


def filter_note(ctx: Context) -> str | None:
    """How a filtered search ran on the approximate segments: each searches exactly over its
    allowed points when they are few (the indexes' own rule, see :mod:`index.hnsw`), else
    filters inside the index and redoes the query exactly if that comes back short of ``k``;
    a filtered search is never silently under-filled."""
    segments, _ = ctx.col.parts()
    approx = [s for s in segments if not type(s.index).exact]
    if not approx:
        return None
    allowed = ctx.col.points.iids(ctx.filter)
    exact = filtered = 0
    for seg in approx:
        n = len(seg.ids)
        m = int(np.isin(seg.ids, allowed, assume_unique=True).sum())
        if m <= max(EXACT_ROWS, EXACT_SQRT * math.sqrt(n)):
            exact += 1
        else:
            filtered += 1
    parts = []
    if exact:
        parts.append(f"{exact} segment(s) by exact scan over the allowed points")
    if filtered:
        parts.append(
            f"{filtered} by filtered index search, redone exactly if it returns fewer than k"
        )
    return f"filter allows {len(allowed)} points: " + "; ".join(parts)


class ExactStage(Stage):
    """Brute force over every stored float vector: the exact top-k."""

    NAME = "exact"
    generator = True
    KINDS = (DENSE,)
    needs = frozenset({"vector"})

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        return exact_top(ctx, self.k), True, None


def exact_top(ctx: Context, k: int) -> list[Candidate]:
    """Exact top-``k`` by inner product over the collection's live rows (filter applied)."""
    assert ctx.vector is not None
    col = ctx.col
    depth = min(k + (ctx.exclude is not None), ctx.max_k)
    xq = ctx.vector[None, :]

    def scan() -> list[tuple[int, float]]:
        flt = ctx.filter
        selector = IdSelector(col.points.iids(flt)) if flt is not None else None
        segments, tails = col.parts()
        stores = [s.store for s in segments] + list(tails)
        parts: list[SearchResult] = [
            s.search(xq, depth, selector) for s in stores if isinstance(s, FlatIndex)
        ]
        return merge_results(parts, depth).row(0) if parts else []

    return rescan(scan, col, ctx.exclude)[:k]


class IdsStage(Stage):
    """Given point ids, in the given order (score 0; rescore them); the filter applies."""

    NAME = "ids"
    generator = True
    ARGS = ("ids",)
    KINDS = (DENSE, MULTI)

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        ids = args.get("ids")
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= max_k
            or not all(isinstance(i, int | str) and not isinstance(i, bool) for i in ids)
        ):
            raise InvalidInput(f"{where}.ids: give a list of 1 to {max_k} point ids")
        self.ids: list[int | str] = ids
        self.k = len(ids)

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        iids = [ctx.col.require(i)[0] for i in self.ids]
        allowed = None if ctx.filter is None else set(ctx.col.points.iids(ctx.filter).tolist())
        out: list[Candidate] = []
        seen: set[int | str] = set()
        for pid, iid in zip(self.ids, iids, strict=True):
            if pid in seen or pid == ctx.exclude or (allowed is not None and iid not in allowed):
                continue
            seen.add(pid)
            out.append((pid, 0.0))
        return out, True, None
