"""Named pipelines a collection declares (``POST /collections/{name}/pipelines``).

Kept in ``pipelines.json`` in the collection's directory, rewritten whole with temp + fsync +
rename on every change, so a crash leaves the old set or the new one. A pipeline is validated
against the collection when it is saved, and parsed again on every use (parsing is cheap, and a
parsed plan holds per-request state).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import orjson

from app.errors import AlreadyExists, InvalidInput, NotFound
from app.store.fsutil import atomic_write_bytes

__all__ = ["FILE", "NAME", "NamedPipelines"]

FILE = "pipelines.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class NamedPipelines:
    """``name -> stages`` of one collection, plus which one is the default."""

    def __init__(self, col_dir: Path, collection: str) -> None:
        self.path = col_dir / FILE
        self.collection = collection
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"default": None, "pipelines": {}}
        data: dict[str, Any] = orjson.loads(self.path.read_bytes())
        return data

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_bytes(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def all(self) -> tuple[str | None, dict[str, list[Any]]]:
        """``(default name, {name: stages})``."""
        with self._lock:
            data = self._read()
        return data["default"], data["pipelines"]

    def get(self, name: str) -> list[Any]:
        default, pipes = self.all()
        if name not in pipes:
            known = ", ".join(sorted(pipes)) or "none"
            raise NotFound(
                f"pipeline {name!r} not found in collection {self.collection!r} (known: {known})"
            )
        stages: list[Any] = pipes[name]
        return stages

    def default(self) -> tuple[str, list[Any]] | None:
        default, pipes = self.all()
        return None if default is None else (default, pipes[default])

    def add(self, name: str, stages: list[Any], default: bool, replace: bool) -> None:
        """Save ``stages`` (already validated) as ``name``; the first one saved is the default."""
        if not NAME.fullmatch(name):
            raise InvalidInput(
                f"name: {name!r} is not a valid pipeline name (letters, digits, _ and -, "
                "at most 64, starting with a letter or digit)"
            )
        with self._lock:
            data = self._read()
            if name in data["pipelines"] and not replace:
                raise AlreadyExists(
                    f"pipeline {name!r} already exists in collection {self.collection!r}; "
                    "send replace: true to overwrite it"
                )
            data["pipelines"][name] = stages
            if default or data["default"] is None:
                data["default"] = name
            self._write(data)

    def remove(self, name: str) -> None:
        """Drop ``name``; if it was the default, no pipeline is default any more."""
        with self._lock:
            data = self._read()
            if name not in data["pipelines"]:
                raise NotFound(f"pipeline {name!r} not found in collection {self.collection!r}")
            del data["pipelines"][name]
            if data["default"] == name:
                data["default"] = None
            self._write(data)
