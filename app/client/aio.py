"""The asynchronous client: the same methods as :class:`~app.client.sync.Client`, as
coroutines."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Self

import httpx

from app.api.pipeline_schemas import EvaluateResponse, PipelineInfo, Quality, QueryResponse
from app.api.schemas import (
    BatchSearchResponse,
    CollectionInfo,
    DeleteResult,
    EncodeResponse,
    FlushResult,
    Health,
    JobOut,
    KeyCreated,
    KeyInfo,
    Point,
    ScrollResult,
    SearchResponse,
    UpsertResult,
)
from app.client.errors import (
    JobFailedError,
    error_from,
)
from app.client.pipelines import PipelineRoutes, Stages, query_body
from app.client.wire import (
    _SSE,
    DEFAULT_URL,
    FINAL_STATES,
    FilterLike,
    Id,
    PointLike,
    T,
    UpsertSummary,
    _batches,
    _finish,
    _headers,
    _poll,
    _Req,
    _Routes,
    _search_body,
)


class AsyncClient:
    """Asynchronous client with the same methods as :class:`Client`, as coroutines."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=url, headers=_headers(api_key, headers), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _do(self, req: _Req[T]) -> T:
        r = await self.http.request(req.method, req.path, json=req.json, params=req.params)
        return _finish(r, req.parse)

    async def health(self) -> Health:
        return await self._do(_Routes.health())

    async def ready(self) -> bool:
        return await self._do(_Routes.ready())

    async def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Literal["ip", "cosine"] = "ip",
        index: str | None = None,
        encoder: str | None = None,
        multivector: bool = False,
    ) -> CollectionInfo:
        req = _Routes.create_collection(name, dim, metric, index, encoder, multivector)
        return await self._do(req)

    async def list_collections(self) -> list[CollectionInfo]:
        return await self._do(_Routes.list_collections())

    async def get_collection(self, name: str) -> CollectionInfo:
        return await self._do(_Routes.get_collection(name))

    async def delete_collection(self, name: str) -> None:
        await self._do(_Routes.delete_collection(name))

    async def flush(self, name: str) -> FlushResult:
        return await self._do(_Routes.flush(name))

    async def upsert(
        self,
        name: str,
        points: Iterable[PointLike],
        batch_size: int = 1000,
        on_batch: Callable[[UpsertResult], None] | None = None,
    ) -> UpsertSummary:
        summary = UpsertSummary()
        for batch in _batches(points, batch_size):
            result = await self._do(_Routes.upsert_batch(name, batch))
            summary.add(result)
            if on_batch is not None:
                on_batch(result)
        return summary

    async def get_point(self, name: str, point_id: Id, with_vector: bool = False) -> Point:
        return await self._do(_Routes.get_point(name, point_id, with_vector))

    async def delete(
        self,
        name: str,
        ids: Iterable[Id] | None = None,
        filter: FilterLike | None = None,
    ) -> DeleteResult:
        return await self._do(_Routes.delete(name, None if ids is None else list(ids), filter))

    async def scroll(
        self,
        name: str,
        limit: int = 100,
        cursor: str | None = None,
        filter: FilterLike | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> ScrollResult:
        req = _Routes.scroll(name, limit, cursor, filter, with_payload, with_vector)
        return await self._do(req)

    async def iter_points(
        self,
        name: str,
        filter: FilterLike | None = None,
        page_size: int = 1000,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> AsyncIterator[Point]:
        cursor: str | None = None
        while True:
            page = await self.scroll(name, page_size, cursor, filter, with_payload, with_vector)
            for p in page.points:
                yield p
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def count(self, name: str, filter: FilterLike | None = None) -> int:
        return await self._do(_Routes.count(name, filter))

    async def search(
        self,
        name: str,
        vector: Any = None,
        id: Id | None = None,
        text: str | None = None,
        k: int = 10,
        offset: int = 0,
        filter: FilterLike | None = None,
        score_threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        encoder: str | None = None,
        vectors: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> SearchResponse:
        body = _search_body(
            vector,
            id,
            text,
            k,
            offset,
            filter,
            score_threshold,
            with_payload,
            with_vector,
            encoder,
            vectors,
            params,
        )
        return await self._do(_Routes.search(name, body))

    async def search_batch(
        self, name: str, searches: Iterable[Mapping[str, Any]]
    ) -> BatchSearchResponse:
        return await self._do(_Routes.search_batch(name, list(searches)))

    # query pipelines
    async def query(
        self,
        name: str,
        pipeline: str | Stages | None = None,
        vector: Any = None,
        vectors: Any = None,
        text: str | None = None,
        id: Id | None = None,
        filter: FilterLike | None = None,
        explain: bool = False,
        measure_recall: bool = False,
        with_payload: bool = True,
    ) -> QueryResponse:
        """Run a pipeline: a named one, inline stages, or (``None``) the collection's default."""
        body = query_body(
            pipeline, vector, vectors, text, id, filter, explain, measure_recall, with_payload
        )
        return await self._do(PipelineRoutes.query(name, body))

    async def save_pipeline(
        self, name: str, pipeline: str, stages: Stages, default: bool = False, replace: bool = False
    ) -> PipelineInfo:
        return await self._do(PipelineRoutes.save(name, pipeline, stages, default, replace))

    async def pipelines(self, name: str) -> list[PipelineInfo]:
        return await self._do(PipelineRoutes.list(name))

    async def delete_pipeline(self, name: str, pipeline: str) -> None:
        await self._do(PipelineRoutes.delete(name, pipeline))

    async def quality(self, name: str) -> Quality:
        """Recall@k per pipeline from the server's background sampler."""
        return await self._do(PipelineRoutes.quality(name))

    async def evaluate(
        self,
        name: str,
        queries: Sequence[Mapping[str, Any]],
        qrels: Mapping[str, Mapping[str, float]],
        pipelines: Sequence[str | Stages] | None = None,
        k: int = 10,
    ) -> EvaluateResponse:
        """nDCG@k and recall per pipeline on labelled queries (``{"id", "vector"|"text"...}``)."""
        return await self._do(PipelineRoutes.evaluate(name, queries, qrels, pipelines, k))

    async def build_index(self, name: str, spec: str) -> JobOut:
        return await self._do(_Routes.build_index(name, spec))

    async def compact(self, name: str) -> JobOut:
        return await self._do(_Routes.compact(name))

    async def import_file(self, name: str, path: str, format: str | None = None) -> JobOut:
        return await self._do(_Routes.import_file(name, path, format))

    async def jobs(self, collection: str | None = None, state: str | None = None) -> list[JobOut]:
        return await self._do(_Routes.jobs(collection, state))

    async def job(self, job_id: str) -> JobOut:
        return await self._do(_Routes.job(job_id))

    async def cancel_job(self, job_id: str) -> JobOut:
        return await self._do(_Routes.cancel_job(job_id))

    async def events(self, job_id: str, poll: float = 30.0) -> AsyncIterator[JobOut]:
        async with self.http.stream(
            "GET", f"/jobs/{job_id}/events", timeout=httpx.Timeout(10.0, read=poll)
        ) as r:
            if r.status_code >= 400:
                await r.aread()
                raise error_from(r)
            sse = _SSE()
            async for line in r.aiter_lines():
                job = sse.feed(line)
                if job is not None:
                    yield job

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        on_progress: Callable[[JobOut], None] | None = None,
        raise_on_failure: bool = True,
    ) -> JobOut:
        deadline = None if timeout is None else time.monotonic() + timeout
        job: JobOut | None = None
        while job is None or job.state not in FINAL_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.state if job else '?'}")
            try:
                async for job in self.events(job_id, _poll(deadline)):
                    if on_progress is not None:
                        on_progress(job)
            except (httpx.ReadTimeout, httpx.RemoteProtocolError):
                job = await self.job(job_id)
        if raise_on_failure and job.state != "succeeded":
            raise JobFailedError(job)
        return job

    async def encode(
        self,
        texts: Iterable[str],
        encoder: str | None = None,
        kind: Literal["query", "document"] = "document",
    ) -> EncodeResponse:
        return await self._do(_Routes.encode(list(texts), encoder, kind))

    async def create_key(
        self,
        role: Literal["read", "write", "admin"],
        collection: str | None = None,
        name: str | None = None,
    ) -> KeyCreated:
        return await self._do(_Routes.create_key(role, collection, name))

    async def list_keys(self) -> list[KeyInfo]:
        return await self._do(_Routes.list_keys())

    async def revoke_key(self, key_id: str) -> KeyInfo:
        return await self._do(_Routes.revoke_key(key_id))
