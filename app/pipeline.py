"""Query pipelines: ordered stages per request, with explain traces and measured recall.

A pipeline is a list of one-key objects ``{name: {args}}``. The first stage produces
candidates (a generator or a fusion of generators); every later stage re-scores or cuts
them, and may not ask for more than it is given::

    [{"index": {"k": 100}}, {"rescore": {"k": 10}}]
    [{"rrf": {"of": [{"index": {"k": 50}}, {"exact": {"k": 50}}], "k": 10}}]

Stages work on ``(point id, score)`` lists, best first. :data:`REGISTRY` lists every stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import orjson

from app.collection import Collection
from app.errors import InvalidInput
from app.filters import Filter
from app.search import Query, search
from index.base import F32, IdSelector, SearchResult
from index.flat import FlatIndex
from index.merge import merge_results

__all__ = ["REGISTRY", "Candidate", "Context", "Plan", "Result", "Stage", "Trace", "parse", "run"]

Candidate = tuple[int | str, float]  # (point id, score)
RRF_CONSTANT = 60


@dataclass
class Context:
    """What every stage may read: the collection, the query and its options."""

    col: Collection
    vector: F32 | None  # (dim,) float32, normalised on cosine collections
    filter: Filter | None
    exclude: int | str | None  # the query point itself (searches by id)
    max_k: int


@dataclass
class Trace:
    """What one stage did (``explain``)."""

    stage: str
    input: int
    output: int
    took_ms: float
    exact: bool
    of: list[Trace] | None = None


class Stage:
    """One step; ``generator`` stages make candidates, the others take them in."""

    NAME: ClassVar[str]
    generator: ClassVar[bool] = False
    needs_vector: ClassVar[bool] = False
    ARGS: ClassVar[tuple[str, ...]] = ("k",)

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        self.where = where
        self.k = _k(where, args.get("k"), max_k) if "k" in self.ARGS else 0

    def apply(self, ctx: Context, cands: list[Candidate]) -> tuple[list[Candidate], Trace]:
        """Run, timed; the trace counts candidates in and out."""
        t0 = time.perf_counter()
        out, exact, sub = self.run(ctx, cands)
        took = (time.perf_counter() - t0) * 1000
        return out, Trace(self.NAME, len(cands), len(out), took, exact, sub)

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        raise NotImplementedError


def _k(where: str, k: Any, max_k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise InvalidInput(f"{where}.k: must be an integer between 1 and {max_k}, got {k!r}")
    return k


class IndexStage(Stage):
    """The collection's own index (and unindexed tail), as ``/search`` runs it."""

    NAME = "index"
    generator = needs_vector = True
    ARGS = ("k", "params")

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        params = args.get("params", {})
        if not isinstance(params, dict) or not all(
            isinstance(v, int | float | bool) for v in params.values()
        ):
            raise InvalidInput(f"{where}.params: must be an object of numbers or booleans")
        self.params: dict[str, int | float | bool] = params

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        assert ctx.vector is not None
        depth = min(self.k + (ctx.exclude is not None), ctx.max_k)
        q = Query(vector=ctx.vector.tolist(), k=depth, filter=ctx.filter, params=self.params)
        q.with_payload = False
        try:
            outcome = search(ctx.col, [q], ctx.max_k)[0]
        except InvalidInput as e:
            raise InvalidInput(f"{self.where}: {e.message}", e.details) from e
        hits = [(h.id, h.score) for h in outcome.hits if h.id != ctx.exclude]
        return hits[: self.k], outcome.exact, None


class ExactStage(Stage):
    """Brute force over every stored float vector: the exact top-k."""

    NAME = "exact"
    generator = needs_vector = True

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        assert ctx.vector is not None
        return exact_top(ctx, self.k), True, None


def exact_top(ctx: Context, k: int) -> list[Candidate]:
    """Exact top-``k`` by inner product over the collection's live rows (filter applied)."""
    assert ctx.vector is not None
    col = ctx.col
    depth = min(k + (ctx.exclude is not None), ctx.max_k)
    segments, tails = col.parts()
    selector = IdSelector(col.points.iids(ctx.filter)) if ctx.filter is not None else None
    xq = ctx.vector[None, :]
    stores = [s.store for s in segments] + list(tails)
    parts: list[SearchResult] = [
        s.search(xq, depth, selector) for s in stores if isinstance(s, FlatIndex)
    ]
    if not parts:
        return []
    return _external(col, merge_results(parts, depth).row(0), ctx.exclude)[:k]


def _external(
    col: Collection, hits: list[tuple[int, float]], exclude: int | str | None
) -> list[Candidate]:
    """Internal ids to point ids, dropping points deleted meanwhile and ``exclude``."""
    stored = col.points.by_iids([iid for iid, _ in hits])
    out: list[Candidate] = []
    for iid, score in hits:
        if iid in stored:
            pid = orjson.loads(stored[iid][0])
            if pid != exclude:
                out.append((pid, score))
    return out


class IdsStage(Stage):
    """Given point ids, in the given order (score 0; rescore them); the filter applies."""

    NAME = "ids"
    generator = True
    ARGS = ("ids",)

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


class RrfStage(Stage):
    """Reciprocal rank fusion: ``score(p) = sum over inputs of 1 / (rank_constant + rank)``,
    ranks from 1; ties keep the order of first appearance.

    >>> rrf([[("a", 9.0), ("b", 8.0)], [("b", 1.0), ("c", 0.5)]], 60, 3)[0][0]
    'b'
    """

    NAME = "rrf"
    generator = True
    ARGS = ("k", "of", "rank_constant")

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        of = args.get("of")
        if not isinstance(of, list) or not of:
            raise InvalidInput(f"{where}.of: give a non-empty list of generator stages to fuse")
        self.of = [build(f"{where}.of[{i}]", s, max_k) for i, s in enumerate(of)]
        for s in self.of:
            if not s.generator:
                raise InvalidInput(
                    f"{s.where}: {s.NAME!r} is not a generator; rrf fuses "
                    f"{', '.join(n for n, c in REGISTRY.items() if c.generator)}"
                )
        c = args.get("rank_constant", RRF_CONSTANT)
        if isinstance(c, bool) or not isinstance(c, int | float) or c < 0:
            raise InvalidInput(f"{where}.rank_constant: must be a number >= 0, got {c!r}")
        self.rank_constant = float(c)
        self.needs_vector = any(s.needs_vector for s in self.of)  # type: ignore[misc]

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        lists, traces = [], []
        for s in self.of:
            out, trace = s.apply(ctx, [])
            lists.append(out)
            traces.append(trace)
        return rrf(lists, self.rank_constant, self.k), all(t.exact for t in traces), traces


def rrf(lists: list[list[Candidate]], rank_constant: float, k: int) -> list[Candidate]:
    """Fuse ranked lists by reciprocal rank; best ``k`` first."""
    scores: dict[int | str, float] = {}
    for hits in lists:
        for rank, (pid, _) in enumerate(hits, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (rank_constant + rank)
    order = {pid: i for i, pid in enumerate(scores)}
    best = sorted(scores.items(), key=lambda t: (-t[1], order[t[0]]))
    return best[:k]


class RescoreStage(Stage):
    """Exact inner product of the query with each candidate's stored float vector."""

    NAME = "rescore"
    needs_vector = True

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        assert ctx.vector is not None
        rows: list[F32] = []
        kept: list[int | str] = []
        for pid, _ in cands:
            found = ctx.col.get(pid)
            vec = None if found is None else ctx.col.vector_of(found[0])
            if vec is not None:  # deleted meanwhile: drop
                rows.append(vec)
                kept.append(pid)
        if not rows:
            return [], True, None
        scores = np.stack(rows) @ ctx.vector
        order = np.argsort(-scores, kind="stable")[: self.k]  # ties keep candidate order
        return [(kept[i], float(scores[i])) for i in order], True, None


class LimitStage(Stage):
    """Keep the first ``k`` candidates."""

    NAME = "limit"

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        return cands[: self.k], True, None


#: Every stage by name; what ``parse`` accepts.
REGISTRY: dict[str, type[Stage]] = {
    s.NAME: s for s in (IndexStage, ExactStage, IdsStage, RrfStage, RescoreStage, LimitStage)
}


def build(where: str, spec: Any, max_k: int) -> Stage:
    """One stage from its ``{name: {args}}`` object."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise InvalidInput(
            f'{where}: a stage is an object with one key, its name, e.g. {{"index": {{"k": 100}}}}'
        )
    ((name, args),) = spec.items()
    cls = REGISTRY.get(name)
    if cls is None:
        raise InvalidInput(
            f"{where}: unknown stage {name!r} (known: {', '.join(sorted(REGISTRY))})"
        )
    if not isinstance(args, dict):
        raise InvalidInput(f"{where}.{name}: arguments must be an object")
    unknown = set(args) - set(cls.ARGS)
    if unknown:
        raise InvalidInput(
            f"{where}.{name}: unknown arguments {', '.join(sorted(unknown))} "
            f"(it takes: {', '.join(cls.ARGS)})"
        )
    return cls(f"{where}.{name}", args, max_k)


@dataclass
class Plan:
    """A parsed pipeline; ``k`` is the most hits it can return."""

    stages: list[Stage]

    @property
    def k(self) -> int:
        return self.stages[-1].k

    @property
    def needs_vector(self) -> bool:
        return any(s.needs_vector for s in self.stages)


def parse(stages: list[Any], max_k: int) -> Plan:
    """Check a pipeline: a generator first, then re-scorers that never ask for more."""
    if not stages:
        raise InvalidInput('stages: give at least one stage, e.g. [{"index": {"k": 10}}]')
    plan = Plan([build(f"stages[{i}]", s, max_k) for i, s in enumerate(stages)])
    gens = ", ".join(n for n, c in REGISTRY.items() if c.generator)
    if not plan.stages[0].generator:
        raise InvalidInput(
            f"stages[0]: {plan.stages[0].NAME!r} needs candidates; start with one of: {gens}"
        )
    for prev, s in zip(plan.stages, plan.stages[1:], strict=False):
        if s.generator:
            raise InvalidInput(f"{s.where}: only the first stage may generate (fuse with rrf)")
        if s.k > prev.k:
            raise InvalidInput(
                f"{s.where}.k: {s.k} is more than the {prev.k} candidates it is given"
            )
    return plan


@dataclass
class Result:
    hits: list[Candidate]
    exact: bool
    took_ms: float
    traces: list[Trace] = field(default_factory=list)
    recall: float | None = None
    payloads: dict[int | str, Any] = field(default_factory=dict)


def run(plan: Plan, ctx: Context, measure_recall: bool = False) -> Result:
    """Run ``plan``; with ``measure_recall``, recall@k of the hits against :func:`exact_top`."""
    t0 = time.perf_counter()
    if (plan.needs_vector or measure_recall) and ctx.col.multivector:
        what = (
            "measure_recall"
            if not plan.needs_vector
            else next(s.where for s in plan.stages if s.needs_vector)
        )
        raise InvalidInput(
            f"{what}: needs dense float vectors; collection {ctx.col.config.name!r} is multi-vector"
        )
    if (plan.needs_vector or measure_recall) and ctx.vector is None:
        raise InvalidInput("give 'vector', 'text' or 'id': the pipeline scores by a query vector")
    cands: list[Candidate] = []
    traces: list[Trace] = []
    exact = True
    for s in plan.stages:
        cands, trace = s.apply(ctx, cands)
        traces.append(trace)
        exact &= trace.exact or not s.generator
    took = (time.perf_counter() - t0) * 1000
    recall = None
    if measure_recall:
        truth = {pid for pid, _ in exact_top(ctx, plan.k)}
        got = {pid for pid, _ in cands}
        recall = len(truth & got) / len(truth) if truth else 1.0
    return Result(cands, exact, took, traces, recall)
