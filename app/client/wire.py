"""What both clients share: one request description per route (:class:`_Routes`), request
bodies, batching, the Server-Sent Events parser and polling."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar

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
from app.client.errors import (
    error_from,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Job = JobOut
PointLike = Mapping[str, Any] | BaseModel
FilterLike = Mapping[str, Any] | BaseModel
Id = int | str
DEFAULT_URL = "http://127.0.0.1:8000"
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


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


def _vector(value: Any) -> Any:
    """A 1-d float array -> the base64 of its little-endian float32 values (the server's
    ``app.dense`` wire form: a fifth of the bytes of a JSON number list, no float parsing);
    anything else as :func:`_plain`."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "ndim", None) == 1 and dtype.kind == "f":
        return base64.b64encode(value.astype("<f4").tobytes()).decode("ascii")
    return _plain(value)


def _point(p: PointLike) -> dict[str, Any]:
    raw = _plain(p)
    return {k: _vector(v) if k == "vector" else _plain(v) for k, v in raw.items() if v is not None}


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
            "vector": None if vector is None else _vector(vector),
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
