"""The index contract: every MIPS index and reranker speaks these types.

Conventions (faiss style): ``ids`` are ``(n,) int64``, vectors ``(n, d) float32`` C-contiguous,
queries ``(nq, d) float32``. Results are ``(nq, k)``; higher score is better; missing hits are
padded with id ``-1`` and score ``-inf``. Ties are broken by ascending id so pages are stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SearchResult:
    """Top-k per query: ``scores (nq, k) float32`` and ``ids (nq, k) int64`` (``-1`` pads)."""

    scores: F32
    ids: I64

    def __post_init__(self) -> None:
        if self.scores.shape != self.ids.shape or self.scores.ndim != 2:
            raise ValueError(
                f"scores {self.scores.shape} and ids {self.ids.shape} must both be (nq, k)"
            )

    @property
    def nq(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def row(self, i: int) -> list[tuple[int, float]]:
        """Hits of query ``i`` as ``(id, score)`` pairs, padding dropped."""
        return [
            (int(j), float(s)) for j, s in zip(self.ids[i], self.scores[i], strict=True) if j >= 0
        ]


class IdSelector:
    """A set of allowed ids, kept as a sorted unique ``int64`` array.

    Indexes translate it to their own row space; an index whose ids are sorted does it with one
    ``searchsorted`` (O(m log n)) instead of a hash or ``isin`` pass over all n rows.
    """

    __slots__ = ("ids",)

    def __init__(self, ids: npt.ArrayLike) -> None:
        self.ids: I64 = np.unique(np.asarray(ids, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows_in(self, index_ids: I64, sorted_ids: bool) -> I64:
        """Rows of ``index_ids`` (the index's own id column) whose id is allowed, ascending."""
        if len(self.ids) == 0 or len(index_ids) == 0:
            return np.empty(0, dtype=np.int64)
        if sorted_ids:
            pos = np.searchsorted(index_ids, self.ids)
            inside = pos < len(index_ids)
            pos = pos[inside]
            rows: I64 = pos[index_ids[pos] == self.ids[inside]].astype(np.int64)
            return rows
        found: I64 = np.flatnonzero(np.isin(index_ids, self.ids)).astype(np.int64)
        return found


@runtime_checkable
class Index(Protocol):
    """A MIPS index over ``(id, vector)`` pairs; see the module docstring for shapes."""

    #: False where rebuilding from the stored vectors is as cheap as loading (Flat): the store
    #: then keeps one copy of the vectors instead of two.
    persist: ClassVar[bool]
    #: True where search returns the exact top-k.
    exact: ClassVar[bool]

    @property
    def spec(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: I64, vectors: F32) -> None: ...

    def search(self, queries: F32, k: int, selector: IdSelector | None = None) -> SearchResult: ...

    def remove(self, ids: I64) -> int: ...

    def nbytes(self) -> int: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> Self: ...


@runtime_checkable
class Reranker(Protocol):
    """Re-scores candidate ids exactly (IP, MaxSim, Hypencoder) and keeps the best k."""

    def rerank(self, query: F32, candidates: I64, k: int) -> SearchResult: ...


def check_vectors(vectors: npt.ArrayLike, dim: int, name: str = "vectors") -> F32:
    """Return ``vectors`` as C-contiguous ``(n, dim) float32`` or raise ``ValueError``."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {arr.shape}")
    return arr


def check_ids(ids: npt.ArrayLike, n: int) -> I64:
    """Return ``ids`` as ``(n,) int64`` or raise ``ValueError``."""
    arr = np.ascontiguousarray(ids, dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {arr.shape}")
    return arr
