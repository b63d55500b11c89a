"""Query pipelines (:mod:`app.pipeline`): run one, declare named ones, read measured quality,
evaluate labelled queries."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import ReadKey, ServiceDep, WriteKey
from app.api.pipeline_schemas import (
    EvaluateRequest,
    EvaluateResponse,
    PipelineCreate,
    PipelineInfo,
    PipelineList,
    Quality,
    QueryRequest,
    QueryResponse,
)
from app.api.schemas import Hit, StageTrace
from app.errors import InvalidInput
from app.pipeline.service import QueryInput

router = APIRouter(prefix="/collections/{name}", tags=["search"])


@router.post("/query", response_model=QueryResponse, response_model_exclude_none=True)
def query(name: str, body: QueryRequest, service: ServiceDep, _: ReadKey) -> QueryResponse:
    """Run the stages in order; ``explain`` traces each, ``measure_recall`` checks vs exact."""
    if body.stages is not None and body.pipeline is not None:
        raise InvalidInput("give 'stages' or 'pipeline', not both")
    q = QueryInput(body.vector, body.vectors, body.text, body.id)
    label, res = service.pipelines.query(
        name,
        body.stages if body.stages is not None else body.pipeline,
        q,
        body.filter,
        body.measure_recall,
        body.with_payload,
        body.explain,
    )
    hits = [Hit(id=pid, score=s, payload=res.payloads.get(pid)) for pid, s in res.hits]
    explain = [StageTrace.from_trace(t) for t in res.traces] if body.explain else None
    return QueryResponse(
        hits=hits,
        pipeline=label,
        exact=res.exact,
        took_ms=res.took_ms,
        explain=explain,
        recall_estimate=res.recall,
    )


@router.post("/pipelines", status_code=status.HTTP_201_CREATED, response_model=PipelineInfo)
def create_pipeline(
    name: str, body: PipelineCreate, service: ServiceDep, _: WriteKey
) -> PipelineInfo:
    """Validate and save a named pipeline; the first one saved becomes the default."""
    service.pipelines.save(name, body.name, body.stages, body.default, body.replace)
    default, _pipes = service.pipelines.named(name).all()
    return PipelineInfo(name=body.name, stages=body.stages, default=default == body.name)


@router.get("/pipelines", response_model=PipelineList)
def list_pipelines(name: str, service: ServiceDep, _: ReadKey) -> PipelineList:
    default, pipes = service.pipelines.named(name).all()
    return PipelineList(
        pipelines=[PipelineInfo(name=n, stages=s, default=n == default) for n, s in pipes.items()]
    )


@router.delete("/pipelines/{pipeline}", status_code=status.HTTP_204_NO_CONTENT)
def delete_pipeline(name: str, pipeline: str, service: ServiceDep, _: WriteKey) -> Response:
    service.pipelines.named(name).remove(pipeline)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/quality", response_model=Quality)
def quality(name: str, service: ServiceDep, _: ReadKey) -> Quality:
    """Recall@k measured by the background sampler (``INNERSPACE_RECALL_SAMPLE_RATE``)."""
    return Quality.model_validate(service.pipelines.quality(name))


@router.post("/evaluate", response_model=EvaluateResponse)
def evaluate(name: str, body: EvaluateRequest, service: ServiceDep, _: ReadKey) -> EvaluateResponse:
    """nDCG@k and recall per pipeline over the labelled queries sent."""
    queries = [(q.id, QueryInput(q.vector, q.vectors, q.text, q.point)) for q in body.queries]
    out = service.pipelines.evaluate(name, queries, body.qrels, body.pipelines, body.k, body.filter)
    return EvaluateResponse.model_validate(out)
