"""The catalog: which collections exist and their configuration (SQLite, fully synchronous).

A collection exists exactly when its catalog row is committed; its directory is created before
the row and removed after it, so a crash in between leaves only an orphan directory, which
:meth:`Catalog.orphans` reports for clean-up at start-up.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Metric = Literal["ip", "cosine"]


@dataclass(frozen=True)
class CollectionConfig:
    """What a collection is; fixed at creation."""

    name: str
    dim: int
    metric: Metric = "ip"
    index: str = "Flat"
    multivector: bool = False
    encoder: str | None = None
    created_at: float = field(default_factory=time.time)
    encoder_fingerprint: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CollectionConfig:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


class Catalog:
    """``catalog.sqlite`` under the data directory."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.collections_dir = data_dir / "collections"
        self.collections_dir.mkdir(exist_ok=True)
        self._db = sqlite3.connect(
            data_dir / "catalog.sqlite", check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS collections "
                "(name TEXT PRIMARY KEY, config TEXT NOT NULL)"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def path_of(self, name: str) -> Path:
        return self.collections_dir / name

    def configs(self) -> list[CollectionConfig]:
        with self._lock:
            rows = self._db.execute("SELECT config FROM collections ORDER BY name").fetchall()
        return [CollectionConfig.from_json(r[0]) for r in rows]

    def add(self, config: CollectionConfig) -> bool:
        """Commit a new row; False when the name is taken."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO collections(name, config) VALUES(?, ?)",
                    (config.name, config.to_json()),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def update(self, config: CollectionConfig) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE collections SET config=? WHERE name=?", (config.to_json(), config.name)
            )

    def remove(self, name: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM collections WHERE name=?", (name,))
        return cur.rowcount > 0

    def orphans(self) -> list[Path]:
        """Collection directories with no catalog row (interrupted create or delete)."""
        known = {c.name for c in self.configs()}
        return [p for p in self.collections_dir.iterdir() if p.name not in known]
