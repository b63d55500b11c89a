"""A collection: its durable state on disk and the live view searches read.

Write path: validate -> assign internal ids under the write lock -> append to the WAL (fsync)
-> apply to the points store -> tombstone replaced rows -> append to the in-memory tail, which
searches scan exactly. Sealing moves the tail into an immutable segment, commits the manifest
and only then drops the WAL files it covers. Opening = manifest + segments + WAL replay.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.config import Settings
from app.dense import to_matrix
from app.errors import InvalidInput, NotFound
from app.filters import Filter, payload_problem, point_key
from app.multivector import to_tokens
from app.store import wal as walmod
from app.store.catalog import CollectionConfig
from app.store.fsutil import atomic_write_bytes, dir_bytes, remove_tree
from app.store.points import PointStore
from app.store.segments import Segment, load_segment, write_segment
from app.store.tokens import Rows, TokenBatch, TokenRows, append_part, gather_parts
from index.base import F32, I64
from index.flat import FlatIndex

log = logging.getLogger(__name__)


class Collection:
    """One collection's storage and in-memory state; thread-safe."""

    def __init__(self, path: Path, config: CollectionConfig, settings: Settings) -> None:
        self.path = path
        self.config = config
        self.settings = settings
        self.dim = config.dim
        self.multivector = config.multivector
        self._lock = threading.RLock()  # serialises writers and state swaps
        self._seal_lock = threading.Lock()  # one seal at a time
        self._sealer: threading.Thread | None = None
        self._segments: list[Segment] = []
        self._frozen: list[Rows] = []  # tails being sealed, still searched
        self._tail: Rows = self._new_tail()
        self._manifest: dict[str, Any] = {"segments": [], "sealed_seq": 0, "next_segment": 1}
        (path / "segments").mkdir(parents=True, exist_ok=True)
        self.points = PointStore(path / "points.sqlite")
        self.wal = walmod.WriteAheadLog(path / "wal")
        self._next_iid = 0
        self._load()

    # ---- opening --------------------------------------------------------------------------

    def _load(self) -> None:
        mpath = self.path / "manifest.json"
        if mpath.exists():
            self._manifest = json.loads(mpath.read_text())
            # The manifest, not the catalog, is the truth about the built spec: a crash between
            # the two commits of a rebuild leaves the catalog one step behind.
            self.config = replace(self.config, index=self._manifest.get("spec", self.config.index))
        keep = {f"{s:08d}" for s in self._manifest["segments"]}
        for d in (self.path / "segments").iterdir():
            if d.name not in keep:  # staged, superseded or keep-lists left by a crash
                remove_tree(d)
        self._segments = [
            load_segment(self.path / "segments" / f"{s:08d}", self.settings.verify_checksums)
            for s in self._manifest["segments"]
        ]
        sealed, applied = int(self._manifest["sealed_seq"]), self.points.applied_seq
        max_iid = max(
            [self.points.max_iid()] + [int(s.ids[-1]) for s in self._segments if len(s.ids)]
        )
        replayed = 0
        for rec in self.wal.replay():
            replayed += 1
            keys = rec.meta["keys"]
            if rec.kind in (walmod.UPSERT, walmod.TOKENS_UPSERT):
                if rec.seq > applied:
                    self.points.upsert(rec.seq, keys, rec.ids, rec.meta["payloads"])
                if rec.seq > sealed and rec.vectors is not None:
                    x = rec.vectors if rec.offsets is None else TokenBatch(rec.vectors, rec.offsets)
                    append_part(self._tail, rec.ids, x)
                if len(rec.ids):
                    max_iid = max(max_iid, int(rec.ids.max()))
            elif rec.seq > applied:
                self.points.delete(rec.seq, keys)
        self.wal.last_seq = max(self.wal.last_seq, sealed, applied)
        self._next_iid = max_iid + 1
        live = self.points.iids()
        parts: list[Segment | Rows] = [*self._segments, self._tail]
        for part in parts:
            part.remove(np.setdiff1d(part.ids, live, assume_unique=True))
        self._drop_orphans(live, parts)
        live = self.points.iids()
        log.info(
            "collection %s: %d segments, %d WAL records replayed, %d points",
            self.config.name,
            len(self._segments),
            replayed,
            len(live),
        )

    def _drop_orphans(self, live: I64, parts: Sequence[Segment | Rows]) -> None:
        """Forget points whose vector is in no segment and no replayed WAL record.

        Only a damaged WAL leaves such points. The points store applies a record once it is
        durable, so a torn tail never does; but when a corrupt record ends the replay early,
        the store has already applied that record and the ones after it. Kept, such points
        would be counted, scrolled and fetched, yet never found by a search. Their previous
        versions went with the store's rows, so they go entirely (idempotent: a crash before
        the store syncs this finds and drops them again).
        """
        held = np.concatenate([np.asarray(p.ids, dtype=np.int64) for p in parts])
        orphans = np.setdiff1d(live, held)
        if not len(orphans):
            return
        keys = [key for key, _ in self.points.by_iids(orphans.tolist()).values()]
        self.points.delete(self.points.applied_seq, keys)
        log.error(
            "collection %s: %d points lost their vectors with a damaged WAL record; dropped: %s",
            self.config.name,
            len(keys),
            ", ".join(keys[:10]) + (", ..." if len(keys) > 10 else ""),
        )

    def close(self) -> None:
        sealer = self._sealer
        if sealer is not None:
            sealer.join()
        with self._lock:
            self.wal.close()
            self.points.close()

    # ---- writes ---------------------------------------------------------------------------

    def _new_tail(self) -> Rows:
        return TokenRows(self.dim) if self.multivector else FlatIndex(self.dim)

    def validate(self, vectors: Sequence[Any], what: str = "points") -> F32 | TokenBatch:
        """Dense vectors as an ``(n, dim)`` matrix, or token sets as a batch (422 on bad input)."""
        cosine = self.config.metric == "cosine"
        convert = to_tokens if self.multivector else to_matrix
        return convert(vectors, self.dim, cosine, self.config.name, what)

    def upsert(
        self,
        ids: Sequence[int | str],
        vectors: Sequence[Any],
        payloads: Sequence[dict[str, Any] | None],
    ) -> tuple[int, int]:
        """Insert or replace points, durably; returns ``(count, seq)`` once the WAL is synced.
        ``vectors``: one ``dim`` vector per point, or one ``(t, dim)`` token set for a
        multi-vector collection."""
        keys = [point_key(i) for i in ids]
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in seen:
                raise InvalidInput(
                    f"points[{i}].id {ids[i]!r} repeats points[{seen[k]}].id in the same batch",
                    {"index": i},
                )
            seen[k] = i
        for i, p in enumerate(payloads):
            if p is None:
                continue
            if (problem := payload_problem(p, f"points[{i}].payload")) is not None:
                raise InvalidInput(problem, {"index": i})
            if len(orjson.dumps(p)) > self.settings.max_payload_bytes:
                raise InvalidInput(
                    f"points[{i}].payload is over {self.settings.max_payload_bytes} bytes of JSON",
                    {"index": i},
                )
        x = self.validate(vectors)
        with self._lock:
            old = self.points.lookup(keys)
            iids = np.arange(self._next_iid, self._next_iid + len(keys), dtype=np.int64)
            meta = {"keys": keys, "payloads": list(payloads)}
            if isinstance(x, TokenBatch):
                body = walmod.encode_tokens_upsert(iids, x.tokens, x.offsets, meta)
            else:
                body = walmod.encode_upsert(iids, x, meta)
            seq = self.wal.append(body)
            self._next_iid += len(keys)
            self.points.upsert(seq, keys, iids, payloads)
            if old:
                self._tombstone(np.fromiter(old.values(), dtype=np.int64, count=len(old)))
            append_part(self._tail, iids, x)
        self._maybe_seal()
        return len(keys), seq

    def delete(self, ids: Sequence[int | str] | None, flt: Filter | None) -> tuple[int, int]:
        """Delete by ids or by filter; returns ``(deleted, seq)`` once durable."""
        with self._lock:
            if ids is not None:
                found = self.points.lookup([point_key(i) for i in ids])
                pairs = list(found.items())
            else:
                pairs = self.points.matching(flt)
            if not pairs:
                return 0, self.wal.last_seq
            keys = [k for k, _ in pairs]
            iids = np.array(sorted(i for _, i in pairs), dtype=np.int64)
            seq = self.wal.append(walmod.encode_delete(iids, {"keys": keys}))
            self.points.delete(seq, keys)
            self._tombstone(iids)
        return len(keys), seq

    def _tombstone(self, iids: I64) -> None:
        iids = np.sort(iids)
        parts: list[Segment | Rows] = [*self._segments, *self._frozen, self._tail]
        for part in parts:
            part.remove(iids)

    # ---- sealing --------------------------------------------------------------------------

    def _maybe_seal(self) -> None:
        if len(self._tail) < self.settings.seal_threshold or self._seal_lock.locked():
            return
        with self._lock:
            if self._sealer is not None and self._sealer.is_alive():
                return
            self._sealer = threading.Thread(
                target=self._seal_quietly, name=f"seal-{self.config.name}", daemon=True
            )
            self._sealer.start()

    def _seal_quietly(self) -> None:
        try:
            self.seal()
        except Exception:  # the data is still in the WAL; the next seal retries
            log.exception("sealing collection %s failed", self.config.name)

    def seal(self) -> dict[str, int]:
        """Move the tail (and, past ``max_segments``, every segment) into one new segment."""
        with self._seal_lock:
            return self._seal_locked()

    def _write_manifest(self, **changes: Any) -> None:
        manifest = {**self._manifest, **changes, "spec": self.config.index}
        atomic_write_bytes(self.path / "manifest.json", json.dumps(manifest).encode())
        self._manifest = manifest

    def _seal_locked(self) -> dict[str, int]:
        with self._lock:
            tail = self._tail
            # Tails a failed seal left frozen: the new boundary covers their WAL records, so
            # they must go into this segment (seals are serialised: nothing else is frozen).
            leftover = list(self._frozen)
            merge = len(self._segments) >= self.settings.max_segments
            if len(tail) == 0 and not merge and not leftover:
                return {"sealed": 0, "segments": len(self._segments)}
            boundary = self.wal.roll()
            self._frozen.append(tail)
            self._tail = self._new_tail()
            sources: list[Rows] = [s.store for s in self._segments] if merge else []
            sources += [*leftover, tail]
            snaps = [src.alive_mask() for src in sources]
            seg_id = int(self._manifest["next_segment"])
            self._manifest["next_segment"] = seg_id + 1  # a failed try's directory may linger
        ids = np.concatenate([s.ids[m] for s, m in zip(sources, snaps, strict=True)])
        x = gather_parts(sources, snaps, self.dim, self.multivector)
        seg = write_segment(self.path / "segments", seg_id, self.config.index, ids, x)
        with self._lock:
            for src, snap in zip(sources, snaps, strict=True):
                died = snap & ~src.alive_mask()[: len(snap)]
                seg.remove(src.ids[: len(snap)][died])
            kept = [] if merge else list(self._segments)
            dropped = list(self._segments) if merge else []
            self.points.checkpoint()
            self._write_manifest(
                segments=[s.id for s in kept] + [seg.id],
                sealed_seq=boundary,
                next_segment=seg_id + 1,
            )
            self._segments = [*kept, seg]
            for t in (*leftover, tail):
                self._frozen.remove(t)
        self.wal.drop_through(boundary)
        for s in dropped:
            remove_tree(self.path / "segments" / f"{s.id:08d}")
        return {"sealed": len(ids), "segments": len(self._segments)}

    @contextmanager
    def building(self) -> Iterator[tuple[list[Segment], int]]:
        """Hold off seals for a rebuild: seal the tail now, then yield the sealed segments and
        a reserved segment id. New writes meanwhile stay in the (exactly scanned) tail."""
        with self._seal_lock:
            self._seal_locked()
            with self._lock:
                seg_id = int(self._manifest["next_segment"])
                self._manifest["next_segment"] = seg_id + 1
                sources = list(self._segments)
            yield sources, seg_id

    def install_build(self, seg_id: int | None, spec: str, replaced: list[Segment]) -> None:
        """Swap the rebuilt segment in for ``replaced`` in one manifest commit (call inside
        :meth:`building`)."""
        seg = None
        if seg_id is not None:
            seg = load_segment(self.path / "segments" / f"{seg_id:08d}")
        with self._lock:
            if seg is not None:
                seg.remove(np.setdiff1d(seg.ids, self.points.iids(), assume_unique=True))
            gone = {s.id for s in replaced}
            kept = [s for s in self._segments if s.id not in gone]
            self.config = replace(self.config, index=spec)
            new = ([seg] if seg is not None else []) + kept
            self._write_manifest(segments=[s.id for s in new])
            self._segments = new
        for s in replaced:
            remove_tree(self.path / "segments" / f"{s.id:08d}")

    # ---- reads ----------------------------------------------------------------------------

    def parts(self) -> tuple[list[Segment], list[Rows]]:
        """A consistent snapshot of what to search: sealed segments, then unindexed tails."""
        with self._lock:
            return list(self._segments), [*self._frozen, self._tail]

    def stored_rows(self) -> int:
        """Rows held in segments and tails, dead ones included (what compaction reclaims)."""
        segs, tails = self.parts()
        return sum(len(s.ids) for s in segs) + sum(len(t.ids) for t in tails)

    def vector_of(self, iid: int) -> F32 | None:
        """A live point's ``(dim,)`` vector, or its ``(t, dim)`` tokens (multi-vector)."""
        segs, tails = self.parts()
        for store in [s.store for s in segs] + tails:
            rows = store.rows_of(np.array([iid], dtype=np.int64))
            if len(rows) and store.alive_mask()[rows[0]]:
                if isinstance(store, TokenRows):
                    return store.doc(int(rows[0])).copy()
                vec: F32 = store.vectors[rows[0]].copy()
                return vec
        return None

    def get(self, point_id: int | str) -> tuple[int, Any] | None:
        return self.points.get(point_key(point_id))

    def require(self, point_id: int | str) -> tuple[int, Any]:
        found = self.get(point_id)
        if found is None:
            raise NotFound(f"point {point_id!r} not found in collection {self.config.name!r}")
        return found

    def info(self) -> dict[str, Any]:
        segs, tails = self.parts()
        indexed = sum(len(s.store) for s in segs)
        unindexed = sum(len(t) for t in tails)
        token_rows = [p for p in [s.store for s in segs] + tails if isinstance(p, TokenRows)]
        dtypes = {p.dtype for p in token_rows if p.owner is not None} or {"float32"}
        return {
            **{k: getattr(self.config, k) for k in ("name", "dim", "metric", "index")},
            "multivector": self.config.multivector,
            "tokens": sum(p.tokens() for p in token_rows),
            "token_dtype": ("float16" if "float16" in dtypes else "float32")
            if self.multivector
            else None,
            "token_bytes": sum(p.token_bytes() for p in token_rows),
            "encoder": self.config.encoder,
            "created_at": self.config.created_at,
            "count": indexed + unindexed,
            "indexed_count": indexed,
            "unindexed_count": unindexed,
            "segments": len(segs),
            "status": "indexing" if self._seal_lock.locked() else "ready",
            "last_seq": self.wal.last_seq,
            **_footprint(dir_bytes(self.path), segs, tails, indexed + unindexed),
        }


def _footprint(on_disk: int, segs: list[Segment], tails: list[Any], count: int) -> dict[str, Any]:
    """Bytes on disk and in process memory, in total and per live point (memory-mapped rows
    are page cache, not counted as process memory: that is what makes binary codes small)."""
    in_memory = sum(s.nbytes() for s in segs) + sum(t.nbytes() for t in tails)
    per = max(count, 1)
    return {
        "bytes_on_disk": on_disk,
        "bytes_in_memory": in_memory,
        "bytes_per_vector": {
            "in_memory": round(in_memory / per, 1),
            "on_disk": round(on_disk / per, 1),
        },
    }
