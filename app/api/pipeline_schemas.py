"""Request and response bodies of the pipeline routes (query, named pipelines, quality,
evaluate)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas import Hit, StageTrace, _Body
from app.dense import VECTOR_FIELD, WireVector
from app.filters import Filter, PointId

_STAGES = (
    'ordered stages, each {name: {args}}, e.g. [{"index": {"k": 100}}, {"ip": {"k": 10}}]; '
    'fuse generators with {"rrf": {"of": [...], "k": 10}} or {"weighted": {...}}'
)


class QueryRequest(_Body):
    """A query pipeline (:mod:`app.pipeline`): stages run in order on one query."""

    stages: list[Any] | None = Field(None, description=_STAGES)
    pipeline: str | list[Any] | None = Field(
        None,
        description="a named pipeline of the collection, or inline stages; with neither "
        "'stages' nor 'pipeline' the collection's default pipeline runs",
    )
    vector: WireVector | None = VECTOR_FIELD
    vectors: list[list[float]] | None = Field(
        None, description="query token vectors (multi-vector collections)"
    )
    text: str | None = Field(
        None,
        description="the query text: lexical stages read it; encoded with the collection's "
        "encoder when a stage needs a vector and none is given",
    )
    id: PointId | None = Field(None, description="query with this stored point's vector")
    filter: Filter | None = None
    explain: bool = Field(False, description="return what each stage did")
    measure_recall: bool = Field(
        False, description="also run exact search and report recall@k of the hits against it"
    )
    with_payload: bool = True


class QueryResponse(BaseModel):
    hits: list[Hit]
    pipeline: str = Field(description="the named pipeline that ran, or '<inline>'")
    exact: bool = Field(description="false when an approximate index generated candidates")
    took_ms: float
    explain: list[StageTrace] | None = None
    recall_estimate: float | None = Field(
        None, description="recall@k of the hits against exact search (measure_recall)"
    )


class PipelineCreate(_Body):
    name: str = Field(examples=["hybrid"])
    stages: list[Any] = Field(description=_STAGES)
    default: bool = Field(False, description="make it the collection's default pipeline")
    replace: bool = Field(False, description="overwrite a pipeline of the same name")


class PipelineInfo(BaseModel):
    name: str
    stages: list[Any]
    default: bool


class PipelineList(BaseModel):
    pipelines: list[PipelineInfo]


class RecallGauge(BaseModel):
    pipeline: str
    k: int
    samples: int = Field(description="queries re-run exactly since start")
    window: int = Field(description="samples behind 'recall' (the latest ones)")
    recall: float | None = Field(description="mean recall@k over the window")


class Quality(BaseModel):
    sample_rate: float
    dropped: int = Field(description="samples skipped because the sampler was busy")
    pipelines: list[RecallGauge]


class LabelledQuery(_Body):
    id: str = Field(description="the query's id in 'qrels'")
    vector: WireVector | None = VECTOR_FIELD
    vectors: list[list[float]] | None = None
    text: str | None = None
    point: PointId | None = Field(None, description="query with this stored point's vector")


class EvaluateRequest(_Body):
    queries: list[LabelledQuery] = Field(min_length=1)
    qrels: dict[str, dict[str, float]] = Field(
        description="query id -> {point id (as a string): relevance grade}; grades > 0 count "
        "as relevant"
    )
    pipelines: list[str | list[Any]] | None = Field(
        None, description="named pipelines or inline stages; default: every named pipeline"
    )
    k: int = Field(10, ge=1, le=1000, description="nDCG cut-off")
    filter: Filter | None = None


class PipelineScore(BaseModel):
    pipeline: str
    stages: list[Any]
    ndcg: float = Field(description="mean nDCG@k (linear gains)")
    recall_at_k: float = Field(description="mean recall at the pipeline's own k")
    recall_k: int
    median_took_ms: float


class EvaluateResponse(BaseModel):
    queries: int
    k: int
    results: list[PipelineScore]
