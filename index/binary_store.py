"""The float rows :mod:`index.binary` re-scores against: ``float32``, ``float16`` or vector-wise
``int8`` (+ a per-row scale), in RAM or memory-mapped from the saved ``store.npy``.

:meth:`FloatStore.reserve` sizes the array once per ``add``: growing it chunk by chunk (1.5x
each time) copied the rows about three times and took 6.7 of the 14.3 s a 1M x 384 ``add`` took
(``index/BINARY_NOTES.md``, "Encoding rate").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from index.base import F32, I64
from index.codes import to_int8

FLOAT16_MAX = 65504.0


def write_npy(path: Path, array: np.ndarray[Any, Any]) -> None:
    """``np.save`` to a temporary name, then rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
    os.replace(tmp, path)


class FloatStore:
    """Rows for exact re-scoring, ``float32``/``float16``/``int8`` (+ per-row scale)."""

    def __init__(self, dim: int, dtype: str, mmap: bool) -> None:
        self.dim, self.dtype, self.mmap = dim, np.dtype(dtype), mmap
        self._x: np.ndarray[Any, Any] = np.empty((0, dim), dtype=self.dtype)
        self._scale: F32 = np.empty(0, dtype=np.float32)
        self._n = 0
        self.mapped = False  # True while _x is a read-only map of a saved file

    def check(self, x: F32) -> None:
        if self.dtype == np.float16 and len(x) and float(np.abs(x).max()) > FLOAT16_MAX:
            raise ValueError("store_dtype=float16 cannot hold values beyond +-65504")

    def reserve(self, m: int) -> None:
        """Room for ``m`` more rows (a mapped store is copied back into RAM)."""
        n = self._n
        if self.mapped or n + m > len(self._x):
            cap = n + m if self.mapped else max(n + m, int(len(self._x) * 1.5) + 1024)
            grown = np.empty((cap, self.dim), dtype=self.dtype)
            grown[:n] = self._x[:n]
            self._x, self.mapped = grown, False

    def append(self, x: F32) -> None:
        n, m = self._n, len(x)
        self.reserve(m)
        if self.dtype == np.int8:
            rows, scale = to_int8(x)
            self._x[n : n + m] = rows
            self._scale = np.concatenate([self._scale[:n], scale])
        else:
            self._x[n : n + m] = x  # casts in place: no temporary copy
        self._n = n + m

    def gather(self, rows: I64 | None = None) -> F32:
        """Rows as float32 (``None``: all of them, a view when stored as float32)."""
        x = self._x[: self._n] if rows is None else self._x[rows]
        if self.dtype == np.int8:
            scale = self._scale[: self._n] if rows is None else self._scale[rows]
            return x.astype(np.float32) * scale[:, None]
        out: F32 = np.asarray(x, dtype=np.float32)
        return out

    def row_bytes(self) -> float:
        return float(self.dim * self.dtype.itemsize + (4 if self.dtype == np.int8 else 0))

    def ram_bytes(self) -> int:
        data = 0 if self.mapped else self._x.nbytes
        return int(data + self._scale.nbytes)

    def save(self, path: Path) -> None:
        write_npy(path / "store.npy", self._x[: self._n])
        if self.dtype == np.int8:
            write_npy(path / "store_scale.npy", self._scale[: self._n])
        if self.mmap:
            self._x, self.mapped = np.load(path / "store.npy", mmap_mode="r"), True

    def load(self, path: Path) -> None:
        self._x = np.load(path / "store.npy", mmap_mode="r" if self.mmap else None)
        self.mapped = self.mmap
        if self.dtype == np.int8:
            self._scale = np.load(path / "store_scale.npy")
        self._n = len(self._x)

    def __len__(self) -> int:
        return self._n
