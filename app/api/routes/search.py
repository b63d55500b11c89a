"""Nearest-neighbour search by maximum inner product."""

from __future__ import annotations

import time

from fastapi import APIRouter

from app.api.deps import JSONRoute, ReadKey, ServiceDep
from app.api.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    Hit,
    SearchRequest,
    SearchResponse,
    StageTrace,
)
from app.metrics import observe_stage, stage
from app.search import Outcome, Query
from app.service import SearchService

router = APIRouter(prefix="/collections/{name}", tags=["search"], route_class=JSONRoute)


def _query(r: SearchRequest) -> Query:
    return Query(
        vector=r.vector,
        vectors=r.vectors,
        point_id=r.id,
        text=r.text,
        encoder=r.encoder,
        k=r.k,
        offset=r.offset,
        filter=r.filter,
        score_threshold=r.score_threshold,
        with_payload=r.with_payload,
        with_vector=r.with_vector,
        params=r.params,
    )


def _run(service: SearchService, name: str, queries: list[Query]) -> list[Outcome]:
    """``service.search``, timed as stages ``prepare`` (validation, text encoding) and
    ``execute`` (what the search itself reports as ``took_ms``)."""
    t0 = time.perf_counter()
    outcomes = service.search(name, queries)
    total = time.perf_counter() - t0
    execute = outcomes[0].took_ms / 1000 if outcomes else 0.0
    observe_stage("prepare", total - execute)
    observe_stage("execute", execute)
    return outcomes


def _response(o: Outcome) -> SearchResponse:
    hits = [
        Hit(id=h.id, score=h.score, payload=h.payload, vector=h.vector, vectors=h.vectors)
        for h in o.hits
    ]
    stages = None if o.stages is None else [StageTrace.from_trace(t) for t in o.stages]
    return SearchResponse(hits=hits, exact=o.exact, took_ms=o.took_ms, stages=stages)


@router.post("/search", response_model=SearchResponse, response_model_exclude_none=True)
def search(name: str, body: SearchRequest, service: ServiceDep, _: ReadKey) -> SearchResponse:
    """Top-k points by inner product (cosine collections: by cosine), exact on Flat."""
    outcome = _run(service, name, [_query(body)])[0]
    with stage("respond"):
        return _response(outcome)


@router.post("/search/batch", response_model=BatchSearchResponse, response_model_exclude_none=True)
def search_batch(
    name: str, body: BatchSearchRequest, service: ServiceDep, _: ReadKey
) -> BatchSearchResponse:
    """Several searches in one request; those sharing a filter run as one batched scan."""
    t0 = time.perf_counter()
    outcomes = _run(service, name, [_query(r) for r in body.searches])
    took = (time.perf_counter() - t0) * 1000
    with stage("respond"):
        return BatchSearchResponse(results=[_response(o) for o in outcomes], took_ms=took)
