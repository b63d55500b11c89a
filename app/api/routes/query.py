"""Query pipelines: generators, fusion and re-scorers per request (:mod:`app.pipeline`)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ReadKey, ServiceDep
from app.api.schemas import Hit, QueryRequest, QueryResponse, StageTrace
from app.pipeline import Trace

router = APIRouter(prefix="/collections/{name}", tags=["search"])


def _trace(t: Trace) -> StageTrace:
    sub = None if t.of is None else [_trace(s) for s in t.of]
    return StageTrace(
        stage=t.stage, input=t.input, output=t.output, took_ms=t.took_ms, exact=t.exact, of=sub
    )


@router.post("/query", response_model=QueryResponse, response_model_exclude_none=True)
def query(name: str, body: QueryRequest, service: ServiceDep, _: ReadKey) -> QueryResponse:
    """Run the stages in order; ``explain`` traces each, ``measure_recall`` checks vs exact."""
    res = service.query(
        name,
        body.stages,
        body.vector,
        body.text,
        body.id,
        body.filter,
        body.measure_recall,
        body.with_payload,
    )
    hits = [Hit(id=pid, score=s, payload=res.payloads.get(pid)) for pid, s in res.hits]
    explain = [_trace(t) for t in res.traces] if body.explain else None
    return QueryResponse(
        hits=hits,
        exact=res.exact,
        took_ms=res.took_ms,
        explain=explain,
        recall_estimate=res.recall,
    )
