"""Query execution over one collection: sealed segments + the unindexed tail, merged exactly.

Queries that share a filter and a depth run as one batch, so the flat scan uses sgemm.
Hits are ordered by score descending, then internal id ascending (insertion order of the
point's current version), which keeps ``offset`` pages stable.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from app import multivector
from app.collection import Collection
from app.dense import WireVector
from app.errors import InvalidInput
from app.filters import Filter
from app.knobs import search_part
from app.store.tokens import TokenBatch
from index.base import F32, IdSelector, SearchResult
from index.flat import FlatIndex
from index.merge import merge_results
from index.spec import knobs

if TYPE_CHECKING:
    from app.pipeline.base import Trace

#: Scans per group of queries when concurrent writes replaced some of their hits meanwhile
#: (each retry sees a newer state; a write storm that outruns them all leaves fewer hits).
SCAN_ATTEMPTS = 4


@dataclass
class Query:
    """One search: a vector (token vectors, multi-vector) or a point id to search by, plus
    options."""

    vector: WireVector | None = None
    vectors: list[list[float]] | F32 | None = None
    point_id: int | str | None = None
    text: str | None = None
    encoder: str | None = None
    k: int = 10
    offset: int = 0
    filter: Filter | None = None
    score_threshold: float | None = None
    with_payload: bool = True
    with_vector: bool = False
    params: dict[str, int | float | bool | str] = field(default_factory=dict)


@dataclass
class Hit:
    id: int | str
    score: float
    payload: Any = None
    vector: list[float] | None = None
    vectors: list[list[float]] | None = None


@dataclass
class Outcome:
    hits: list[Hit] = field(default_factory=list)
    exact: bool = True
    took_ms: float = 0.0
    stages: list[Trace] | None = None  # a search that re-ranked: what each stage did


def _query_vectors(
    col: Collection, queries: list[Query]
) -> tuple[F32 | TokenBatch, list[int | None]]:
    """The queries as an ``(nq, dim)`` matrix (token sets: a batch), and per query the internal
    id to leave out of its hits (searches by id)."""
    rows: list[F32] = []
    exclude: list[int | None] = []
    given, wrong = ("vectors", "vector") if col.multivector else ("vector", "vectors")
    for i, q in enumerate(queries):
        if getattr(q, wrong) is not None:
            kind = "multi-vector" if col.multivector else "dense"
            raise InvalidInput(
                f"searches[{i}].{wrong}: collection {col.config.name!r} is {kind}; "
                f"search with '{given}', 'id' or 'text'"
            )
        vec = getattr(q, given)
        if (vec is None) == (q.point_id is None):
            raise InvalidInput(f"searches[{i}]: give exactly one of 'vector', 'id' or 'text'")
        if vec is not None:
            x = col.validate([vec], what="searches")
            rows.append(x.doc(0) if isinstance(x, TokenBatch) else x[0])
            exclude.append(None)
            continue
        iid, _ = col.require(q.point_id)  # type: ignore[arg-type]
        stored = col.vector_of(iid)
        if stored is None:  # deleted between the two reads
            raise InvalidInput(f"point {q.point_id!r} has no stored vector")
        rows.append(stored)
        exclude.append(iid)
    if col.multivector:
        batch = TokenBatch.concat([TokenBatch(r, np.array([0, len(r)])) for r in rows], col.dim)
        return batch, exclude
    return np.stack(rows).astype(np.float32, copy=False), exclude


def _run(
    col: Collection, xq: F32, depth: int, flt: Filter | None, params: dict[str, Any]
) -> tuple[SearchResult, bool]:
    segments, tails = col.parts()
    selector = IdSelector(col.points.iids(flt)) if flt is not None else None
    parts = []
    for s in segments:
        parts.append(search_part(s.index, s.index.search, params, xq, depth, selector))
    parts += [t.search(xq, depth, selector) for t in tails if isinstance(t, FlatIndex)]
    exact = all(type(s.index).exact for s in segments)
    return merge_results(parts, depth), exact


def search(col: Collection, queries: list[Query], max_k: int) -> list[Outcome]:
    """Run ``queries`` against ``col``; one outcome per query, in order."""
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        if q.k < 1 or q.offset < 0 or q.k + q.offset > max_k:
            raise InvalidInput(
                f"searches[{i}]: k + offset must be between 1 and {max_k}, got k={q.k}, "
                f"offset={q.offset}"
            )
    accepted = set(knobs(col.config.index))
    for i, q in enumerate(queries):
        text = [k for k, v in q.params.items() if isinstance(v, str)]
        if text:
            raise InvalidInput(f"searches[{i}].params.{text[0]}: must be a number or boolean")
        unknown = set(q.params) - accepted
        if unknown:
            takes = ", ".join(sorted(accepted)) or "none"
            raise InvalidInput(
                f"searches[{i}].params: index {col.config.index!r} takes no "
                f"{', '.join(sorted(unknown))} (it takes: {takes})"
            )
        if col.multivector:
            multivector.check_params(q.params, f"searches[{i}].params")
    xq, exclude = _query_vectors(col, queries)
    groups: dict[tuple[bytes, bytes, int], list[int]] = defaultdict(list)
    for i, q in enumerate(queries):
        fkey = orjson.dumps(q.filter.model_dump(exclude_defaults=True)) if q.filter else b""
        pkey = orjson.dumps(q.params, option=orjson.OPT_SORT_KEYS)
        groups[(fkey, pkey, q.k + q.offset + (exclude[i] is not None))].append(i)
    raw: dict[int, list[tuple[int, float]]] = {}
    exact_all = True
    pending = list(groups.items())
    for _ in range(SCAN_ATTEMPTS):
        for (_, _, depth), members in pending:
            first = queries[members[0]]
            if isinstance(xq, TokenBatch):
                sub = xq.take(np.asarray(members, dtype=np.int64))
                res, exact = multivector.run(col, sub, depth, first.filter, first.params)
            else:
                res, exact = _run(col, xq[members], depth, first.filter, first.params)
            exact_all &= exact
            for row, i in enumerate(members):
                raw[i] = [(iid, s) for iid, s in res.row(row) if iid != exclude[i]]
        wanted = sorted({iid for hits in raw.values() for iid, _ in hits})
        stored = col.points.by_iids(wanted)
        # A point replaced or deleted after the scan read its row is gone from the store and
        # would leave its query short of k hits: scan that group again, against the newer state.
        pending = [
            (key, members)
            for key, members in groups.items()
            if any(iid not in stored for i in members for iid, _ in raw[i])
        ]
        if not pending:
            break
    took = (time.perf_counter() - t0) * 1000
    out: list[Outcome] = []
    for i, q in enumerate(queries):
        hits: list[Hit] = []
        for iid, score in raw[i]:
            if iid not in stored or (q.score_threshold is not None and score < q.score_threshold):
                continue
            key, payload = stored[iid]
            vec = col.vector_of(iid) if q.with_vector else None
            hits.append(
                Hit(
                    id=orjson.loads(key),
                    score=score,
                    payload=payload if q.with_payload else None,
                    vector=None if vec is None or col.multivector else vec.tolist(),
                    vectors=vec.tolist() if vec is not None and col.multivector else None,
                )
            )
        out.append(Outcome(hits[q.offset : q.offset + q.k], exact_all, took))
    return out
