"""Which rows of an index were removed: the tombstones of :class:`index.hnsw.FaissIndex`, and
so of :mod:`index.binary`, :mod:`index.hnsw` and :mod:`index.ivf`.

Sorted ``int64`` row numbers while at most ``1 / DENSE`` of the rows are dead (8 bytes per dead
row, nothing per live one), a packed bitmap (one bit per row) beyond that: resident memory is
``min(8 * dead, n / 8)`` bytes, at most 0.125 B per row. The earlier ``(n,) bool`` flag column
cost 1 B per row from the first removal on, 1/64 of a 1-bit RaBitQ index at d = 384. Compaction
(rebuilding without the dead rows) reclaims either form.

A :class:`Tombstones` is never changed in place: a removal builds a new one that the index swaps
in, so a concurrent search sees the old set or the new one, never half of it (removals
themselves are serialised by the caller: the collection's writer lock). Searches build the
``(n,)`` masks they need from it per call (transient memory).

On disk the removed rows are ``dead_rows.npy`` (sorted ``int64``); directories saved before it
hold ``dead.npy`` flags ``(n,) bool``, which :func:`load_dead_rows` still reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from index.base import I64, Bool

U8 = np.ndarray[Any, np.dtype[np.uint8]]

#: The bitmap replaces the sorted rows once more than ``1 / DENSE`` of the rows are dead: at
#: 64 both cost n / 8 bytes.
DENSE = 64
#: The removed rows on disk (sorted ``int64``), and the older ``(n,) bool`` flags file.
DEAD_ROWS, DEAD_FLAGS = "dead_rows.npy", "dead.npy"


class Tombstones:
    """Removed rows: ``rows`` (sorted ``int64``) or ``bits`` (bit ``r & 7`` of byte ``r >> 3``
    is row ``r``; rows past the bitmap are live), and their ``count``."""

    __slots__ = ("bits", "count", "rows")

    def __init__(self, rows: I64 | None = None, bits: U8 | None = None, count: int = 0) -> None:
        self.rows = rows if rows is not None or bits is not None else np.empty(0, np.int64)
        self.bits, self.count = bits, count

    @classmethod
    def of(cls, dead: I64, n: int) -> Tombstones:
        """The set of ``dead (m,) int64`` rows (sorted, unique, below ``n``), the cheaper form."""
        if len(dead) * DENSE <= n:
            return cls(dead, None, len(dead))
        return cls(None, _with_bits(None, dead, n), len(dead))

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes if self.bits is not None else self._rows.nbytes)

    @property
    def _rows(self) -> I64:
        assert self.rows is not None
        return self.rows

    def sorted_rows(self) -> I64:
        """``(count,) int64`` removed rows, ascending."""
        if self.bits is None:
            return self._rows
        flags = np.unpackbits(self.bits, bitorder="little")
        out: I64 = np.flatnonzero(flags).astype(np.int64)
        return out

    def alive(self, n: int) -> Bool:
        """``(n,) bool``, True where the row was not removed (a fresh array)."""
        if self.bits is not None:
            out: Bool = np.unpackbits(self.bits, count=n, bitorder="little") == 0
            return out
        alive = np.ones(n, dtype=bool)
        alive[self._rows] = False
        return alive

    def is_dead(self, rows: I64, n: int) -> Bool:
        """``(m,) bool`` for ``rows (m,) int64`` of an index of ``n`` rows."""
        if self.count == 0 or len(rows) == 0:
            return np.zeros(len(rows), dtype=bool)
        if self.bits is not None:
            byte = rows >> 3
            inside = byte < len(self.bits)
            out = np.zeros(len(rows), dtype=bool)
            out[inside] = ((self.bits[byte[inside]] >> (rows[inside] & 7)) & 1) == 1
            return out
        if len(rows) * 64 > n:
            # Many rows: the (n,) mask (a memset and two scatters) beats m binary searches,
            # which took ~10 ms for 250k rows against 100k dead at 1M rows.
            dead: Bool = ~self.alive(n)[rows]
            return dead
        pos = np.minimum(np.searchsorted(self._rows, rows), self.count - 1)
        hit: Bool = self._rows[pos] == rows
        return hit

    def removing(self, rows: I64, n: int) -> tuple[Tombstones, int]:
        """A new set with ``rows (m,) int64`` (any order, repeats allowed) removed as well, and
        how many of them were live; ``self`` itself when none was."""
        fresh = np.unique(rows[~self.is_dead(rows, n)])
        if len(fresh) == 0:
            return self, 0
        if self.bits is None:  # a sorted merge, O(dead + fresh)
            merged = np.insert(self._rows, np.searchsorted(self._rows, fresh), fresh)
            return Tombstones.of(merged, n), len(fresh)
        bits = _with_bits(self.bits, fresh, n)
        return Tombstones(None, bits, self.count + len(fresh)), len(fresh)

    def save(self, path: Path, write: Callable[[Path, I64], None] | None = None) -> None:
        """Write the removed rows to ``path / dead_rows.npy`` (by ``write``, default ``np.save``)
        and drop an older save's ``dead.npy`` flags there, which would be stale."""
        (write or _np_save)(path / DEAD_ROWS, self.sorted_rows())
        (path / DEAD_FLAGS).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, n: int) -> Tombstones:
        """The set saved in ``path`` (either file, see :func:`load_dead_rows`) of ``n`` rows."""
        return cls.of(load_dead_rows(path, n), n)


def _with_bits(bits: U8 | None, rows: I64, n: int) -> U8:
    """A bitmap for ``n`` rows: ``bits`` (or none set) plus ``rows (m,) int64``."""
    out = np.zeros(-(-n // 8), dtype=np.uint8)
    if bits is not None:
        out[: len(bits)] = bits
    np.bitwise_or.at(out, rows >> 3, np.left_shift(1, rows & 7).astype(np.uint8))
    return out


def _np_save(path: Path, rows: I64) -> None:
    np.save(path, rows)


def load_dead_rows(path: Path, n: int) -> I64:
    """The removed rows ``(dead,) int64`` of an index of ``n`` rows saved in ``path``: from
    ``dead_rows.npy`` (sorted, unique), or from an older save's ``dead.npy`` flags ``(n,) bool``."""
    if (path / DEAD_ROWS).exists():
        rows = np.load(path / DEAD_ROWS)
        ok = rows.ndim == 1 and rows.dtype == np.int64
        if ok and len(rows):
            ok = bool(rows[0] >= 0 and rows[-1] < n and np.all(rows[1:] > rows[:-1]))
        if not ok:
            raise ValueError(f"{path}: {DEAD_ROWS} is not sorted unique rows below {n}")
        out: I64 = rows
        return out
    flags = np.load(path / DEAD_FLAGS)
    if flags.shape != (n,):
        raise ValueError(f"{path}: {DEAD_FLAGS} has shape {flags.shape}, not ({n},)")
    found: I64 = np.flatnonzero(flags).astype(np.int64)
    return found
