"""Collection snapshots: consistent point-in-time copies on disk, and their verified restore.

``<data_dir>/snapshots/<collection>/<id>/`` holds ``files/`` (a copy of the collection
directory: ``manifest.json``, ``segments/``, ``points.sqlite``, ``wal/``) and ``snapshot.json``
(written last) listing every file with its size and sha256. The directory is staged as
``.stage-<id>``, fsynced and renamed into place, so a snapshot exists whole or not at all.

Consistency: the collection's seal lock is held throughout (no seal, build or compaction can
change the segments or drop WAL files), and its write lock while the manifest, the WAL files
and the points store are copied, so all three agree on one sequence number. The points store is
copied with SQLite's online backup API. Segments are immutable, so they are copied after the
write lock is released; rows deleted after the snapshot are still alive in the copied points
store, and rows deleted before it are absent from it, which is what opening reconciles against.

Deletion (by request or by retention, :func:`prune`) renames the snapshot aside to
``.trash-<id>`` and fsyncs the directory before removing the files, so after a crash a
snapshot is listed whole or not at all; a leftover trash directory is swept by the next delete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import Conflict, NotFound
from app.store.fsutil import atomic_write_bytes, fsync_dir, remove_tree

if TYPE_CHECKING:
    from app.collection import Collection

META = "snapshot.json"
FILES = "files"
TRASH = ".trash-"

# DELETE requests and retention after a snapshot job may pick the same snapshot at once; one
# remover at a time (per process: one server owns a data directory) keeps that a clean 404.
_removing = threading.RLock()


def snapshots_root(data_dir: Path, name: str) -> Path:
    return data_dir / "snapshots" / name


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _backup_sqlite(src: sqlite3.Connection, dst: Path) -> None:
    out = sqlite3.connect(dst)
    try:
        src.backup(out)
        out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        out.close()


def create(col: Collection, root: Path, snap_id: str) -> dict[str, Any]:
    """Write snapshot ``snap_id`` of ``col`` under ``root``; returns its metadata."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / snap_id
    if (final / META).exists():  # a retried job whose first attempt finished
        return json.loads((final / META).read_text())  # type: ignore[no-any-return]
    stage = root / f".stage-{snap_id}"
    remove_tree(stage)
    files = stage / FILES
    (files / "wal").mkdir(parents=True)
    # The collection's locks are private; a snapshot is the one outside reader that needs
    # them (seal lock first, then the write lock: the order Collection.seal uses).
    with col._seal_lock:
        with col._lock:
            last_seq = col.wal.last_seq
            manifest = dict(col._manifest)
            manifest["spec"] = col.config.index
            config = col.config
            count = col.points.count(None)
            for f in col.wal.files():
                _copy(f, files / "wal" / f.name)
            store = col.points
            with store._lock:
                _backup_sqlite(store._db, files / "points.sqlite")
        segments = [f"{s:08d}" for s in manifest["segments"]]
        for seg in segments:
            src = col.path / "segments" / seg
            shutil.copytree(src, files / "segments" / seg)
    (files / "segments").mkdir(exist_ok=True)
    (files / "manifest.json").write_text(json.dumps(manifest))
    listing: dict[str, dict[str, Any]] = {}
    for dirpath, _dirs, names in os.walk(files):
        for n in sorted(names):
            p = Path(dirpath) / n
            _fsync_file(p)
            listing[p.relative_to(files).as_posix()] = {
                "bytes": p.stat().st_size,
                "sha256": _sha256(p),
            }
    for dirpath, _dirs, _names in os.walk(files):
        fsync_dir(Path(dirpath))
    meta = {
        "id": snap_id,
        "collection": config.name,
        "config": asdict(config),
        "created_at": time.time(),
        "last_seq": last_seq,
        "count": count,
        "bytes": sum(int(v["bytes"]) for v in listing.values()),
        "files": listing,
    }
    atomic_write_bytes(stage / META, json.dumps(meta).encode())
    os.replace(stage, final)
    fsync_dir(root)
    return meta


def summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta[k] for k in ("id", "collection", "created_at", "bytes", "last_seq", "count")}


def list_snapshots(root: Path) -> list[dict[str, Any]]:
    """Every finished snapshot under ``root``, oldest first."""
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if d.name.startswith(".") or not (d / META).is_file():
            continue
        try:
            out.append(summary(json.loads((d / META).read_text())))
        except (ValueError, KeyError):
            continue  # an unreadable snapshot is not listed; restore reports it
        except FileNotFoundError:
            continue  # deleted while we listed
    return sorted(out, key=lambda m: (m["created_at"], m["id"]))


def _exists(root: Path, snap_id: str) -> bool:
    return not snap_id.startswith(".") and "/" not in snap_id and (root / snap_id / META).is_file()


def load(root: Path, snap_id: str) -> dict[str, Any]:
    """A snapshot's metadata (404 when absent, 409 when unreadable)."""
    if not _exists(root, snap_id):
        raise NotFound(f"snapshot {snap_id!r} not found")
    try:
        meta: dict[str, Any] = json.loads((root / snap_id / META).read_text())
        meta["files"], meta["config"]  # noqa: B018 - shape check
    except (ValueError, KeyError) as exc:
        raise Conflict(f"snapshot {snap_id!r} is corrupt: unreadable {META}") from exc
    return meta


def verify(root: Path, meta: dict[str, Any]) -> None:
    """Check every listed file's size and sha256, and that no file is missing (409)."""
    files = root / str(meta["id"]) / FILES
    for rel, want in meta["files"].items():
        p = files / rel
        try:
            if not p.is_file():
                raise FileNotFoundError(p)
            same = p.stat().st_size == want["bytes"] and _sha256(p) == want["sha256"]
        except FileNotFoundError:
            _deleted(root, meta)
            raise Conflict(
                f"snapshot {meta['id']!r} is corrupt: {rel} is missing", {"file": rel}
            ) from None
        if not same:
            raise Conflict(
                f"snapshot {meta['id']!r} is corrupt: checksum mismatch in {rel}", {"file": rel}
            )


def stage_restore(root: Path, meta: dict[str, Any], stage: Path) -> None:
    """Copy a verified snapshot's files into ``stage`` (a fresh directory), fsynced; the
    copies are checked again so a file that changed under us is not restored."""
    remove_tree(stage)
    src = root / str(meta["id"]) / FILES
    for rel, want in meta["files"].items():
        dst = stage / rel
        try:
            _copy(src / rel, dst)
        except FileNotFoundError:
            _deleted(root, meta)
            raise
        _fsync_file(dst)
        if _sha256(dst) != want["sha256"]:
            raise Conflict(f"snapshot {meta['id']!r} changed while restoring: {rel}")
    (stage / "segments").mkdir(parents=True, exist_ok=True)
    (stage / "wal").mkdir(exist_ok=True)
    for dirpath, _dirs, _names in os.walk(stage):
        fsync_dir(Path(dirpath))


def _deleted(root: Path, meta: dict[str, Any]) -> None:
    """404 when a snapshot being read was deleted meanwhile (rather than calling it corrupt)."""
    if not (root / str(meta["id"]) / META).is_file():
        raise NotFound(f"snapshot {meta['id']!r} was deleted while being read")


def delete(root: Path, snap_id: str, writing: str | None = None) -> None:
    """Remove snapshot ``snap_id`` and its files durably. 404 when there is none; 409 when
    ``writing`` (the state of the job that writes it: queued or running)."""
    if writing is not None:
        raise Conflict(
            f"snapshot {snap_id!r} is being written (its job is {writing}); "
            "wait for the job to end (a queued one can be cancelled)",
            {"job": snap_id, "state": writing},
        )
    with _removing:
        if not _exists(root, snap_id):
            raise NotFound(f"snapshot {snap_id!r} of collection {root.name!r} not found")
        for left in root.glob(TRASH + "*"):  # from a crash mid-delete
            shutil.rmtree(left, ignore_errors=True)
        trash = root / f"{TRASH}{snap_id}"
        os.replace(root / snap_id, trash)
        fsync_dir(root)  # from here the snapshot is gone, also after a crash
        shutil.rmtree(trash)
        fsync_dir(root)


def prune(root: Path, keep: int, protect: str) -> list[str]:
    """Delete the oldest finished snapshots beyond the newest ``keep`` (never ``protect``, the
    one just taken); returns the ids deleted, oldest first."""
    with _removing:
        listed = [m["id"] for m in list_snapshots(root) if m["id"] != protect]
        drop = listed[: max(0, len(listed) - (keep - 1))]
        for snap_id in drop:
            delete(root, snap_id)
    return drop
