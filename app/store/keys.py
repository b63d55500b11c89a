"""API keys in the catalog database (``catalog.sqlite``, table ``api_keys``).

A key is shown once, at creation: ``isk_<id>_<secret>``. The table keeps the public ``id``, a
random per-key salt and ``HMAC-SHA256(salt, secret)``; checking a key recomputes the HMAC and
compares it in constant time. Revoking keeps the row (for ``keys list``) and stops the key at
once, in every process that shares the data directory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "isk_"
_ID_HEX = 12
#: ``last_used_at`` is written at most this often per key (a write per request would fsync).
TOUCH_EVERY_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT,
    role TEXT NOT NULL,
    collection TEXT,
    salt TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
)
"""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    role: str
    collection: str | None
    name: str | None
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "collection": self.collection,
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``isk_<id>_<secret>`` -> ``(id, secret)``; None for anything else."""
    if not token.startswith(PREFIX) or len(token) < len(PREFIX) + _ID_HEX + 2:
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("_")
    if len(key_id) != _ID_HEX or not sep or not secret:
        return None
    return key_id, secret


_COLUMNS = "id, role, collection, name, created_at, last_used_at, revoked_at"


class KeyStore:
    """Create, list, revoke and verify API keys; safe to share between threads."""

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self, role: str, collection: str | None = None, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is not stored and cannot be shown again."""
        key_id = secrets.token_hex(_ID_HEX // 2)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        key = ApiKey(key_id, role, collection, name, time.time())
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys(id, name, role, collection, salt, hash, created_at) "
                "VALUES(?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, role, collection, salt, _digest(salt, secret), key.created_at),
            )
        return key, f"{PREFIX}{key_id}_{secret}"

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        sql = f"SELECT {_COLUMNS} FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at").fetchall()
        return [ApiKey(*r) for r in rows]

    def get(self, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id=?", (key_id,)
            ).fetchone()
        return None if row is None else ApiKey(*row)

    def revoke(self, key_id: str) -> ApiKey | None:
        """Mark the key revoked (idempotent); None when no such key exists."""
        with self._lock:
            self._db.execute(
                "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return self.get(key_id)

    def active_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
            return int(row.fetchone()[0])

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` belongs to, or None (unknown, malformed or revoked)."""
        parts = split_token(token)
        key_id, secret = parts if parts is not None else ("", token)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS}, salt, hash FROM api_keys WHERE id=?", (key_id,)
            ).fetchone()
        # Unknown ids cost one HMAC too, so the answer time does not tell ids apart.
        salt, stored = (row[7], row[8]) if row is not None else ("00" * 16, "0" * 64)
        ok = hmac.compare_digest(_digest(salt, secret), stored)
        if row is None or not ok or parts is None:
            return None
        key = ApiKey(*row[:7])
        if not key.active:
            return None
        self._touch(key.id)
        return key

    def _touch(self, key_id: str) -> None:
        now = time.time()
        if now - self._touched.get(key_id, 0.0) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        with self._lock:
            self._db.execute("UPDATE api_keys SET last_used_at=? WHERE id=?", (now, key_id))
