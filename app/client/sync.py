"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
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
    _model,
    _poll,
    _Req,
    _Routes,
    _search_body,
)


class Client:
    """Synchronous client. ``api_key`` defaults to ``$INNERSPACE_API_KEY``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=url, headers=_headers(api_key, headers), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _do(self, req: _Req[T]) -> T:
        r = self.http.request(req.method, req.path, json=req.json, params=req.params)
        return _finish(r, req.parse)

    # health
    def health(self) -> Health:
        return self._do(_Routes.health())

    def ready(self) -> bool:
        return self._do(_Routes.ready())

    # collections
    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Literal["ip", "cosine"] = "ip",
        index: str | None = None,
        encoder: str | None = None,
        multivector: bool = False,
    ) -> CollectionInfo:
        return self._do(_Routes.create_collection(name, dim, metric, index, encoder, multivector))

    def list_collections(self) -> list[CollectionInfo]:
        return self._do(_Routes.list_collections())

    def get_collection(self, name: str) -> CollectionInfo:
        return self._do(_Routes.get_collection(name))

    def delete_collection(self, name: str) -> None:
        self._do(_Routes.delete_collection(name))

    def flush(self, name: str) -> FlushResult:
        return self._do(_Routes.flush(name))

    # points
    def upsert(
        self,
        name: str,
        points: Iterable[PointLike],
        batch_size: int = 1000,
        on_batch: Callable[[UpsertResult], None] | None = None,
    ) -> UpsertSummary:
        """Upsert any number of points, ``batch_size`` per request (each batch is atomic)."""
        summary = UpsertSummary()
        for batch in _batches(points, batch_size):
            result = self._do(_Routes.upsert_batch(name, batch))
            summary.add(result)
            if on_batch is not None:
                on_batch(result)
        return summary

    def get_point(self, name: str, point_id: Id, with_vector: bool = False) -> Point:
        return self._do(_Routes.get_point(name, point_id, with_vector))

    def delete(
        self,
        name: str,
        ids: Iterable[Id] | None = None,
        filter: FilterLike | None = None,
    ) -> DeleteResult:
        return self._do(_Routes.delete(name, None if ids is None else list(ids), filter))

    def scroll(
        self,
        name: str,
        limit: int = 100,
        cursor: str | None = None,
        filter: FilterLike | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> ScrollResult:
        return self._do(_Routes.scroll(name, limit, cursor, filter, with_payload, with_vector))

    def iter_points(
        self,
        name: str,
        filter: FilterLike | None = None,
        page_size: int = 1000,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> Iterator[Point]:
        """Every point (matching ``filter``), page by page."""
        cursor: str | None = None
        while True:
            page = self.scroll(name, page_size, cursor, filter, with_payload, with_vector)
            yield from page.points
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count(self, name: str, filter: FilterLike | None = None) -> int:
        return self._do(_Routes.count(name, filter))

    # search
    def search(
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
        """Top ``k`` by inner product; give exactly one of ``vector``, ``id``, ``text``
        (``vectors``: query token vectors, multi-vector collections; ``params``: index search
        parameters such as ``{"candidates": 200}``)."""
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
        return self._do(_Routes.search(name, body))

    def search_batch(self, name: str, searches: Iterable[Mapping[str, Any]]) -> BatchSearchResponse:
        """Several searches (each a dict of :meth:`search`'s keyword arguments) in one request."""
        return self._do(_Routes.search_batch(name, list(searches)))

    # query pipelines
    def query(
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
        return self._do(PipelineRoutes.query(name, body))

    def save_pipeline(
        self, name: str, pipeline: str, stages: Stages, default: bool = False, replace: bool = False
    ) -> PipelineInfo:
        return self._do(PipelineRoutes.save(name, pipeline, stages, default, replace))

    def pipelines(self, name: str) -> list[PipelineInfo]:
        return self._do(PipelineRoutes.list(name))

    def delete_pipeline(self, name: str, pipeline: str) -> None:
        self._do(PipelineRoutes.delete(name, pipeline))

    def quality(self, name: str) -> Quality:
        """Recall@k per pipeline from the server's background sampler."""
        return self._do(PipelineRoutes.quality(name))

    def evaluate(
        self,
        name: str,
        queries: Sequence[Mapping[str, Any]],
        qrels: Mapping[str, Mapping[str, float]],
        pipelines: Sequence[str | Stages] | None = None,
        k: int = 10,
    ) -> EvaluateResponse:
        """nDCG@k and recall per pipeline on labelled queries (``{"id", "vector"|"text"...}``)."""
        return self._do(PipelineRoutes.evaluate(name, queries, qrels, pipelines, k))

    # jobs
    def build_index(self, name: str, spec: str) -> JobOut:
        return self._do(_Routes.build_index(name, spec))

    def compact(self, name: str) -> JobOut:
        return self._do(_Routes.compact(name))

    def import_file(self, name: str, path: str, format: str | None = None) -> JobOut:
        """Import a file that is already on the server."""
        return self._do(_Routes.import_file(name, path, format))

    def upload(self, name: str, path: str | Path, format: str = "ndjson") -> JobOut:
        """Upload a local file and import it in the background."""
        with open(path, "rb") as fh:
            r = self.http.post(
                f"/collections/{name}/import/upload",
                params={"format": format},
                content=iter(lambda: fh.read(1 << 20), b""),
            )
        return _finish(r, _model(JobOut))

    def jobs(self, collection: str | None = None, state: str | None = None) -> list[JobOut]:
        return self._do(_Routes.jobs(collection, state))

    def job(self, job_id: str) -> JobOut:
        return self._do(_Routes.job(job_id))

    def cancel_job(self, job_id: str) -> JobOut:
        return self._do(_Routes.cancel_job(job_id))

    def events(self, job_id: str, poll: float = 30.0) -> Iterator[JobOut]:
        """The job's progress as it streams (one connection; ends with the final state)."""
        with self.http.stream(
            "GET", f"/jobs/{job_id}/events", timeout=httpx.Timeout(10.0, read=poll)
        ) as r:
            if r.status_code >= 400:
                r.read()
                raise error_from(r)
            sse = _SSE()
            for line in r.iter_lines():
                job = sse.feed(line)
                if job is not None:
                    yield job

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        on_progress: Callable[[JobOut], None] | None = None,
        raise_on_failure: bool = True,
    ) -> JobOut:
        """Follow the job's event stream until it ends; reconnects if the stream drops.
        Raises :class:`JobFailedError` for a failed or cancelled job (unless told not to) and
        :class:`TimeoutError` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job: JobOut | None = None
        while job is None or job.state not in FINAL_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.state if job else '?'}")
            try:
                for job in self.events(job_id, _poll(deadline)):
                    if on_progress is not None:
                        on_progress(job)
            except (httpx.ReadTimeout, httpx.RemoteProtocolError):
                job = self.job(job_id)
        if raise_on_failure and job.state != "succeeded":
            raise JobFailedError(job)
        return job

    # encoders and keys
    def encode(
        self,
        texts: Iterable[str],
        encoder: str | None = None,
        kind: Literal["query", "document"] = "document",
    ) -> EncodeResponse:
        return self._do(_Routes.encode(list(texts), encoder, kind))

    def create_key(
        self,
        role: Literal["read", "write", "admin"],
        collection: str | None = None,
        name: str | None = None,
    ) -> KeyCreated:
        return self._do(_Routes.create_key(role, collection, name))

    def list_keys(self) -> list[KeyInfo]:
        return self._do(_Routes.list_keys())

    def revoke_key(self, key_id: str) -> KeyInfo:
        return self._do(_Routes.revoke_key(key_id))
