"""Crash-safe file primitives: every write is temp file + fsync + rename + fsync(dir)."""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt


def fsync_dir(path: Path) -> None:
    """Make a rename or file creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: Path) -> Iterator[IO[bytes]]:
    """Write ``path`` so readers see the old or the new bytes, never a mix or a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path) as fh:
        fh.write(data)


def write_array(path: Path, array: npt.NDArray[np.generic]) -> int:
    """Write an ``.npy`` file and fsync it; returns its crc32 (no rename: the caller's
    directory is itself staged and renamed)."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
        fh.flush()
        os.fsync(fh.fileno())
    return file_crc32(path)


def file_crc32(path: Path, chunk: int = 1 << 22) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def dir_bytes(path: Path) -> int:
    """Bytes of all regular files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass  # removed while we walked (WAL truncation, segment swap)
    return total


def remove_tree(path: Path) -> None:
    """Delete a directory by first renaming it aside, so a crash never leaves half a tree
    under its real name."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{id(path)}")
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def open_rows(fh: IO[bytes], path: Path) -> tuple[int, int]:
    """Read the header of the ``.npy`` file open as ``fh``, which must hold a C-order
    ``(n, d) float32`` array, and return ``(n, d)``; ``fh`` is left at the first row, so rows
    can be read in chunks with plain reads (pages read that way, unlike a memory map's, do not
    count towards the reader's resident memory)."""
    major, _ = np.lib.format.read_magic(fh)
    read_header = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read_header(fh)
    if fortran or dtype != np.float32 or len(shape) != 2:
        raise ValueError(f"{path}: expected a C-order (n, d) float32 array")
    return int(shape[0]), int(shape[1])
