"""The points store: external id -> internal id + JSON payload, in SQLite.

It is applied after the WAL is durable and records the last applied sequence number in the
same transaction, so a restart replays exactly the WAL records it has not seen. SQLite runs in
WAL mode with ``synchronous=NORMAL`` (our own log is the durability point);
:meth:`PointStore.checkpoint` forces it to disk before our log is truncated.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.filters import Filter, payload_problem, to_sql
from index.base import I64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    iid INTEGER NOT NULL UNIQUE,
    payload TEXT
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


def _dump(payload: Any) -> str | None:
    if payload is None:
        return None
    if (problem := payload_problem(payload)) is not None:
        raise ValueError(problem)  # the service validates first; this guards the store itself
    return orjson.dumps(payload).decode()


class PointStore:
    """Thread-safe wrapper over one SQLite file; all methods are short transactions."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def applied_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k='applied_seq'").fetchone()
        return int(row[0]) if row else 0

    def _set_seq(self, seq: int) -> None:
        self._db.execute(
            "INSERT INTO meta(k, v) VALUES('applied_seq', ?) "
            "ON CONFLICT(k) DO UPDATE SET v=excluded.v",
            (seq,),
        )

    def lookup(self, keys: Sequence[str]) -> dict[str, int]:
        """Internal ids of the given keys that exist."""
        out: dict[str, int] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                q = f"SELECT key, iid FROM points WHERE key IN ({','.join('?' * len(chunk))})"
                out.update(self._db.execute(q, chunk).fetchall())
        return out

    def upsert(self, seq: int, keys: Sequence[str], iids: I64, payloads: Sequence[Any]) -> None:
        rows = [(k, int(i), _dump(p)) for k, i, p in zip(keys, iids, payloads, strict=True)]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO points(key, iid, payload) VALUES(?,?,?) ON CONFLICT(key) "
                    "DO UPDATE SET iid=excluded.iid, payload=excluded.payload",
                    rows,
                )
                self._set_seq(seq)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, seq: int, keys: Sequence[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM points WHERE key=?", [(k,) for k in keys])
                self._set_seq(seq)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _where(self, flt: Filter | None) -> tuple[str, list[Any]]:
        params: list[Any] = []
        return (to_sql(flt, params) if flt is not None else "1"), params

    def matching(self, flt: Filter | None) -> list[tuple[str, int]]:
        """``(key, iid)`` of every point matching ``flt``."""
        where, params = self._where(flt)
        with self._lock:
            return self._db.execute(f"SELECT key, iid FROM points WHERE {where}", params).fetchall()

    def iids(self, flt: Filter | None = None) -> I64:
        """Sorted internal ids of the points matching ``flt`` (all points when None)."""
        where, params = self._where(flt)
        with self._lock:
            rows = self._db.execute(
                f"SELECT iid FROM points WHERE {where} ORDER BY iid", params
            ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def count(self, flt: Filter | None = None) -> int:
        where, params = self._where(flt)
        with self._lock:
            return int(
                self._db.execute(f"SELECT count(*) FROM points WHERE {where}", params).fetchone()[0]
            )

    def by_iids(self, iids: Sequence[int]) -> dict[int, tuple[str, Any]]:
        """``iid -> (key, payload)`` for the iids still present."""
        out: dict[int, tuple[str, Any]] = {}
        with self._lock:
            for i in range(0, len(iids), 500):
                chunk = [int(x) for x in iids[i : i + 500]]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT iid, key, payload FROM points WHERE iid IN ({marks})"
                for iid, key, payload in self._db.execute(q, chunk):
                    out[iid] = (key, None if payload is None else orjson.loads(payload))
        return out

    def get(self, key: str) -> tuple[int, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT iid, payload FROM points WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return int(row[0]), None if row[1] is None else orjson.loads(row[1])

    def scroll(
        self, after: str | None, limit: int, flt: Filter | None
    ) -> list[tuple[str, int, Any]]:
        """Up to ``limit`` points with key > ``after``, in key order."""
        where, params = self._where(flt)
        if after is not None:
            where += " AND key > ?"
            params.append(after)
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, iid, payload FROM points WHERE {where} ORDER BY key LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [(k, int(i), None if p is None else orjson.loads(p)) for k, i, p in rows]

    def max_iid(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(iid) FROM points").fetchone()
        return -1 if row[0] is None else int(row[0])

    def checkpoint(self) -> None:
        """Force every committed transaction into the main database file, fsynced."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(FULL)")

    def texts(self, field: str) -> list[tuple[int, str]]:
        """``(iid, text)`` of every point whose payload has a string at top-level ``field``."""
        path = f'$."{field}"'  # callers pass a plain identifier (no quotes)
        with self._lock:
            rows = self._db.execute(
                "SELECT iid, json_extract(payload, ?) FROM points "
                "WHERE payload IS NOT NULL AND json_type(payload, ?) = 'text' ORDER BY iid",
                (path, path),
            ).fetchall()
        return [(int(i), str(t)) for i, t in rows]
