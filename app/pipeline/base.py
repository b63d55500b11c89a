"""What every pipeline stage shares: the query context, candidates, traces and the contract."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from app.collection import Collection
from app.errors import InvalidInput
from app.filters import Filter
from app.search import SCAN_ATTEMPTS
from index.base import F32

if TYPE_CHECKING:
    from app.pipeline.hypencoder import Heads

__all__ = [
    "DENSE",
    "MULTI",
    "Candidate",
    "Context",
    "Stage",
    "Trace",
    "check_k",
    "external",
    "rescan",
]

Candidate = tuple[int | str, float]  # (point id, score)
DENSE, MULTI = "dense", "multi-vector"


@dataclass
class Context:
    """What every stage may read: the collection, the query and its options."""

    col: Collection
    vector: F32 | None  # (dim,) float32, normalised on cosine collections (dense)
    filter: Filter | None
    exclude: int | str | None  # the query point itself (searches by id)
    max_k: int
    text: str | None = None  # the query text, for lexical stages
    tokens: F32 | None = None  # (t, dim) float32 query token vectors (multi-vector)
    heads: Heads | None = None  # hypencoder heads (app.pipeline.hypencoder)
    explain: bool = False  # the caller reads the traces: stages may add their notes


@dataclass
class Trace:
    """What one stage did (``explain``)."""

    stage: str
    input: int
    output: int
    took_ms: float
    exact: bool
    of: list[Trace] | None = None
    min_score: float | None = None
    max_score: float | None = None
    note: str | None = None


class Stage:
    """One step; ``generator`` stages make candidates, the others take them in.

    ``KINDS`` names the collection kinds a stage works on; ``needs`` names the query input it
    reads (``vector``: dense float query, ``tokens``: multi-vector query, ``text``).
    """

    NAME: ClassVar[str]
    generator: ClassVar[bool] = False
    KINDS: ClassVar[tuple[str, ...]] = (DENSE, MULTI)
    ARGS: ClassVar[tuple[str, ...]] = ("k",)
    needs: frozenset[str] = frozenset()

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        self.where = where
        self.k = check_k(where, args.get("k"), max_k) if "k" in self.ARGS else 0
        self.note: str | None = None

    def apply(self, ctx: Context, cands: list[Candidate]) -> tuple[list[Candidate], Trace]:
        """Run, timed; the trace counts candidates in and out and spans their scores."""
        t0 = time.perf_counter()
        out, exact, sub = self.run(ctx, cands)
        took = (time.perf_counter() - t0) * 1000
        scores = [s for _, s in out]
        lo, hi = (min(scores), max(scores)) if scores else (None, None)
        return out, Trace(self.NAME, len(cands), len(out), took, exact, sub, lo, hi, self.note)

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        raise NotImplementedError


def check_k(where: str, k: Any, max_k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise InvalidInput(f"{where}.k: must be an integer between 1 and {max_k}, got {k!r}")
    return k


def external(
    col: Collection, hits: list[tuple[int, float]], exclude: int | str | None
) -> tuple[list[Candidate], bool]:
    """Internal ids to point ids, dropping ``exclude``; also whether every hit was still
    stored (False: a point was replaced or deleted after the scan read it, so the caller
    scans again, as :func:`app.search.search` does)."""
    stored = col.points.by_iids([iid for iid, _ in hits])
    out: list[Candidate] = []
    for iid, score in hits:
        if iid in stored:
            pid = orjson.loads(stored[iid][0])
            if pid != exclude:
                out.append((pid, score))
    return out, len(stored) == len({iid for iid, _ in hits})


def rescan(
    scan: Callable[[], list[tuple[int, float]]], col: Collection, exclude: int | str | None
) -> list[Candidate]:
    """Run ``scan`` (internal-id hits) and map it to point ids, scanning again (up to
    :data:`app.search.SCAN_ATTEMPTS` times) while concurrent writes made some hits vanish."""
    for _ in range(SCAN_ATTEMPTS):
        out, complete = external(col, scan(), exclude)
        if complete:
            break
    return out
