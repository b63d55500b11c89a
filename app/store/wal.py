"""Write-ahead log: length-prefixed, checksummed records, fsynced before a write is acknowledged.

On disk ``wal/<first_seq:020d>.wal`` files, each a run of records::

    header  <I magic> <I body_len> <I crc32(seq + body)> <Q seq>     (20 bytes, little endian)
    body    <B kind> ...kind-specific bytes...

Upsert body: ``<I n> <I dim> ids[int64 n] vectors[float32 n*dim] <I meta_len> meta(JSON)``;
delete body: ``<I n> ids[int64 n] <I meta_len> meta(JSON)``; multi-vector upsert body (kind 3):
``<I n> <I dim> <Q N> ids[int64 n] offsets[int64 n+1] tokens[float32 N*dim] <I meta_len> meta``
(document ``i`` is token rows ``offsets[i]:offsets[i+1]``). ``meta`` carries the external keys
and payloads. A record that is short, has a bad magic, or fails its checksum ends the log: a torn
tail (crash mid-append) is truncated away; anything after it is quarantined, never replayed.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.store.fsutil import fsync_dir
from index.base import F32, I64

log = logging.getLogger(__name__)

MAGIC = 0x1A5EC0DE
HEADER = struct.Struct("<IIIQ")
UPSERT, DELETE, TOKENS_UPSERT = 1, 2, 3
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class Record:
    """One decoded log record."""

    seq: int
    kind: int
    ids: I64
    vectors: F32 | None
    meta: dict[str, Any]
    #: ``(n + 1,)`` token offsets of a multi-vector upsert; ``vectors`` is then ``(N, dim)``.
    offsets: I64 | None = None


def encode_upsert(ids: I64, vectors: F32, meta: dict[str, Any]) -> bytes:
    m = orjson.dumps(meta)
    n, dim = vectors.shape
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} vectors")
    return b"".join(
        (
            bytes([UPSERT]),
            _U32.pack(n),
            _U32.pack(dim),
            np.ascontiguousarray(ids, dtype="<i8").tobytes(),
            np.ascontiguousarray(vectors, dtype="<f4").tobytes(),
            _U32.pack(len(m)),
            m,
        )
    )


def encode_tokens_upsert(ids: I64, tokens: F32, offsets: I64, meta: dict[str, Any]) -> bytes:
    """A multi-vector upsert: document ``i`` of ``ids`` is ``tokens[offsets[i]:offsets[i+1]]``."""
    m = orjson.dumps(meta)
    ntok, dim = tokens.shape
    if len(offsets) != len(ids) + 1 or offsets[0] != 0 or offsets[-1] != ntok:
        raise ValueError(f"offsets do not cover {ntok} tokens of {len(ids)} documents")
    return b"".join(
        (
            bytes([TOKENS_UPSERT]),
            _U32.pack(len(ids)),
            _U32.pack(dim),
            _U64.pack(ntok),
            np.ascontiguousarray(ids, dtype="<i8").tobytes(),
            np.ascontiguousarray(offsets, dtype="<i8").tobytes(),
            np.ascontiguousarray(tokens, dtype="<f4").tobytes(),
            _U32.pack(len(m)),
            m,
        )
    )


def encode_delete(ids: I64, meta: dict[str, Any]) -> bytes:
    m = orjson.dumps(meta)
    return b"".join(
        (
            bytes([DELETE]),
            _U32.pack(len(ids)),
            np.ascontiguousarray(ids, dtype="<i8").tobytes(),
            _U32.pack(len(m)),
            m,
        )
    )


def decode(seq: int, body: bytes) -> Record:
    """Decode a checksummed body; raises ``ValueError`` on a malformed one."""
    kind, pos = body[0], 1
    (n,) = _U32.unpack_from(body, pos)
    pos += 4
    dim = rows = 0
    if kind in (UPSERT, TOKENS_UPSERT):
        (dim,) = _U32.unpack_from(body, pos)
        pos += 4
        rows = n
    elif kind != DELETE:
        raise ValueError(f"unknown record kind {kind}")
    if kind == TOKENS_UPSERT:
        (rows,) = _U64.unpack_from(body, pos)
        pos += 8
    ids = _array(body, pos, "<i8", n).astype(np.int64)
    pos += 8 * n
    offsets = None
    if kind == TOKENS_UPSERT:
        offsets = _array(body, pos, "<i8", n + 1).astype(np.int64)
        pos += 8 * (n + 1)
        if offsets[0] != 0 or offsets[-1] != rows or bool((np.diff(offsets) < 1).any()):
            raise ValueError("token offsets are inconsistent")
    vectors = None
    if kind != DELETE:
        vectors = _array(body, pos, "<f4", rows * dim).astype(np.float32).reshape(rows, dim)
        pos += 4 * rows * dim
    (mlen,) = _U32.unpack_from(body, pos)
    pos += 4
    if pos + mlen != len(body):
        raise ValueError("record length mismatch")
    meta = orjson.loads(body[pos:])
    if not isinstance(meta, dict):
        raise ValueError("record meta is not a JSON object")
    return Record(seq, kind, ids, vectors, meta, offsets)


def _array(body: bytes, pos: int, dtype: str, count: int) -> np.ndarray:
    """``count`` items of ``dtype`` at ``pos``. Checked first in Python integers: numpy raises
    ``OverflowError``, which replay does not expect, for a count beyond its size type."""
    if pos + count * np.dtype(dtype).itemsize > len(body):
        raise ValueError("record is shorter than its counts")
    return np.frombuffer(body, dtype=dtype, count=count, offset=pos)


def _scan(data: bytes, first_seq: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(offset_after, seq, body)`` for each valid record; stop at the first bad one.

    Records in a file carry consecutive sequence numbers from the one in its name, so a stale
    but intact record (an old copy after the tail) is rejected, not replayed.
    """
    pos, expect = 0, first_seq
    while pos + HEADER.size <= len(data):
        magic, blen, crc, seq = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + blen
        if magic != MAGIC or blen == 0 or end > len(data) or seq != expect:
            return
        body = data[pos + HEADER.size : end]
        if zlib.crc32(body, zlib.crc32(struct.pack("<Q", seq))) != crc:
            return
        yield end, seq, body
        pos, expect = end, seq + 1


class WriteAheadLog:
    """Appends records durably and replays them; one writer (the collection's write lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._fh: Any = None
        self.last_seq = 0

    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.wal"))

    def replay(self) -> Iterator[Record]:
        """Yield every intact record in order, repairing the log on the way.

        A torn or corrupt record truncates its file there; later files are renamed
        ``*.corrupt`` so the next start does not replay past the gap.
        """
        files = self.files()
        for i, f in enumerate(files):
            data = f.read_bytes()
            keep = 0
            for end, seq, body in _scan(data, int(f.stem)):
                try:
                    rec = decode(seq, body)
                except (ValueError, struct.error, orjson.JSONDecodeError):
                    log.error("wal %s: undecodable record seq=%d", f.name, seq)
                    break
                keep = end
                self.last_seq = max(self.last_seq, seq)
                yield rec
            if keep != len(data):
                self._cut(f, keep, len(data), files[i + 1 :])
                return

    def _cut(self, f: Path, keep: int, size: int, later: list[Path]) -> None:
        log.warning("wal %s: torn or corrupt tail at byte %d of %d; truncated", f.name, keep, size)
        with open(f, "r+b") as fh:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        for g in later:
            log.error("wal %s follows a corrupt record; quarantined as %s.corrupt", g.name, g.name)
            target = g.with_name(g.name + ".corrupt")
            if target.exists():  # never overwrite what an earlier start set aside
                target = g.with_name(f"{g.name}.{time.time_ns()}.corrupt")
            os.replace(g, target)
        fsync_dir(self.path)

    def append(self, body: bytes) -> int:
        """Write one record and fsync it; returns its sequence number."""
        seq = self.last_seq + 1
        if self._fh is None:
            self._open_file(seq)
        crc = zlib.crc32(body, zlib.crc32(struct.pack("<Q", seq)))
        header = HEADER.pack(MAGIC, len(body), crc, seq)
        self._fh.write(header + body)
        self._fh.flush()
        os.fdatasync(self._fh.fileno())
        self.last_seq = seq
        return seq

    def _open_file(self, first_seq: int) -> None:
        path = self.path / f"{first_seq:020d}.wal"
        self._fh = open(path, "ab")  # noqa: SIM115 - held open across appends
        fsync_dir(self.path)

    def roll(self) -> int:
        """Close the current file so later records start a new one; returns the last seq."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return self.last_seq

    def drop_through(self, seq: int) -> int:
        """Delete whole files whose records all have ``seq`` or lower; returns files removed."""
        files = self.files()
        removed = 0
        for f, nxt in zip(files, files[1:] + [None], strict=True):
            if nxt is None:
                break  # the newest file may still be appended to
            if int(nxt.stem) - 1 <= seq:
                f.unlink()
                removed += 1
        if removed:
            fsync_dir(self.path)
        return removed

    def close(self) -> None:
        self.roll()
