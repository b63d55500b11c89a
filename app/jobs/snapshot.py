"""Snapshot jobs: a consistent point-in-time copy of one collection (:mod:`app.store.snapshots`),
then retention: past ``INNERSPACE_SNAPSHOT_KEEP`` snapshots, the oldest are deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.jobs.runner import JobContext
from app.store import snapshots

if TYPE_CHECKING:
    from app.service import SearchService


def run(ctx: JobContext, service: SearchService) -> dict[str, Any]:
    """Job handler for ``kind="snapshot"``; the snapshot's id is the job's id, so a retried
    job rewrites (or finds) the same snapshot. The result lists the ids retention deleted
    (``pruned``); retention runs only once the new snapshot is complete."""
    col = service.collection(ctx.job.collection)
    ctx.progress("copying", 0, None)
    root = service.snapshots_dir(col.config.name)
    meta = snapshots.create(col, root, ctx.job.id)
    keep = service.settings.snapshot_keep
    pruned = snapshots.prune(root, keep, protect=ctx.job.id) if keep is not None else []
    ctx.progress("done", 1, 1)
    return snapshots.summary(meta) | {"pruned": pruned}
