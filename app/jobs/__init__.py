"""Durable background jobs: index builds, bulk imports, snapshots (one model, one runner)."""

from __future__ import annotations

from app.jobs import build, imports, snapshot
from app.jobs.model import Job, JobTable
from app.jobs.runner import Handler, JobRunner

#: Every job kind, by name: the one place a new kind is registered.
HANDLERS: dict[str, Handler] = {
    "build": build.run,
    "compact": build.compact,
    "import": imports.run,
    "snapshot": snapshot.run,
}

__all__ = ["HANDLERS", "Job", "JobRunner", "JobTable"]
