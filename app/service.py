"""The service: the catalog plus every open collection; what the HTTP routes call."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.collection import Collection
from app.config import Settings
from app.dense import WireVector
from app.encoding import Encoding, Kind
from app.errors import AlreadyExists, InvalidInput, NotFound, Unavailable
from app.filters import Filter
from app.guard import check_build
from app.jobs import HANDLERS, Job, JobRunner, JobTable
from app.jobs.imports import detect_format
from app.multivector import canonical_spec, default_spec
from app.pipeline.rerank import check_spec, rerank_of, search_reranked
from app.pipeline.service import Pipelines
from app.search import Outcome, Query, search
from app.store import snapshots as snapmod
from app.store.catalog import Catalog, CollectionConfig
from app.store.fsutil import fsync_dir, remove_tree
from index.base import F32

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Snapshot ids are their jobs' ids (16 hex digits); anything else is no snapshot.
SNAP_ID = re.compile(r"[0-9a-f]{16}")


@dataclass
class PointWrite:
    """One point of an upsert: a vector (token vectors, multi-vector), or a text to encode."""

    id: int | str
    vector: WireVector | F32 | None = None
    text: str | None = None
    payload: dict[str, Any] | None = None
    vectors: list[list[float]] | F32 | None = None


def _vector_fields(col: Collection, vec: F32 | None) -> dict[str, Any]:
    """``vector`` (dense) or ``vectors`` (multi-vector) of a point, for a response."""
    if vec is None:
        return {}
    return {"vectors" if col.multivector else "vector": vec.tolist()}


class SearchService:
    """Owns the data directory. ``open()`` loads every collection (may take a while)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog(Path(settings.data_dir))
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()  # guards the dict and create/delete
        self.encoding = Encoding(settings.encode_concurrency)
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.jobs = JobRunner(
            self,
            JobTable(Path(settings.data_dir) / "catalog.sqlite"),
            HANDLERS,
            workers=settings.job_workers,
        )
        self.pipelines = Pipelines(self)

    def open(self) -> None:
        """Clean orphans, load every collection, then mark the service ready."""
        try:
            for orphan in self.catalog.orphans():
                log.warning("removing orphan collection directory %s", orphan)
                remove_tree(orphan)
            for config in self.catalog.configs():
                path = self.catalog.path_of(config.name)
                self._collections[config.name] = Collection(path, config, self.settings)
            self.ready.set()
            self.jobs.start()
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("loading collections failed")
            raise

    def close(self) -> None:
        self.jobs.stop()
        self.pipelines.close()
        with self._lock:
            for col in self._collections.values():
                col.close()
            self._collections.clear()
            self.catalog.close()

    # ---- collections ----------------------------------------------------------------------

    def _require_ready(self) -> None:
        if not self.ready.is_set():
            raise Unavailable("the service is still loading its collections; retry shortly")

    def collection(self, name: str) -> Collection:
        self._require_ready()
        col = self._collections.get(name)
        if col is None:
            raise NotFound(f"collection {name!r} not found")
        return col

    def list_collections(self) -> list[dict[str, Any]]:
        self._require_ready()
        return [c.info() for c in list(self._collections.values())]

    def create_collection(
        self,
        name: str,
        dim: int | None,
        metric: str = "ip",
        index: str | None = None,
        multivector: bool = False,
        encoder: str | None = None,
    ) -> dict[str, Any]:
        if not NAME.fullmatch(name):
            raise InvalidInput(
                f"bad collection name {name!r}: use 1-64 letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
        fingerprint = None
        if encoder is not None:
            enc = self.encoding.load(encoder)
            if enc.multivector != multivector:
                want = "true" if enc.multivector else "false"
                raise InvalidInput(f'encoder {enc.spec!r} needs "multivector": {want}')
            if dim is not None and dim != enc.dim:
                raise InvalidInput(f"dim {dim} does not match encoder {enc.spec!r} (dim {enc.dim})")
            dim, encoder, fingerprint = enc.dim, enc.spec, enc.fingerprint
        if dim is None:
            raise InvalidInput("give 'dim', or an 'encoder' to take it from")
        if not 1 <= dim <= self.settings.max_dim:
            raise InvalidInput(f"dim must be between 1 and {self.settings.max_dim}, got {dim}")
        if metric not in ("ip", "cosine"):
            raise InvalidInput(f"metric must be 'ip' or 'cosine', got {metric!r}")
        if index is None:
            index = default_spec(dim) if multivector else "Flat"
        spec = canonical_spec(dim, index, multivector, name)
        check_spec(self.pipelines.heads, dim, spec)
        config = CollectionConfig(
            name,
            dim,
            "cosine" if metric == "cosine" else "ip",
            spec,
            multivector,
            encoder,
            encoder_fingerprint=fingerprint,
        )
        with self._lock:
            if name in self._collections:
                raise AlreadyExists(f"collection {name!r} already exists")
            self._require_ready()
            path = self.catalog.path_of(name)
            remove_tree(path)  # a stale orphan from a crash between dir and row
            path.mkdir()
            fsync_dir(path.parent)
            col = Collection(path, config, self.settings)
            if not self.catalog.add(config):
                col.close()
                remove_tree(path)
                raise AlreadyExists(f"collection {name!r} already exists")
            self._collections[name] = col
        return col.info()

    def delete_collection(self, name: str) -> None:
        with self._lock:
            col = self.collection(name)
            self.catalog.remove(name)
            del self._collections[name]
        col.close()
        remove_tree(col.path)
        self.pipelines.sampler.forget(name)

    # ---- points and search ----------------------------------------------------------------

    def search(self, name: str, queries: list[Query]) -> list[Outcome]:
        if len(queries) > self.settings.max_search_batch:
            raise InvalidInput(
                f"at most {self.settings.max_search_batch} searches per batch, got {len(queries)}"
            )
        col = self.collection(name)
        texts = [i for i, q in enumerate(queries) if q.text is not None]
        for i in texts:
            q = queries[i]
            if q.vector is not None or q.vectors is not None or q.point_id is not None:
                raise InvalidInput(f"searches[{i}]: give exactly one of 'vector', 'id', 'text'")
        for spec in {queries[i].encoder for i in texts} - {None}:
            self.encoding.for_collection(col.config, spec)  # every named encoder: the collection's
        max_k = self.settings.max_k
        reranks = [
            rerank_of(col, q, f"searches[{i}]", max_k, self.pipelines)
            for i, q in enumerate(queries)
        ]
        out: dict[int, Outcome] = {
            i: search_reranked(self.pipelines, col, queries[i], r, f"searches[{i}]")
            for i, r in enumerate(reranks)
            if r is not None
        }
        plain = [i for i in range(len(queries)) if i not in out]
        if not plain:
            return [out[i] for i in range(len(queries))]
        for i in plain:  # "rerank": "none" is spent
            queries[i].params.pop("rerank", None)
        texts = [i for i in plain if queries[i].text is not None]
        if texts:
            vectors = self.encode_queries(name, [queries[i].text or "" for i in texts], None)
            for i, v in zip(texts, vectors, strict=True):
                if col.multivector:
                    queries[i] = replace(queries[i], vectors=v, text=None)
                else:
                    queries[i] = replace(queries[i], vector=v, text=None)
        rest = [queries[i] for i in plain]
        outcomes = search(col, rest, max_k)
        if self.pipelines.sampler.rate > 0 and not col.multivector:
            self.pipelines.sample_searches(col, rest, outcomes)
        out.update(zip(plain, outcomes, strict=True))
        return [out[i] for i in range(len(queries))]

    def check_batch(self, n: int) -> None:
        if n > self.settings.max_batch_points:
            raise InvalidInput(
                f"at most {self.settings.max_batch_points} points per request, got {n}; "
                "split the batch or use the import job"
            )

    def upsert(self, name: str, points: list[PointWrite]) -> dict[str, int]:
        """Insert or replace points; those with ``text`` are encoded with the collection's
        encoder first (the text is kept in the payload under ``text`` unless that is taken)."""
        self.check_batch(len(points))
        col = self.collection(name)
        given, wrong = ("vectors", "vector") if col.multivector else ("vector", "vectors")
        for i, p in enumerate(points):
            if getattr(p, wrong) is not None:
                kind = "multi-vector" if col.multivector else "dense"
                raise InvalidInput(
                    f"points[{i}].{wrong}: collection {name!r} is {kind}; send '{given}' or 'text'",
                    {"index": i},
                )
        vectors: list[Any] = [getattr(p, given) for p in points]
        payloads = [p.payload for p in points]
        texts = [i for i, p in enumerate(points) if p.text is not None]
        truncated = 0
        if texts:
            encoder = self.encoding.for_collection(col.config)
            enc = self.encoding.encode(encoder, [points[i].text or "" for i in texts], "document")
            truncated = enc.truncated
            for j, i in enumerate(texts):
                vectors[i] = enc.vectors[j]
                payload = dict(payloads[i] or {})
                payload.setdefault("text", points[i].text)
                payloads[i] = payload
        n, seq = col.upsert([p.id for p in points], vectors, payloads)
        return {"upserted": n, "seq": seq, "truncated": truncated}

    def encode(self, texts: list[str], spec: str | None, kind: Kind) -> dict[str, Any]:
        """``POST /encode``: vectors for clients that store them elsewhere."""
        self.check_batch(len(texts))
        encoder = self.encoding.load(spec or self.settings.default_encoder)
        enc = self.encoding.encode(encoder, texts, kind)
        if isinstance(enc.vectors, list):
            vectors: list[Any] = [v.astype("float32").tolist() for v in enc.vectors]
        else:
            vectors = enc.vectors.tolist()
        return {
            "encoder": encoder.spec,
            "dim": encoder.dim,
            "multivector": encoder.multivector,
            "vectors": vectors,
            "truncated": enc.truncated,
        }

    def encode_queries(self, name: str, texts: list[str], asked: str | None) -> list[Any]:
        """Query vectors (lists), or ``(t, dim) float32`` token arrays (multi-vector)."""
        col = self.collection(name)
        encoder = self.encoding.for_collection(col.config, asked)
        enc = self.encoding.encode(encoder, texts, "query")
        if isinstance(enc.vectors, list):
            return [v.astype("float32") for v in enc.vectors]
        return [list(map(float, v)) for v in enc.vectors]

    def delete(self, name: str, ids: list[int | str] | None, flt: Filter | None) -> dict[str, int]:
        if ids is not None:
            self.check_batch(len(ids))
        n, seq = self.collection(name).delete(ids, flt)
        return {"deleted": n, "seq": seq}

    def get_point(self, name: str, point_id: str, with_vector: bool) -> dict[str, Any]:
        """``point_id`` comes from a URL: all digits means an integer id, if one exists."""
        col = self.collection(name)
        candidates: list[int | str] = [point_id]
        if point_id.isdigit():
            candidates.insert(0, int(point_id))
        for pid in candidates:
            found = col.get(pid)
            if found is not None:
                iid, payload = found
                vec = col.vector_of(iid) if with_vector else None
                return {"id": pid, "payload": payload, **_vector_fields(col, vec)}
        raise NotFound(f"point {point_id!r} not found in collection {name!r}")

    def scroll(
        self,
        name: str,
        limit: int,
        cursor: str | None,
        flt: Filter | None,
        with_payload: bool,
        with_vector: bool,
    ) -> dict[str, Any]:
        if limit > self.settings.max_scroll_limit:
            raise InvalidInput(f"limit must be at most {self.settings.max_scroll_limit}")
        col = self.collection(name)
        after = None
        if cursor is not None:
            try:
                after = base64.urlsafe_b64decode(cursor.encode()).decode()
                json.loads(after)
            except (ValueError, UnicodeDecodeError):
                raise InvalidInput("cursor is not one this service returned") from None
        rows = col.points.scroll(after, limit + 1, flt)
        more = len(rows) > limit
        rows = rows[:limit]
        points = []
        for key, iid, payload in rows:
            vec = col.vector_of(iid) if with_vector else None
            points.append(
                {
                    "id": json.loads(key),
                    "payload": payload if with_payload else None,
                    **_vector_fields(col, vec),
                }
            )
        nxt = base64.urlsafe_b64encode(rows[-1][0].encode()).decode() if more else None
        return {"points": points, "next_cursor": nxt}

    def count(self, name: str, flt: Filter | None) -> int:
        return self.collection(name).points.count(flt)

    # ---- jobs -----------------------------------------------------------------------------

    def build_index(self, name: str, spec: str) -> Job:
        """Queue a (re)build of ``name``'s index under ``spec``."""
        col = self.collection(name)
        canonical = canonical_spec(col.dim, spec, col.multivector, name)
        check_spec(self.pipelines.heads, col.dim, canonical)
        check_build(self, name, canonical)  # 507 past INNERSPACE_MEMORY_BUDGET_BYTES
        return self.jobs.submit("build", name, {"spec": canonical})

    def compact(self, name: str) -> Job:
        """Queue a compaction: rewrite the segments without their dead rows."""
        self.collection(name)
        return self.jobs.submit("compact", name, {})

    def import_file(
        self,
        name: str,
        path: str,
        fmt: str | None = None,
        ids_path: str | None = None,
        payloads_path: str | None = None,
        delete_after: bool = False,
    ) -> Job:
        """Queue an import of a server-side file (NDJSON, .npy or Parquet)."""
        self.collection(name)
        for label, p in (("path", path), ("ids_path", ids_path), ("payloads_path", payloads_path)):
            if p is not None and not Path(p).is_file():
                raise InvalidInput(f"{label} {p!r} is not a readable file on the server")
        params = {
            "path": str(Path(path).resolve()),
            "format": detect_format(path, fmt),
            "ids_path": ids_path,
            "payloads_path": payloads_path,
            "delete_after": delete_after,
        }
        return self.jobs.submit("import", name, params)

    # ---- snapshots ------------------------------------------------------------------------

    def snapshot(self, name: str) -> Job:
        """Queue a consistent point-in-time snapshot of ``name`` (:mod:`app.store.snapshots`)."""
        self.collection(name)
        return self.jobs.submit("snapshot", name, {})

    def snapshots_dir(self, name: str, snap_id: str | None = None) -> Path:
        """The snapshots directory of ``name``; 404 for a name (or a ``snap_id``) that cannot
        be one, before any path is built from it (``..``, too long for the file system)."""
        if not NAME.fullmatch(name):
            raise NotFound(f"no snapshots for collection {name!r}: not a collection name")
        if snap_id is not None and not SNAP_ID.fullmatch(snap_id):
            raise NotFound(f"snapshot {snap_id!r} of collection {name!r} not found")
        return snapmod.snapshots_root(Path(self.settings.data_dir), name)

    def list_snapshots(self, name: str) -> list[dict[str, Any]]:
        self._require_ready()
        return snapmod.list_snapshots(self.snapshots_dir(name))

    def restore_snapshot(
        self, name: str, snap_id: str, target: str | None = None, replace_existing: bool = False
    ) -> dict[str, Any]:
        """Restore snapshot ``snap_id`` of ``name`` as collection ``target`` (default ``name``)
        and load it; 409 when ``target`` exists (without ``replace_existing``) or the snapshot
        fails its checksums, in which case nothing is created."""
        self._require_ready()
        target = target or name
        if not NAME.fullmatch(target):
            raise InvalidInput(f"bad collection name {target!r}")
        root = self.snapshots_dir(name, snap_id)
        meta = snapmod.load(root, snap_id)
        if target in self._collections and not replace_existing:
            raise AlreadyExists(
                f'collection {target!r} already exists; pass "replace": true to overwrite it'
            )
        snapmod.verify(root, meta)
        config = replace(CollectionConfig(**meta["config"]), name=target)
        stage = self.catalog.collections_dir / f".restore-{target}-{uuid.uuid4().hex[:8]}"
        try:
            snapmod.stage_restore(root, meta, stage)
        except BaseException:
            remove_tree(stage)
            raise
        with self._lock:
            old = self._collections.get(target)
            if old is not None:
                if not replace_existing:
                    remove_tree(stage)
                    raise AlreadyExists(f"collection {target!r} already exists")
                self.catalog.remove(target)
                del self._collections[target]
                old.close()
                remove_tree(old.path)
            path = self.catalog.path_of(target)
            remove_tree(path)  # a stale orphan
            stage.rename(path)
            fsync_dir(path.parent)
            col = Collection(path, config, self.settings)
            self.catalog.add(col.config)
            self._collections[target] = col
        return col.info()

    def delete_snapshot(self, name: str, snap_id: str) -> None:
        """Delete snapshot ``snap_id`` of ``name`` durably (the collection need not exist);
        404 when unknown, 409 while its job is queued or running."""
        self._require_ready()
        root = self.snapshots_dir(name, snap_id)  # never a path outside the snapshots directory
        try:
            job = self.jobs.get(snap_id)
            busy = job.kind == "snapshot" and job.collection == name and not job.final
            writing = job.state if busy else None
        except NotFound:
            writing = None
        snapmod.delete(root, snap_id, writing)

    def upload_path(self, name: str, fmt: str) -> Path:
        """Where an uploaded import file for ``name`` is spooled before its job reads it."""
        self.collection(name)
        detect_format("upload", fmt)
        uploads = Path(self.settings.data_dir) / "uploads"
        uploads.mkdir(exist_ok=True)
        return uploads / f"{name}-{uuid.uuid4().hex[:12]}.{fmt}"
