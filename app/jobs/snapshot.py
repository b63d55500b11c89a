"""Snapshot jobs: a consistent point-in-time copy of one collection (:mod:`app.store.snapshots`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.jobs.runner import JobContext
from app.store import snapshots

if TYPE_CHECKING:
    from app.service import SearchService


def run(ctx: JobContext, service: SearchService) -> dict[str, Any]:
    """Job handler for ``kind="snapshot"``; the snapshot's id is the job's id, so a retried
    job rewrites (or finds) the same snapshot."""
    col = service.collection(ctx.job.collection)
    ctx.progress("copying", 0, None)
    meta = snapshots.create(col, service.snapshots_dir(col.config.name), ctx.job.id)
    ctx.progress("done", 1, 1)
    return snapshots.summary(meta)
