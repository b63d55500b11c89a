"""Fusion stages: several generators in, one ranked list out (``rrf``, ``weighted``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.pipeline.base import Candidate, Context, Stage, Trace

__all__ = ["NORMALIZERS", "RRF_CONSTANT", "RrfStage", "WeightedStage", "rrf", "weighted"]

RRF_CONSTANT = 60


class _Fusion(Stage):
    """Runs its ``of`` generators on the same query and fuses their lists."""

    generator = True

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        from app.pipeline.plan import REGISTRY, build  # the registry holds this class too

        of = args.get("of")
        if not isinstance(of, list) or not of:
            raise InvalidInput(f"{where}.of: give a non-empty list of generator stages to fuse")
        self.of = [build(f"{where}.of[{i}]", s, max_k) for i, s in enumerate(of)]
        for s in self.of:
            if not s.generator:
                raise InvalidInput(
                    f"{s.where}: {s.NAME!r} is not a generator; {self.NAME} fuses "
                    f"{', '.join(n for n, c in REGISTRY.items() if c.generator)}"
                )
        self.needs = frozenset().union(*(s.needs for s in self.of))
        self.KINDS = tuple(k for k in self.KINDS if all(k in s.KINDS for s in self.of))  # type: ignore[misc]

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        lists, traces = [], []
        for s in self.of:
            out, trace = s.apply(ctx, [])
            lists.append(out)
            traces.append(trace)
        return self.fuse(lists), all(t.exact for t in traces), traces

    def fuse(self, lists: list[list[Candidate]]) -> list[Candidate]:
        raise NotImplementedError


class RrfStage(_Fusion):
    """Reciprocal rank fusion: ``score(p) = sum over inputs of 1 / (rank_constant + rank)``,
    ranks from 1; ties keep the order of first appearance.

    >>> rrf([[("a", 9.0), ("b", 8.0)], [("b", 1.0), ("c", 0.5)]], 60, 3)[0][0]
    'b'
    """

    NAME = "rrf"
    ARGS = ("k", "of", "rank_constant")

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        c = args.get("rank_constant", RRF_CONSTANT)
        if isinstance(c, bool) or not isinstance(c, int | float) or c < 0:
            raise InvalidInput(f"{where}.rank_constant: must be a number >= 0, got {c!r}")
        self.rank_constant = float(c)

    def fuse(self, lists: list[list[Candidate]]) -> list[Candidate]:
        return rrf(lists, self.rank_constant, self.k)


def rrf(lists: list[list[Candidate]], rank_constant: float, k: int) -> list[Candidate]:
    """Fuse ranked lists by reciprocal rank; best ``k`` first."""
    scores: dict[int | str, float] = {}
    for hits in lists:
        for rank, (pid, _) in enumerate(hits, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (rank_constant + rank)
    return _best(scores, k)


def _best(scores: dict[int | str, float], k: int) -> list[Candidate]:
    order = {pid: i for i, pid in enumerate(scores)}
    return sorted(scores.items(), key=lambda t: (-t[1], order[t[0]]))[:k]


def _minmax(s: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    span = s.max() - s.min()
    return (s - s.min()) / span if span > 0 else np.ones_like(s)


def _zscore(s: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sd = s.std()
    return (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)


#: Per-list score normalisations for ``weighted``: scores of a lexical and a dense list live
#: on different scales, so each list is mapped to a common one before weighting.
NORMALIZERS: dict[str, Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]] = {
    "minmax": _minmax,
    "zscore": _zscore,
    "none": lambda s: s,
}


class WeightedStage(_Fusion):
    """Weighted score fusion: each list's scores normalised (``minmax`` to [0, 1] by default,
    ``zscore`` or ``none``), then ``score(p) = sum_i weight_i * norm_i(p)``; a point missing
    from a list gets nothing from it. ``weights`` default to equal."""

    NAME = "weighted"
    ARGS = ("k", "of", "weights", "normalize")

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        weights = args.get("weights", [1.0] * len(self.of))
        if (
            not isinstance(weights, list)
            or len(weights) != len(self.of)
            or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        ):
            raise InvalidInput(
                f"{where}.weights: give one number per fused stage ({len(self.of)}), "
                f"got {weights!r}"
            )
        self.weights = [float(w) for w in weights]
        norm = args.get("normalize", "minmax")
        if norm not in NORMALIZERS:
            raise InvalidInput(
                f"{where}.normalize: unknown {norm!r} (known: {', '.join(NORMALIZERS)})"
            )
        self.normalize = str(norm)

    def fuse(self, lists: list[list[Candidate]]) -> list[Candidate]:
        return weighted(lists, self.weights, self.normalize, self.k)


def weighted(
    lists: list[list[Candidate]], weights: list[float], normalize: str, k: int
) -> list[Candidate]:
    """Fuse ranked lists by weighted normalised scores; best ``k`` first.

    >>> weighted([[("a", 2.0), ("b", 1.0)], [("b", 9.0), ("c", 1.0)]], [1.0, 1.0], "minmax", 2)
    [('a', 1.0), ('b', 1.0)]
    """
    norm = NORMALIZERS[normalize]
    scores: dict[int | str, float] = {}
    for hits, w in zip(lists, weights, strict=True):
        if not hits:
            continue
        s = norm(np.array([score for _, score in hits], dtype=np.float64))
        for (pid, _), v in zip(hits, s, strict=True):
            scores[pid] = scores.get(pid, 0.0) + w * float(v)
    return _best(scores, k)
