"""Python client for the Innerspace REST API: :class:`Client` (sync) and :class:`AsyncClient`.

Both mirror the API one method per route and return the API's own pydantic models
(:mod:`app.api.schemas`); a non-2xx answer raises an :class:`ApiError` subclass built from the
error body ``{error, message, details}`` (e.g. :class:`NotFoundError`, :class:`RateLimitedError`
with ``retry_after``).

>>> from app.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="isk_...") as c:  # doctest: +SKIP
...     c.create_collection("docs", dim=4)
...     c.upsert("docs", ({"id": i, "vector": v} for i, v in enumerate(vectors)))
...     job = c.wait(c.build_index("docs", "HNSW(m=32)").id)
...     hits = c.search("docs", vector=[1, 0, 0, 0], k=5).hits

``upsert`` splits any iterable of points into batches of ``batch_size`` requests;
``wait(job_id)`` follows the job's Server-Sent Events stream until it ends and raises
:class:`JobFailedError` when it did not succeed; ``iter_points`` scrolls a whole collection.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Generic, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel

from app.api.schemas import (
    BatchSearchResponse,
    CollectionInfo,
    CollectionList,
    CountResult,
    DeleteResult,
    EncodeResponse,
    FlushResult,
    Health,
    JobList,
    JobOut,
    KeyCreated,
    KeyInfo,
    KeyList,
    Point,
    ScrollResult,
    SearchResponse,
    UpsertResult,
)

__all__ = [
    "AlreadyExistsError",
    "ApiError",
    "AsyncClient",
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "ForbiddenError",
    "InsufficientStorageError",
    "InvalidInputError",
    "Job",
    "JobFailedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "UnauthorizedError",
    "UnavailableError",
    "UpsertSummary",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Job = JobOut
PointLike = Mapping[str, Any] | BaseModel
FilterLike = Mapping[str, Any] | BaseModel
Id = int | str
DEFAULT_URL = "http://127.0.0.1:8000"
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

# ---- errors -------------------------------------------------------------------------------


class ClientError(Exception):
    """Base of everything this module raises on purpose."""


class ApiError(ClientError):
    """The server answered with an error: ``status``, ``code`` (the body's ``error``),
    ``message`` and ``details`` as the server sent them."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = dict(headers or {})


class BadRequestError(ApiError):
    """400: the body could not be parsed."""


class UnauthorizedError(ApiError):
    """401: no API key, or an unknown or revoked one."""


class ForbiddenError(ApiError):
    """403: the key's role or collection scope does not allow the request."""


class NotFoundError(ApiError):
    """404: unknown collection, point, job, key or route."""


class ConflictError(ApiError):
    """409: the request contradicts the current state."""


class AlreadyExistsError(ConflictError):
    """409: the name is taken."""


class PayloadTooLargeError(ApiError):
    """413: the body is over the server's limit."""


class InvalidInputError(ApiError):
    """422: a value is not acceptable; ``details`` names the failing items."""


class RateLimitedError(ApiError):
    """429: the key's rate limit; retry after ``retry_after`` seconds."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return None if value is None else float(value)
        except ValueError:
            return None


class ServerError(ApiError):
    """500 or another unexpected status."""


class UnavailableError(ApiError):
    """503: still loading, or stopping."""


class InsufficientStorageError(ApiError):
    """507: the work would pass the server's memory budget."""


class JobFailedError(ClientError):
    """``wait`` saw the job end other than ``succeeded``; ``job`` is its final state."""

    def __init__(self, job: JobOut) -> None:
        super().__init__(f"job {job.id} ({job.kind} on {job.collection}) {job.state}: {job.error}")
        self.job = job


_BY_CODE: dict[str, type[ApiError]] = {
    "bad_request": BadRequestError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "conflict": ConflictError,
    "payload_too_large": PayloadTooLargeError,
    "invalid_input": InvalidInputError,
    "rate_limited": RateLimitedError,
    "unavailable": UnavailableError,
    "insufficient_storage": InsufficientStorageError,
    "internal": ServerError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidInputError,
    429: RateLimitedError,
    503: UnavailableError,
    507: InsufficientStorageError,
}


def error_from(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (its body must have been read)."""
    code, message, details = "http_error", response.text or response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        code = str(body["error"])
        message = str(body.get("message", message))
        details = body.get("details")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code, ServerError)
    return cls(response.status_code, code, message, details, response.headers)


# ---- request building, shared by both clients ---------------------------------------------


@dataclass
class _Req(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda r: cls.model_validate(r.json())


def _none(_: httpx.Response) -> None:
    return None


def _plain(value: Any) -> Any:
    """numpy arrays and scalars -> lists and numbers; pydantic models -> dicts."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _point(p: PointLike) -> dict[str, Any]:
    raw = _plain(p)
    out = {k: _plain(v) for k, v in dict(raw).items() if v is not None}
    return out


def _filter(f: FilterLike | None) -> Any:
    return None if f is None else _plain(f) if isinstance(f, BaseModel) else dict(f)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _search_body(
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
) -> dict[str, Any]:
    return _drop_none(
        {
            "vector": None if vector is None else _plain(vector),
            "vectors": None if vectors is None else _plain(vectors),
            "params": None if params is None else dict(params),
            "id": id,
            "text": text,
            "encoder": encoder,
            "k": k,
            "offset": offset,
            "filter": _filter(filter),
            "score_threshold": score_threshold,
            "with_payload": with_payload,
            "with_vector": with_vector,
        }
    )


def _batches(points: Iterable[PointLike], size: int) -> Iterator[list[dict[str, Any]]]:
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    it = iter(points)
    while batch := [_point(p) for p in islice(it, size)]:
        yield batch


@dataclass
class UpsertSummary:
    """What an ``upsert`` of many batches did: points written, requests, the last WAL seq."""

    upserted: int = 0
    batches: int = 0
    seq: int = 0
    truncated: int = 0
    results: list[UpsertResult] = field(default_factory=list, repr=False)

    def add(self, r: UpsertResult) -> None:
        self.upserted += r.upserted
        self.batches += 1
        self.seq = max(self.seq, r.seq)
        self.truncated += r.truncated
        self.results.append(r)


def _headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {"user-agent": "innerspace-client"}
    key = api_key if api_key is not None else os.environ.get("INNERSPACE_API_KEY")
    if key:
        out["authorization"] = f"Bearer {key}"
    out.update(headers or {})
    return out


def _finish(r: httpx.Response, parse: Callable[[httpx.Response], T]) -> T:
    if r.status_code >= 400:
        raise error_from(r)
    return parse(r)


class _Routes:
    """One request builder per route (the shared half of both clients)."""

    @staticmethod
    def health() -> _Req[Health]:
        return _Req("GET", "/healthz", _model(Health))

    @staticmethod
    def ready() -> _Req[bool]:
        return _Req("GET", "/readyz", lambda r: r.status_code == 200)

    @staticmethod
    def create_collection(
        name: str,
        dim: int | None,
        metric: str,
        index: str | None,
        encoder: str | None,
        multivector: bool,
    ) -> _Req[CollectionInfo]:
        body = _drop_none(
            {
                "name": name,
                "dim": dim,
                "metric": metric,
                "index": index,
                "encoder": encoder,
                "multivector": multivector,
            }
        )
        return _Req("POST", "/collections", _model(CollectionInfo), body)

    @staticmethod
    def list_collections() -> _Req[list[CollectionInfo]]:
        return _Req("GET", "/collections", lambda r: CollectionList(**r.json()).collections)

    @staticmethod
    def get_collection(name: str) -> _Req[CollectionInfo]:
        return _Req("GET", f"/collections/{name}", _model(CollectionInfo))

    @staticmethod
    def delete_collection(name: str) -> _Req[None]:
        return _Req("DELETE", f"/collections/{name}", _none)

    @staticmethod
    def flush(name: str) -> _Req[FlushResult]:
        return _Req("POST", f"/collections/{name}/flush", _model(FlushResult))

    @staticmethod
    def upsert_batch(name: str, points: list[dict[str, Any]]) -> _Req[UpsertResult]:
        return _Req("PUT", f"/collections/{name}/points", _model(UpsertResult), {"points": points})

    @staticmethod
    def get_point(name: str, point_id: Id, with_vector: bool) -> _Req[Point]:
        params = {"with_vector": "true"} if with_vector else None
        path = f"/collections/{name}/points/{point_id}"
        return _Req("GET", path, _model(Point), params=params)

    @staticmethod
    def delete(name: str, ids: list[Id] | None, filter: FilterLike | None) -> _Req[DeleteResult]:
        body = _drop_none({"ids": None if ids is None else list(ids), "filter": _filter(filter)})
        return _Req("POST", f"/collections/{name}/points/delete", _model(DeleteResult), body)

    @staticmethod
    def scroll(
        name: str,
        limit: int,
        cursor: str | None,
        filter: FilterLike | None,
        with_payload: bool,
        with_vector: bool,
    ) -> _Req[ScrollResult]:
        body = _drop_none(
            {
                "limit": limit,
                "cursor": cursor,
                "filter": _filter(filter),
                "with_payload": with_payload,
                "with_vector": with_vector,
            }
        )
        return _Req("POST", f"/collections/{name}/points/scroll", _model(ScrollResult), body)

    @staticmethod
    def count(name: str, filter: FilterLike | None) -> _Req[int]:
        body = _drop_none({"filter": _filter(filter)})
        path = f"/collections/{name}/points/count"
        return _Req("POST", path, lambda r: CountResult(**r.json()).count, body)

    @staticmethod
    def search(name: str, body: dict[str, Any]) -> _Req[SearchResponse]:
        return _Req("POST", f"/collections/{name}/search", _model(SearchResponse), body)

    @staticmethod
    def search_batch(name: str, searches: list[Mapping[str, Any]]) -> _Req[BatchSearchResponse]:
        body = {"searches": [_search_body(**s) for s in searches]}
        path = f"/collections/{name}/search/batch"
        return _Req("POST", path, _model(BatchSearchResponse), body)

    @staticmethod
    def build_index(name: str, spec: str) -> _Req[JobOut]:
        return _Req("POST", f"/collections/{name}/index", _model(JobOut), {"spec": spec})

    @staticmethod
    def compact(name: str) -> _Req[JobOut]:
        return _Req("POST", f"/collections/{name}/compact", _model(JobOut))

    @staticmethod
    def import_file(name: str, path: str, format: str | None) -> _Req[JobOut]:
        body = _drop_none({"path": path, "format": format})
        return _Req("POST", f"/collections/{name}/import", _model(JobOut), body)

    @staticmethod
    def jobs(collection: str | None, state: str | None) -> _Req[list[JobOut]]:
        params = _drop_none({"collection": collection, "state": state})
        return _Req("GET", "/jobs", lambda r: JobList(**r.json()).jobs, params=params)

    @staticmethod
    def job(job_id: str) -> _Req[JobOut]:
        return _Req("GET", f"/jobs/{job_id}", _model(JobOut))

    @staticmethod
    def cancel_job(job_id: str) -> _Req[JobOut]:
        return _Req("POST", f"/jobs/{job_id}/cancel", _model(JobOut))

    @staticmethod
    def encode(texts: list[str], encoder: str | None, kind: str) -> _Req[EncodeResponse]:
        body = _drop_none({"texts": list(texts), "encoder": encoder, "kind": kind})
        return _Req("POST", "/encode", _model(EncodeResponse), body)

    @staticmethod
    def create_key(role: str, collection: str | None, name: str | None) -> _Req[KeyCreated]:
        body = _drop_none({"role": role, "collection": collection, "name": name})
        return _Req("POST", "/keys", _model(KeyCreated), body)

    @staticmethod
    def list_keys() -> _Req[list[KeyInfo]]:
        return _Req("GET", "/keys", lambda r: KeyList(**r.json()).keys)

    @staticmethod
    def revoke_key(key_id: str) -> _Req[KeyInfo]:
        return _Req("DELETE", f"/keys/{key_id}", _model(KeyInfo))


class _SSE:
    """Parses a Server-Sent Events stream of jobs, line by line."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def feed(self, line: str) -> JobOut | None:
        if line.startswith("data:"):
            self.data.append(line[5:].lstrip())
        elif not line and self.data:
            text, self.data = "\n".join(self.data), []
            return JobOut.model_validate_json(text)
        return None


def _poll(deadline: float | None, most: float = 30.0) -> float:
    """How long to wait for the next event before checking on the job (and the deadline)."""
    return most if deadline is None else max(0.1, min(most, deadline - time.monotonic()))


# ---- the sync client ----------------------------------------------------------------------


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


# ---- the async client ---------------------------------------------------------------------


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
