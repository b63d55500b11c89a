"""Immutable vector segments: the sealed part of a collection.

``segments/<id>/`` holds ``vectors.npy (n, d) float32``, ``ids.npy (n,) int64`` (sorted
internal ids), an ``index/`` directory when the index is worth persisting, and ``meta.json``
(written last) with crc32 checksums of every file. A segment directory is staged under a
temporary name, fsynced and renamed into place, so it exists whole or not at all. Deletions
never touch the files: the collection tombstones rows in memory from the points store.
Multi-vector segments hold ``tokens.npy`` + ``offsets.npy`` instead of ``vectors.npy``
(:mod:`app.store.tokens`) and say ``"multivector": true`` in ``meta.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from app.store.fsutil import atomic_write_bytes, file_crc32, fsync_dir, remove_tree, write_array
from app.store.tokens import (
    TokenBatch,
    TokenRows,
    build_token_index,
    load_source,
    open_token_segment,
    write_token_files,
)
from index.base import F32, I64, Index
from index.flat import FlatIndex
from index.spec import index_factory, lookup, parse_spec


class SegmentCorrupt(RuntimeError):
    """A segment file is missing or its checksum does not match ``meta.json``."""


@dataclass
class Segment:
    """A loaded segment: the exact vector store and the index over it (the same object for
    Flat). Multi-vector segments keep :class:`TokenRows` over their Muvera index's tokens."""

    id: int
    store: FlatIndex | TokenRows
    index: Index
    meta: dict[str, Any]

    @property
    def ids(self) -> I64:
        return self.store.ids

    def remove(self, iids: I64) -> int:
        removed = self.store.remove(iids)
        if self.index is not self.store:
            self.index.remove(iids)
        return removed

    def nbytes(self) -> int:
        extra = 0 if self.index is self.store else self.index.nbytes()
        return self.store.nbytes() + extra


def build_index(spec: str, dim: int, ids: I64, vectors: F32, store: FlatIndex) -> Index:
    """The index for a segment; Flat reuses the store instead of copying the vectors."""
    cls = lookup(parse_spec(spec).parts[0].name)
    if cls is FlatIndex:
        return store
    index = index_factory(dim, spec)
    index.add(ids, vectors)
    return index


def stage_dir(root: Path, seg_id: int) -> Path:
    """A fresh, empty staging directory for segment ``seg_id``."""
    stage = root / f".stage-{seg_id:08d}"
    remove_tree(stage)
    stage.mkdir(parents=True)
    return stage


def finish_segment(
    root: Path,
    seg_id: int,
    stage: Path,
    spec: str,
    index: Any,
    n: int,
    dim: int,
    tokens: int | None = None,
) -> dict[str, Any]:
    """Persist ``index`` (when worth it), checksum every file, write ``meta.json`` last and
    rename the staged directory into place. Returns the meta. ``tokens``: the token rows of a
    multi-vector segment (``meta["multivector"]`` is then true)."""
    if index is not None and type(index).persist:
        index.save(stage / "index")
        for f in sorted((stage / "index").rglob("*")):  # composite indexes nest directories
            if f.is_dir():
                fsync_dir(f)
                continue
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(stage / "index")
    sums = {
        str(f.relative_to(stage)): file_crc32(f)
        for f in sorted(stage.rglob("*"))
        if f.is_file() and f.name != "meta.json"
    }
    meta = {
        "id": seg_id,
        "n": n,
        "dim": dim,
        "spec": spec,
        "created_at": time.time(),
        "crc32": sums,
    }
    if tokens is not None:
        meta.update(multivector=True, tokens=tokens)
    atomic_write_bytes(stage / "meta.json", json.dumps(meta, indent=1).encode())
    os.replace(stage, root / f"{seg_id:08d}")
    fsync_dir(root)
    return meta


def write_segment(
    root: Path, seg_id: int, spec: str, ids: I64, vectors: F32 | TokenBatch
) -> Segment:
    """Build, persist and return a segment of ``vectors (n, d)`` (or ``n`` token sets) under
    sorted ``ids (n,)``."""
    if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
        raise ValueError("segment ids must be strictly increasing")
    if isinstance(vectors, TokenBatch):
        return _write_tokens(root, seg_id, spec, ids, vectors)
    dim = int(vectors.shape[1])
    store = FlatIndex(dim)
    store.add(ids, vectors)
    index = build_index(spec, dim, ids, vectors, store)
    stage = stage_dir(root, seg_id)
    write_array(stage / "vectors.npy", vectors)
    write_array(stage / "ids.npy", ids)
    meta = finish_segment(
        root, seg_id, stage, spec, None if index is store else index, len(ids), dim
    )
    if index is not store:
        store = _store(type(index), ids, root / f"{seg_id:08d}" / "vectors.npy", dim)
    return Segment(seg_id, store, index, meta)


def _write_tokens(root: Path, seg_id: int, spec: str, ids: I64, batch: TokenBatch) -> Segment:
    dim = int(batch.tokens.shape[1])
    index = build_token_index(spec, dim, ids, batch)
    stage = stage_dir(root, seg_id)
    write_token_files(stage, ids, batch)
    meta = finish_segment(root, seg_id, stage, spec, index, len(ids), dim, len(batch.tokens))
    source = load_source(root / f"{seg_id:08d}")
    return Segment(seg_id, TokenRows(dim, index.store, index, source), cast(Index, index), meta)


def _store(cls: type, ids: I64, vectors: Path, dim: int) -> FlatIndex:
    """The segment's exact rows: in memory when Flat searches them, else memory-mapped.

    Other indexes keep what they search themselves (codes, graphs, their own float store), so
    the segment's rows are only read for ``with_vector``, search-by-id and merges: mapping them
    keeps a Binary collection's RAM at its codes rather than codes plus every float row.
    """
    if cls is FlatIndex:
        store = FlatIndex(dim)
        store.add(ids, np.load(vectors))
        return store
    return FlatIndex.wrap(ids, np.load(vectors, mmap_mode="r"))


def load_segment(path: Path, verify: bool = True) -> Segment:
    """Load a sealed segment, checking every file against its recorded crc32."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise SegmentCorrupt(f"{path}: unreadable meta.json ({exc})") from exc
    if verify:
        for name, crc in meta["crc32"].items():
            f = path / name
            if not f.exists() or file_crc32(f) != crc:
                raise SegmentCorrupt(f"{path}: {name} is missing or fails its checksum")
    if meta.get("multivector"):
        try:
            rows, muvera = open_token_segment(path, meta)
        except (OSError, ValueError) as exc:
            raise SegmentCorrupt(f"{path}: {exc}") from exc
        return Segment(int(meta["id"]), rows, cast(Index, muvera), meta)
    ids = np.load(path / "ids.npy")
    spec = str(meta["spec"])
    cls = lookup(parse_spec(spec).parts[0].name)
    store = _store(cls, ids, path / "vectors.npy", int(meta["dim"]))
    index: Index
    if cls is FlatIndex:
        index = store
    elif (path / "index").is_dir():
        index = cls.load(path / "index")
    else:
        index = build_index(spec, store.dim, ids, store.vectors, store)
    return Segment(int(meta["id"]), store, index, meta)
