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
from pathlib import Path
from typing import Any

import numpy as np

from app.store.fsutil import write_array
from app.store.segments import finish_segment, stage_dir
from index.flat import FlatIndex
from index.spec import index_factory, lookup, parse_spec

CHUNK = 16384
TRAIN_SAMPLE = 262_144


def emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def build(sources: list[str], root: Path, seg_id: int, spec: str, dim: int) -> dict[str, Any]:
    """Stream ``sources`` (segment dirs, memory-mapped) into segment ``seg_id`` under ``root``."""
    parts = []
    for d in sources:
        ids = np.load(Path(d) / "ids.npy")
        parts.append((ids, np.load(Path(d) / "vectors.npy", mmap_mode="r")))
    parts.sort(key=lambda p: int(p[0][0]) if len(p[0]) else 0)  # keep ids ascending
    n = sum(len(p[0]) for p in parts)
    stage = stage_dir(root, seg_id)
    write_array(stage / "ids.npy", np.concatenate([p[0] for p in parts]))
    out = np.lib.format.open_memmap(
        stage / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim)
    )
    flat = lookup(parse_spec(spec).parts[0].name) is FlatIndex
    index = None if flat else index_factory(dim, spec)
    train = getattr(index, "train", None)
    if train is not None and n:
        emit({"progress": ["training", 0, 1]})
        rows = np.sort(np.random.default_rng(0).choice(n, size=min(n, TRAIN_SAMPLE), replace=False))
        bounds = np.cumsum([0] + [len(p[0]) for p in parts])
        sample = np.concatenate(
            [
                np.asarray(p[1][rows[(rows >= lo) & (rows < hi)] - lo])
                for p, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True)
            ]
        )
        train(np.ascontiguousarray(sample, dtype=np.float32))
        emit({"progress": ["training", 1, 1]})
    done = 0
    for ids, vecs in parts:
        for start in range(0, len(ids), CHUNK):
            chunk = np.ascontiguousarray(vecs[start : start + CHUNK], dtype=np.float32)
            out[done : done + len(chunk)] = chunk
            if index is not None:
                index.add(ids[start : start + CHUNK], chunk)
            done += len(chunk)
            emit({"progress": ["adding", done, n]})
    out.flush()
    del out
    fd = os.open(stage / "vectors.npy", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return finish_segment(root, seg_id, stage, spec, index, n, dim)


def main(argv: list[str]) -> int:
    args = json.loads(argv[1])
    meta = build(args["sources"], Path(args["root"]), args["seg_id"], args["spec"], args["dim"])
    emit({"done": meta, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
