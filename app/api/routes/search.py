"""Nearest-neighbour search by maximum inner product."""

from __future__ import annotations

import time

from fastapi import APIRouter

from app.api.deps import ServiceDep
from app.api.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    Hit,
    SearchRequest,
    SearchResponse,
)
from app.search import Outcome, Query

router = APIRouter(prefix="/collections/{name}", tags=["search"])


def _query(r: SearchRequest) -> Query:
    return Query(
        vector=r.vector,
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


def _response(o: Outcome) -> SearchResponse:
    hits = [Hit(id=h.id, score=h.score, payload=h.payload, vector=h.vector) for h in o.hits]
    return SearchResponse(hits=hits, exact=o.exact, took_ms=o.took_ms)


@router.post("/search", response_model=SearchResponse, response_model_exclude_none=True)
def search(name: str, body: SearchRequest, service: ServiceDep) -> SearchResponse:
    """Top-k points by inner product (cosine collections: by cosine), exact on Flat."""
    return _response(service.search(name, [_query(body)])[0])


@router.post("/search/batch", response_model=BatchSearchResponse, response_model_exclude_none=True)
def search_batch(name: str, body: BatchSearchRequest, service: ServiceDep) -> BatchSearchResponse:
    """Several searches in one request; those sharing a filter run as one batched scan."""
    t0 = time.perf_counter()
    outcomes = service.search(name, [_query(r) for r in body.searches])
    took = (time.perf_counter() - t0) * 1000
    return BatchSearchResponse(results=[_response(o) for o in outcomes], took_ms=took)
