"""Parsing and running a pipeline: the stage registry, the checks, the run loop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidInput
from app.pipeline.base import Candidate, Context, Stage, Trace
from app.pipeline.fusion import RrfStage, WeightedStage
from app.pipeline.generators import ExactStage, IdsStage, IndexStage, exact_top
from app.pipeline.hypencoder import HypencoderStage
from app.pipeline.lexical import LexicalStage
from app.pipeline.rescorers import (
    FilterStage,
    IpStage,
    LimitStage,
    MaxSimStage,
    RescoreStage,
    ThresholdStage,
)

__all__ = ["REGISTRY", "Plan", "Result", "build", "parse", "run"]

#: Every stage by name; what ``parse`` accepts.
REGISTRY: dict[str, type[Stage]] = {
    s.NAME: s
    for s in (
        IndexStage,
        ExactStage,
        IdsStage,
        LexicalStage,
        RrfStage,
        WeightedStage,
        IpStage,
        RescoreStage,
        MaxSimStage,
        HypencoderStage,
        FilterStage,
        ThresholdStage,
        LimitStage,
    )
}

_INPUT = {
    "vector": "a dense query: 'vector', 'text' or 'id'",
    "tokens": "a multi-vector query: 'vectors', 'text' or 'id'",
    "text": "the query 'text'",
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
    def needs(self) -> frozenset[str]:
        return frozenset().union(*(s.needs for s in self.stages))


def _kind_check(s: Stage, kind: str) -> None:
    for sub in getattr(s, "of", []):  # name the innermost stage at fault
        _kind_check(sub, kind)
    if kind not in s.KINDS:
        only = " or ".join(s.KINDS)
        raise InvalidInput(f"{s.where}: {s.NAME!r} works on {only} collections; this one is {kind}")


def parse(stages: Any, max_k: int, kind: str | None = None) -> Plan:
    """Check a pipeline: a generator first, then stages that never ask for more candidates
    than they are given; with ``kind`` (``dense`` or ``multi-vector``), every stage must work
    on that kind of collection."""
    if not isinstance(stages, list) or not stages:
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
        if "k" not in s.ARGS:  # cuts pass at most what they are given
            s.k = prev.k
        elif s.k > prev.k:
            raise InvalidInput(
                f"{s.where}.k: {s.k} is more than the {prev.k} candidates it is given"
            )
    if kind is not None:
        for s in plan.stages:
            _kind_check(s, kind)
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
    have = {
        "vector": ctx.vector is not None,
        "tokens": ctx.tokens is not None,
        "text": ctx.text is not None,
    }
    have["query"] = have["vector"] or have["tokens"]
    if measure_recall and ctx.col.multivector:
        raise InvalidInput(
            f"measure_recall: needs dense float vectors; collection {ctx.col.config.name!r} "
            "is multi-vector"
        )
    for s in plan.stages:
        for sub in [*getattr(s, "of", []), s]:
            missing = [n for n in sorted(sub.needs) if not have[n]]
            if missing:
                what = "vector" if missing[0] == "query" else missing[0]
                if what == "vector" and ctx.col.multivector:
                    what = "tokens"
                raise InvalidInput(f"{sub.where}: needs {_INPUT[what]}")
    if measure_recall and ctx.vector is None:
        raise InvalidInput(f"measure_recall: needs {_INPUT['vector']}")
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
