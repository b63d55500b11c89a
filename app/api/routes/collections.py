"""Create, list, inspect, seal and delete collections."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import AdminKey, ReadKey, ServiceDep, WriteKey
from app.api.schemas import CollectionCreate, CollectionInfo, CollectionList, FlushResult

router = APIRouter(prefix="/collections", tags=["collections"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CollectionInfo)
def create_collection(body: CollectionCreate, service: ServiceDep, key: WriteKey) -> CollectionInfo:
    key.check_collection(body.name)
    info = service.create_collection(
        body.name, body.dim, body.metric, body.index, body.multivector, body.encoder
    )
    return CollectionInfo(**info)


@router.get("", response_model=CollectionList)
def list_collections(service: ServiceDep, key: ReadKey) -> CollectionList:
    """Every collection (a key scoped to one collection sees only that one)."""
    infos = [c for c in service.list_collections() if key.may_use(c["name"])]
    return CollectionList(collections=[CollectionInfo(**c) for c in infos])


@router.get("/{name}", response_model=CollectionInfo)
def get_collection(name: str, service: ServiceDep, _: ReadKey) -> CollectionInfo:
    return CollectionInfo(**service.collection(name).info())


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_collection(name: str, service: ServiceDep, _: AdminKey) -> None:
    service.delete_collection(name)


@router.post("/{name}/flush", response_model=FlushResult)
def flush_collection(name: str, service: ServiceDep, _: WriteKey) -> FlushResult:
    """Seal the unindexed tail into a segment now and truncate the WAL it covered."""
    return FlushResult(**service.collection(name).seal())
