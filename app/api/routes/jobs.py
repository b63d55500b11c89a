"""Background jobs: index builds, imports, progress (JSON and Server-Sent Events), cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse

from app.api.deps import AdminKey, ReadKey, ServiceDep, WriteKey
from app.api.schemas import BuildRequest, ImportRequest, JobList, JobOut
from app.errors import PayloadTooLarge
from app.jobs.model import State

router = APIRouter(tags=["jobs"])


@router.post(
    "/collections/{name}/index", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut
)
def build_index(name: str, body: BuildRequest, service: ServiceDep, _: WriteKey) -> JobOut:
    """(Re)build the collection's index under a new spec, in the background; 507 when the
    new index would not fit ``INNERSPACE_MEMORY_BUDGET_BYTES`` beside what is loaded."""
    return JobOut(**service.build_index(name, body.spec).public())


@router.post(
    "/collections/{name}/compact", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut
)
def compact(name: str, service: ServiceDep, _: WriteKey) -> JobOut:
    """Rewrite the sealed segments without deleted or replaced rows; reports bytes freed."""
    return JobOut(**service.compact(name).public())


@router.post(
    "/collections/{name}/import", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut
)
def import_path(name: str, body: ImportRequest, service: ServiceDep, _: AdminKey) -> JobOut:
    """Import a file that is already on the server (admin: it reads the server's files)."""
    job = service.import_file(name, body.path, body.format, body.ids_path, body.payloads_path)
    return JobOut(**job.public())


@router.post(
    "/collections/{name}/import/upload",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
)
async def import_upload(
    name: str,
    request: Request,
    service: ServiceDep,
    _: WriteKey,
    format: Literal["ndjson", "npy", "parquet"] = "ndjson",
) -> JobOut:
    """Upload a file as the raw request body (``?format=``), then import it in the background."""
    path = service.upload_path(name, format)
    size, limit = 0, service.settings.max_upload_bytes
    with open(path, "wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                fh.close()
                path.unlink(missing_ok=True)
                raise PayloadTooLarge(f"upload is over the {limit}-byte limit")
            fh.write(chunk)
    job = service.import_file(name, str(path), format, delete_after=True)
    return JobOut(**job.public())


@router.get("/jobs", response_model=JobList)
def list_jobs(
    service: ServiceDep, key: ReadKey, collection: str | None = None, state: State | None = None
) -> JobList:
    """Jobs, newest first (a key scoped to one collection sees only that collection's)."""
    if collection is not None:
        key.check_collection(collection)
    jobs = service.jobs.select(collection or key.collection, state)
    return JobList(jobs=[JobOut(**j.public()) for j in jobs])


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, service: ServiceDep, key: ReadKey) -> JobOut:
    job = service.jobs.get(job_id)
    key.check_collection(job.collection)
    return JobOut(**job.public())


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, service: ServiceDep, key: WriteKey) -> JobOut:
    key.check_collection(service.jobs.get(job_id).collection)
    return JobOut(**service.jobs.cancel(job_id).public())


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(job_id: str, service: ServiceDep, key: ReadKey) -> StreamingResponse:
    """Server-Sent Events: ``progress`` on every change, then one ``end`` with the final job."""
    key.check_collection(service.jobs.get(job_id).collection)  # 404/403 before the stream

    async def stream() -> AsyncIterator[str]:
        seen = -1
        while True:
            version = service.jobs.version(job_id)
            if version != seen:
                seen = version
                job = service.jobs.get(job_id)
                event = "end" if job.final else "progress"
                yield f"event: {event}\ndata: {json.dumps(job.public())}\n\n"
                if job.final:
                    return
            await asyncio.sleep(0.1)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
