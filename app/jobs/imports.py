"""Bulk import jobs: NDJSON, ``.npy`` (+ ids / payloads files) and Parquet, streamed in batches
through the same durable upsert path as ``PUT points``.

Bad records do not abort the import: each is skipped and reported with its line (row) number,
the first :data:`MAX_ERRORS` in full, the rest counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from app.errors import InvalidInput
from app.filters import payload_problem
from app.jobs.runner import JobContext
from app.multivector import to_tokens
from index.base import F32

if TYPE_CHECKING:
    from app.collection import Collection
    from app.service import SearchService

MAX_ERRORS = 100
BATCH = 1000
FORMATS = ("ndjson", "npy", "parquet")

Row = tuple[int, Any, Any, Any]  # (line number, id, vector, payload)


def detect_format(path: str, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise InvalidInput(f"unknown import format {given!r} (known: {', '.join(FORMATS)})")
        return given
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = {"jsonl": "ndjson", "ndjson": "ndjson", "json": "ndjson", "npy": "npy"}.get(suffix)
    fmt = fmt or ("parquet" if suffix in ("parquet", "pq") else None)
    if fmt is None:
        raise InvalidInput(f"cannot tell the format of {path!r}; pass format={'|'.join(FORMATS)}")
    return fmt


@dataclass(frozen=True)
class Text:
    """A record that carries text for the collection's encoder instead of a vector."""

    value: str


@dataclass(frozen=True)
class Tokens:
    """A record that carries token vectors (``vectors``, multi-vector collections)."""

    value: Any


def _check_meta(pid: Any, payload: Any) -> str | None:
    if isinstance(pid, bool) or not isinstance(pid, int | str):
        return "id must be an unsigned integer or a string"
    if isinstance(pid, int) and not 0 <= pid < 2**63:
        return "integer ids must be between 0 and 2**63-1"
    if isinstance(pid, str) and not 1 <= len(pid) <= 256:
        return "string ids must have 1 to 256 characters"
    if payload is not None and not isinstance(payload, dict):
        return "payload must be an object"
    if payload is not None and (problem := payload_problem(payload)) is not None:
        return problem
    return None


def _check(pid: Any, vec: Any, payload: Any, dim: int) -> tuple[str | None, F32 | None]:
    """``(problem, None)`` when this record cannot be imported, else ``(None, vector)``."""
    if (problem := _check_meta(pid, payload)) is not None:
        return problem, None
    if not isinstance(vec, list | np.ndarray):
        return f"vector must be a list of {dim} numbers, got {type(vec).__name__}", None
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(vec, dtype=np.float32)
    except (TypeError, ValueError):
        return "vector must hold numbers only", None
    if arr.shape != (dim,):
        return f"vector must be a list of {dim} numbers, got {arr.size}", None
    if not np.isfinite(arr).all():
        return "vector contains NaN or infinity (or a value beyond float32)", None
    return None, arr


def _check_tokens(col: Collection, raw: Any) -> str | None:
    """Why this record's token vectors cannot go into ``col``, or None."""
    if not col.multivector:
        return "'vectors' needs a multi-vector collection; send 'vector'"
    if not isinstance(raw, Tokens):
        return "a multi-vector collection needs 'vectors' (a list of token vectors) or 'text'"
    if not isinstance(raw.value, list) or not all(isinstance(r, list) for r in raw.value):
        return "vectors must be a list of token vectors (lists of numbers)"
    try:
        to_tokens([raw.value], col.dim, False, col.config.name, "record")
    except (InvalidInput, TypeError, ValueError) as exc:
        return str(exc).replace("record[0].", "")
    return None


def _ndjson(path: Path) -> tuple[int, Iterator[Row | tuple[int, str]]]:
    with open(path, "rb") as fh:
        total = sum(1 for line in fh if line.strip())

    def rows() -> Iterator[Row | tuple[int, str]]:
        with open(path, "rb") as fh:
            for no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    rec = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield no, f"invalid JSON ({exc})"
                    continue
                if not isinstance(rec, dict) or "id" not in rec:
                    yield no, "each line must be an object with 'id' and 'vector' or 'text'"
                    continue
                if "vector" not in rec and isinstance(rec.get("text"), str):
                    yield no, rec["id"], Text(rec["text"]), rec.get("payload")
                    continue
                if "vector" not in rec and "vectors" in rec:
                    yield no, rec["id"], Tokens(rec["vectors"]), rec.get("payload")
                    continue
                if "vector" not in rec:
                    yield no, "each line must be an object with 'id' and 'vector' or 'text'"
                    continue
                yield no, rec["id"], rec["vector"], rec.get("payload")

    return total, rows()


def _npy(path: Path, params: dict[str, Any]) -> tuple[int, Iterator[Row | tuple[int, str]]]:
    x = np.load(path, mmap_mode="r")
    if x.ndim != 2:
        raise InvalidInput(f"{path.name}: expected a 2-d array of vectors, got shape {x.shape}")
    ids = np.load(params["ids_path"]) if params.get("ids_path") else np.arange(len(x))
    if len(ids) != len(x):
        raise InvalidInput(f"ids file has {len(ids)} rows, vectors file has {len(x)}")
    payloads = params.get("payloads_path")

    def rows() -> Iterator[Row | tuple[int, str]]:
        fh = open(payloads, "rb") if payloads else None  # noqa: SIM115 - closed below
        try:
            for i in range(len(x)):
                payload = json.loads(fh.readline() or b"null") if fh is not None else None
                pid = ids[i].item()
                yield i + 1, pid, np.asarray(x[i], dtype=np.float32), payload
        finally:
            if fh is not None:
                fh.close()

    return len(x), rows()


def _parquet(path: Path) -> tuple[int, Iterator[Row | tuple[int, str]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(
            "Parquet import needs pyarrow: pip install 'innerspace[parquet]'"
        ) from None
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    if not {"id", "vector"} <= names:
        raise InvalidInput(
            f"{path.name}: Parquet needs columns 'id' and 'vector', has {sorted(names)}"
        )

    def rows() -> Iterator[Row | tuple[int, str]]:
        no = 0
        cols = ["id", "vector"] + (["payload"] if "payload" in names else [])
        for batch in pf.iter_batches(batch_size=BATCH, columns=cols):
            data = batch.to_pydict()
            for j in range(batch.num_rows):
                no += 1
                payload = data["payload"][j] if "payload" in data else None
                if isinstance(payload, str):
                    try:
                        payload = json.loads(payload)
                    except ValueError:
                        yield no, "payload column holds a string that is not JSON"
                        continue
                yield no, data["id"][j], data["vector"][j], payload

    return pf.metadata.num_rows, rows()


def open_source(params: dict[str, Any]) -> tuple[int, Iterator[Row | tuple[int, str]]]:
    path = Path(params["path"])
    fmt = detect_format(str(path), params.get("format"))
    if fmt == "ndjson":
        return _ndjson(path)
    if fmt == "npy":
        return _npy(path, params)
    return _parquet(path)


def run(ctx: JobContext, service: SearchService) -> dict[str, Any]:
    """Job handler for ``kind="import"``."""
    from app.service import PointWrite  # the service imports this module

    params = ctx.job.params
    col = service.collection(ctx.job.collection)
    total, rows = open_source(params)
    errors: list[dict[str, Any]] = []
    failed = imported = seen = 0
    seq = 0
    batch: dict[str, Any] = {}
    truncated = 0

    def flush() -> None:
        nonlocal imported, seq, truncated
        if batch:
            done = service.upsert(ctx.job.collection, list(batch.values()))
            seq, truncated = done["seq"], truncated + done["truncated"]
            imported += len(batch)
            batch.clear()

    ctx.progress("importing", 0, total)
    for row in rows:
        seen += 1
        problem: str | None
        write: Any = None
        if len(row) == 2:
            problem = row[1]
        else:
            _, pid, raw, payload = row
            if isinstance(raw, Text):
                problem = _check_meta(pid, payload)
                if problem is None and col.config.encoder is None:
                    problem = "text needs a collection with an encoder"
                write = PointWrite(pid, None, raw.value, payload)
            elif isinstance(raw, Tokens) or col.multivector:
                problem = _check_meta(pid, payload) or _check_tokens(col, raw)
                write = PointWrite(pid, None, None, payload, getattr(raw, "value", None))
            else:
                problem, vec = _check(pid, raw, payload, col.dim)
                write = PointWrite(pid, vec, None, payload)
        if problem is not None or write is None:
            failed += 1
            if len(errors) < MAX_ERRORS:
                errors.append({"line": row[0], "error": problem})
        else:
            key = json.dumps(write.id)
            if key in batch:  # a repeated id: the later line wins, in order
                flush()
            batch[key] = write
            if len(batch) >= BATCH:
                flush()
        if seen % BATCH == 0:
            ctx.progress("importing", seen, total)
            ctx.check()
    flush()
    ctx.progress("importing", seen, total)
    if params.get("delete_after"):
        Path(params["path"]).unlink(missing_ok=True)
    result = {"imported": imported, "failed": failed, "errors": errors, "seq": seq}
    return result | {"truncated": truncated}
