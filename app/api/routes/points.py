"""Upsert, fetch, delete, scroll and count points."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import JSONRoute, ReadKey, ServiceDep, WriteKey
from app.api.schemas import (
    CountRequest,
    CountResult,
    DeleteRequest,
    DeleteResult,
    Point,
    ScrollRequest,
    ScrollResult,
    UpsertRequest,
    UpsertResult,
)
from app.service import PointWrite

router = APIRouter(prefix="/collections/{name}/points", tags=["points"], route_class=JSONRoute)


@router.put("", response_model=UpsertResult)
def upsert_points(name: str, body: UpsertRequest, service: ServiceDep, _: WriteKey) -> UpsertResult:
    """Insert or replace points; answers only after the write-ahead log is on disk."""
    points = [PointWrite(p.id, p.vector, p.text, p.payload, p.vectors) for p in body.points]
    return UpsertResult(**service.upsert(name, points))


@router.get("/{point_id}", response_model=Point, response_model_exclude_none=True)
def get_point(
    name: str, point_id: str, service: ServiceDep, _: ReadKey, with_vector: bool = False
) -> Point:
    return Point(**service.get_point(name, point_id, with_vector))


@router.post("/delete", response_model=DeleteResult)
def delete_points(name: str, body: DeleteRequest, service: ServiceDep, _: WriteKey) -> DeleteResult:
    return DeleteResult(**service.delete(name, body.ids, body.filter))


@router.post("/scroll", response_model=ScrollResult)
def scroll_points(name: str, body: ScrollRequest, service: ServiceDep, _: ReadKey) -> ScrollResult:
    page = service.scroll(
        name, body.limit, body.cursor, body.filter, body.with_payload, body.with_vector
    )
    return ScrollResult(**page)


@router.post("/count", response_model=CountResult)
def count_points(name: str, body: CountRequest, service: ServiceDep, _: ReadKey) -> CountResult:
    return CountResult(count=service.count(name, body.filter))
