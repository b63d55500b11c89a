"""Stages that take candidates in: exact re-scorers (``ip``, ``maxsim``) and cuts
(``filter``, ``threshold``, ``limit``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from app.errors import InvalidInput
from app.filters import Filter, evaluate
from app.pipeline.base import DENSE, MULTI, Candidate, Context, Stage, Trace
from index.base import F32
from index.maxsim import maxsim_scores, pack

__all__ = ["FilterStage", "IpStage", "LimitStage", "MaxSimStage", "RescoreStage", "ThresholdStage"]


def stored(ctx: Context, cands: list[Candidate]) -> tuple[list[int | str], list[F32]]:
    """Candidates still stored, with their vectors (token sets); deleted meanwhile: dropped."""
    kept: list[int | str] = []
    rows: list[F32] = []
    for pid, _ in cands:
        found = ctx.col.get(pid)
        vec = None if found is None else ctx.col.vector_of(found[0])
        if vec is not None:
            rows.append(vec)
            kept.append(pid)
    return kept, rows


def top(kept: list[int | str], scores: F32, k: int) -> list[Candidate]:
    order = np.argsort(-scores, kind="stable")[:k]  # ties keep candidate order
    return [(kept[i], float(scores[i])) for i in order]


class IpStage(Stage):
    """Exact inner product of the query with each candidate's stored float vector."""

    NAME = "ip"
    KINDS = (DENSE,)
    needs = frozenset({"vector"})

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        assert ctx.vector is not None
        kept, rows = stored(ctx, cands)
        if not rows:
            return [], True, None
        return top(kept, np.stack(rows) @ ctx.vector, self.k), True, None


class RescoreStage(IpStage):
    """``rescore``: the first name of ``ip``, kept so existing pipelines keep working."""

    NAME = "rescore"


class MaxSimStage(Stage):
    """Exact MaxSim (Chamfer) of the query tokens with each candidate's stored token set."""

    NAME = "maxsim"
    KINDS = (MULTI,)
    needs = frozenset({"tokens"})

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        assert ctx.tokens is not None
        kept, sets = stored(ctx, cands)
        if not sets:
            return [], True, None
        tokens, offsets = pack(sets, ctx.col.dim)
        return top(kept, maxsim_scores(ctx.tokens, tokens, offsets), self.k), True, None


class FilterStage(Stage):
    """Keep the candidates whose payload matches ``where`` (the search filter language)."""

    NAME = "filter"
    ARGS = ("where",)

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        try:
            self.flt = Filter.model_validate(args.get("where"))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"{where}.where{'.' + loc if loc else ''}: {first['msg']}") from e

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        out = []
        for pid, score in cands:
            found = ctx.col.get(pid)
            if found is not None and evaluate(self.flt, pid, found[1]):
                out.append((pid, score))
        return out, True, None


class ThresholdStage(Stage):
    """Keep the candidates scoring at least ``min`` (scores as the previous stage gave them)."""

    NAME = "threshold"
    ARGS = ("min",)

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        m = args.get("min")
        if isinstance(m, bool) or not isinstance(m, int | float) or not np.isfinite(m):
            raise InvalidInput(f"{where}.min: give a finite number, got {m!r}")
        self.min = float(m)

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        return [(p, s) for p, s in cands if s >= self.min], True, None


class LimitStage(Stage):
    """Keep the first ``k`` candidates."""

    NAME = "limit"

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        return cands[: self.k], True, None
