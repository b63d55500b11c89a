"""Requests of the pipeline routes, shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.api.pipeline_schemas import (
    EvaluateResponse,
    PipelineInfo,
    PipelineList,
    Quality,
    QueryResponse,
)
from app.client.wire import FilterLike, Id, _drop_none, _filter, _model, _none, _plain, _Req

__all__ = ["PipelineRoutes", "query_body"]

Stages = Sequence[Mapping[str, Any]]


def query_body(
    pipeline: str | Stages | None = None,
    vector: Any = None,
    vectors: Any = None,
    text: str | None = None,
    id: Id | None = None,
    filter: FilterLike | None = None,
    explain: bool = False,
    measure_recall: bool = False,
    with_payload: bool = True,
) -> dict[str, Any]:
    return _drop_none(
        {
            "pipeline": pipeline
            if pipeline is None or isinstance(pipeline, str)
            else list(pipeline),
            "vector": None if vector is None else _plain(vector),
            "vectors": None if vectors is None else _plain(vectors),
            "text": text,
            "id": id,
            "filter": _filter(filter),
            "explain": explain,
            "measure_recall": measure_recall,
            "with_payload": with_payload,
        }
    )


class PipelineRoutes:
    @staticmethod
    def query(name: str, body: dict[str, Any]) -> _Req[QueryResponse]:
        return _Req("POST", f"/collections/{name}/query", _model(QueryResponse), body)

    @staticmethod
    def save(
        name: str, pipeline: str, stages: Stages, default: bool, replace: bool
    ) -> _Req[PipelineInfo]:
        body = {"name": pipeline, "stages": list(stages), "default": default, "replace": replace}
        return _Req("POST", f"/collections/{name}/pipelines", _model(PipelineInfo), body)

    @staticmethod
    def list(name: str) -> _Req[list[PipelineInfo]]:
        parse = lambda r: PipelineList.model_validate(r.json()).pipelines  # noqa: E731
        return _Req("GET", f"/collections/{name}/pipelines", parse)

    @staticmethod
    def delete(name: str, pipeline: str) -> _Req[None]:
        return _Req("DELETE", f"/collections/{name}/pipelines/{pipeline}", _none)

    @staticmethod
    def quality(name: str) -> _Req[Quality]:
        return _Req("GET", f"/collections/{name}/quality", _model(Quality))

    @staticmethod
    def evaluate(
        name: str,
        queries: Sequence[Mapping[str, Any]],
        qrels: Mapping[str, Mapping[str, float]],
        pipelines: Sequence[str | Stages] | None,
        k: int,
    ) -> _Req[EvaluateResponse]:
        body = _drop_none(
            {
                "queries": [{k2: _plain(v) for k2, v in q.items()} for q in queries],
                "qrels": {q: dict(g) for q, g in qrels.items()},
                "pipelines": None
                if pipelines is None
                else [p if isinstance(p, str) else list(p) for p in pipelines],
                "k": k,
            }
        )
        return _Req("POST", f"/collections/{name}/evaluate", _model(EvaluateResponse), body)
