"""The build worker: a separate interpreter that writes one segment and exits.

Started by :mod:`app.jobs.build` as ``python -m app.jobs.worker '<json args>'``; reports
``{"progress": [phase, done, total]}`` lines and finally ``{"done": meta, "rss": bytes}`` on
stdout. Being a process of its own, it can be killed to cancel and cannot crash the server.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from app.store.fsutil import open_rows, write_array
from app.store.segments import finish_segment, stage_dir
from app.store.tokens import TokenBatch, read_token_chunks
from index.base import F32
from index.flat import FlatIndex
from index.spec import index_factory, lookup, parse_spec

CHUNK = 16384
#: Training rows for indexes that train (IVF): an even stride over the data, at most this many.
TRAIN_SAMPLE = 131_072


def emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def read_rows(path: Path, chunk: int) -> Iterator[F32]:
    """Stream an ``(n, d) float32`` .npy file in row chunks with plain reads: unlike a memory
    map, pages read this way do not count towards the worker's resident memory."""
    with open(path, "rb") as fh:
        n, d = open_rows(fh, path)
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            buf = np.empty((rows, d), dtype=np.float32)
            fh.readinto(buf.data.cast("B"))
            yield buf


def build(
    sources: list[str], keep: list[str], root: Path, seg_id: int, spec: str, dim: int
) -> dict[str, Any]:
    """Stream the live rows of ``sources`` (segment dirs; ``keep`` holds one boolean .npy per
    source marking them) into segment ``seg_id`` under ``root``. Dead rows are dropped here,
    so a build compacts."""
    parts = [
        (Path(d), np.load(Path(d) / "ids.npy"), np.load(k))
        for d, k in zip(sources, keep, strict=True)
    ]
    parts.sort(key=lambda p: int(p[1][0]) if len(p[1]) else 0)  # keep ids ascending
    n = sum(int(k.sum()) for _, _, k in parts)
    stage = stage_dir(root, seg_id)
    write_array(stage / "ids.npy", np.concatenate([ids[k] for _, ids, k in parts]))
    flat = lookup(parse_spec(spec).parts[0].name) is FlatIndex
    index = None if flat else index_factory(dim, spec)
    train = getattr(index, "train", None)
    if train is not None and n:
        emit({"progress": ["training", 0, 1]})
        stride = max(1, -(-n // TRAIN_SAMPLE))
        sample = np.concatenate(
            [
                # fancy indexing copies only the sampled rows: a strided view would keep
                # every whole chunk alive until the concatenation
                c[np.flatnonzero(k[i : i + len(c)])[::stride]]
                for d, _, k in parts
                for i, c in zip(
                    range(0, len(k), CHUNK * stride),
                    read_rows(d / "vectors.npy", CHUNK * stride),
                    strict=True,
                )
            ]
        )
        try:
            train(np.ascontiguousarray(sample), n_total=n)  # sizes IVF lists for all n rows
        except TypeError:
            train(np.ascontiguousarray(sample))
        del sample
        emit({"progress": ["training", 1, 1]})
    done = 0
    with open(stage / "vectors.npy", "wb") as out:
        header = {"descr": "<f4", "fortran_order": False, "shape": (n, dim)}
        np.lib.format.write_array_header_2_0(out, header)
        for d, ids, k in parts:
            start = 0
            for raw in read_rows(d / "vectors.npy", CHUNK):
                live = k[start : start + len(raw)]
                chunk = np.ascontiguousarray(raw[live])
                out.write(chunk.tobytes())
                if index is not None and len(chunk):
                    index.add(ids[start : start + len(raw)][live], chunk)
                start += len(raw)
                done += len(chunk)
                emit({"progress": ["adding", done, n]})
        out.flush()
        os.fsync(out.fileno())
    return finish_segment(root, seg_id, stage, spec, index, n, dim)


def peak_rss() -> int:
    """This process's peak resident bytes. ``VmHWM`` belongs to the current address space;
    ``ru_maxrss`` would also count the parent's peak from before the fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_tokens(
    sources: list[str], keep: list[str], root: Path, seg_id: int, spec: str, dim: int
) -> dict[str, Any]:
    """:func:`build` for multi-vector collections: stream the live documents' token sets
    (``tokens.npy`` + ``offsets.npy`` of each source) into a Muvera index and new files."""
    parts = [
        (Path(d), np.load(Path(d) / "ids.npy"), np.load(Path(d) / "offsets.npy"), np.load(k))
        for d, k in zip(sources, keep, strict=True)
    ]
    parts.sort(key=lambda p: int(p[1][0]) if len(p[1]) else 0)  # keep ids ascending
    n = sum(int(k.sum()) for *_, k in parts)
    sizes = np.concatenate([np.diff(off)[k] for _, _, off, k in parts] or [np.zeros(0, np.int64)])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    stage = stage_dir(root, seg_id)
    write_array(stage / "ids.npy", np.concatenate([ids[k] for _, ids, _, k in parts]))
    write_array(stage / "offsets.npy", offsets)
    index = index_factory(dim, spec)
    done = 0
    with open(stage / "tokens.npy", "wb") as out:
        header = {"descr": "<f4", "fortran_order": False, "shape": (int(offsets[-1]), dim)}
        np.lib.format.write_array_header_2_0(out, header)
        for d, ids, off, k in parts:
            for a, b, rows in read_token_chunks(d / "tokens.npy", off, CHUNK * 8):
                live = TokenBatch(rows, off[a : b + 1] - off[a]).select(k[a:b])
                out.write(np.ascontiguousarray(live.tokens).tobytes())
                if len(live):
                    index.add(ids[a:b][k[a:b]], live.docs())  # type: ignore[arg-type]
                done += len(live)
                emit({"progress": ["adding", done, n]})
        out.flush()
        os.fsync(out.fileno())
    return finish_segment(root, seg_id, stage, spec, index, n, dim, int(offsets[-1]))


def die_with_parent(parent: int | None) -> None:
    """Exit when the server that started us dies (``kill -9`` included): an orphaned worker
    would otherwise finish and rename its segment into a directory the restarted server has
    already cleaned and may reuse. Linux: the kernel sends SIGKILL (``PR_SET_PDEATHSIG``);
    elsewhere, and for a parent that died before that took effect, ``getppid`` is checked."""
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the poll below
            pass
    if os.getppid() != parent:
        os._exit(3)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str]) -> int:
    args = json.loads(argv[1])
    die_with_parent(args.get("parent"))
    run = build_tokens if args.get("multivector") else build
    meta = run(
        args["sources"], args["keep"], Path(args["root"]), args["seg_id"], args["spec"], args["dim"]
    )
    emit({"done": meta, "rss": peak_rss()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
