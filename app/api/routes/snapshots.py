"""Collection snapshots: take one (a background job), list them, restore one, delete one."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from app.api.deps import AdminKey, ReadKey, ServiceDep, WriteKey
from app.api.schemas import CollectionInfo, JobOut, _Body

router = APIRouter(prefix="/collections/{name}/snapshots", tags=["snapshots"])


class SnapshotOut(BaseModel):
    id: str
    collection: str
    created_at: float
    bytes: int
    last_seq: int
    count: int


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


class RestoreRequest(_Body):
    target: str | None = Field(
        None, description="collection to restore into (default: the snapshot's own collection)"
    )
    replace: bool = Field(False, description="overwrite the target collection if it exists")


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def create_snapshot(name: str, service: ServiceDep, _: WriteKey) -> JobOut:
    """Take a consistent point-in-time snapshot in the background (job kind ``snapshot``;
    the snapshot's id is the job's id)."""
    return JobOut(**service.snapshot(name).public())


@router.get("", response_model=SnapshotList)
def list_snapshots(name: str, service: ServiceDep, _: ReadKey) -> SnapshotList:
    """Finished snapshots of the collection, oldest first."""
    return SnapshotList(snapshots=[SnapshotOut(**s) for s in service.list_snapshots(name)])


@router.post("/{snapshot_id}/restore", response_model=CollectionInfo)
def restore_snapshot(
    name: str,
    snapshot_id: str,
    service: ServiceDep,
    key: AdminKey,
    body: RestoreRequest | None = None,
) -> CollectionInfo:
    """Verify the snapshot's checksums, then restore and load it as ``target``; 409 when the
    target exists (without ``replace``) or the snapshot is corrupt: nothing is created then."""
    body = body or RestoreRequest()
    target = body.target or name
    key.check_collection(target)
    return CollectionInfo(**service.restore_snapshot(name, snapshot_id, target, body.replace))


@router.delete("/{snapshot_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_snapshot(name: str, snapshot_id: str, service: ServiceDep, _: AdminKey) -> None:
    """Delete a snapshot and its files, durably (also of a deleted collection); 404 when
    unknown, 409 while its snapshot job is queued or running."""
    service.delete_snapshot(name, snapshot_id)
