"""The one job model for every long operation, and its durable table in the catalog.

States: ``queued -> running -> succeeded | failed | cancelled``. A job found ``running`` or
``queued`` at start-up was interrupted by a stop or a crash: it is queued again (or failed with
the reason once it has been tried too often), never left stuck.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
MAX_ATTEMPTS = 3


@dataclass
class Job:
    """A long operation's identity, progress and outcome."""

    kind: str
    collection: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    state: State = "queued"
    phase: str = "queued"
    done: int = 0
    total: int | None = None
    rate_per_s: float | None = None
    eta_s: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def public(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = [f for f in Job.__dataclass_fields__]


class JobTable:
    """``jobs`` in ``catalog.sqlite``; every state change is committed before it is reported."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, collection TEXT, "
                "state TEXT, created_at REAL, body TEXT NOT NULL)"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, job: Job) -> None:
        body = json.dumps(job.public())
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs(id, collection, state, created_at, body) VALUES(?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET state=excluded.state, body=excluded.body",
                (job.id, job.collection, job.state, job.created_at, body),
            )

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _load(row[0])

    def select(
        self, collection: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Job]:
        where, params = [], []
        if collection is not None:
            where.append("collection=?")
            params.append(collection)
        if state is not None:
            where.append("state=?")
            params.append(state)
        sql = "SELECT body FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*params, limit]).fetchall()
        return [_load(r[0]) for r in rows]

    def unfinished(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM jobs WHERE state IN ('queued','running') ORDER BY created_at"
            ).fetchall()
        return [_load(r[0]) for r in rows]


def _load(body: str) -> Job:
    data = json.loads(body)
    return Job(**{k: v for k, v in data.items() if k in _COLUMNS})
