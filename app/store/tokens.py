"""Token matrices of multi-vector collections: batches, the exact row store, segment files.

A batch of ``n`` documents is one ``tokens (N, d) float32`` matrix plus ``offsets (n + 1,)
int64``: document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]`` (at least one token).

A multi-vector segment directory holds ``tokens.npy (N, d) float32`` (the exact tokens, the
source of truth), ``offsets.npy (n + 1,) int64``, ``ids.npy (n,) int64`` and the Muvera index in
``index/``, whose token store (float32 or float16, per the spec's ``store_dtype``) is the copy
held in memory and re-ranked against; ``tokens.npy`` is memory-mapped and read only for
``with_vector``, search by id, merges and rebuilds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.store.fsutil import open_rows, write_array
from index.base import F32, I64, Bool, IdSelector, SearchResult
from index.flat import FlatIndex
from index.maxsim import MaxSimReranker, TokenStore, gather_rows
from index.muvera import MuveraIndex
from index.spec import index_factory, lookup, parse_spec


@dataclass(frozen=True)
class TokenBatch:
    """``n`` documents' tokens back to back: ``tokens (N, d)``, ``offsets (n + 1,) int64``."""

    tokens: npt.NDArray[Any]
    offsets: I64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> F32:
        """``(t_i, d) float32`` tokens of document ``i``."""
        rows = self.tokens[int(self.offsets[i]) : int(self.offsets[i + 1])]
        return np.asarray(rows, dtype=np.float32)

    def docs(self) -> list[F32]:
        return [self.doc(i) for i in range(len(self))]

    def take(self, docs: I64) -> TokenBatch:
        """The documents numbered ``docs (m,)``, in that order."""
        docs = np.asarray(docs, dtype=np.int64)
        rows, _ = gather_rows(self.offsets, docs)
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(self.offsets[docs + 1] - self.offsets[docs], out=offsets[1:])
        return TokenBatch(np.asarray(self.tokens[rows], dtype=np.float32), offsets)

    def select(self, keep: Bool) -> TokenBatch:
        """The documents where ``keep (n,) bool`` is true."""
        return self.take(np.flatnonzero(keep).astype(np.int64))

    @classmethod
    def concat(cls, batches: Sequence[TokenBatch], dim: int) -> TokenBatch:
        if not batches:
            return cls(np.empty((0, dim), dtype=np.float32), np.zeros(1, dtype=np.int64))
        sizes = np.concatenate([np.diff(b.offsets) for b in batches])
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        tokens = np.concatenate([np.asarray(b.tokens, dtype=np.float32) for b in batches])
        return cls(tokens.reshape(-1, dim), offsets)


class _Owner(Protocol):
    """The index that owns a segment's token store (``MuveraIndex``)."""

    def remove(self, ids: I64) -> int: ...


class TokenRows:
    """Documents' token sets under ``int64`` ids with tombstones: the multi-vector counterpart
    of the ``FlatIndex`` a dense collection keeps as its tail and as each segment's row store.

    As a tail it owns a float32 :class:`~index.maxsim.TokenStore` and is searched by exact
    MaxSim. In a segment it wraps the Muvera index's store (``owner``: removals go through the
    index so its FDE index drops them too) and reads exact rows from ``source``, the segment's
    memory-mapped ``tokens.npy``.
    """

    exact = True

    def __init__(
        self,
        dim: int,
        store: TokenStore | None = None,
        owner: _Owner | None = None,
        source: TokenBatch | None = None,
    ) -> None:
        self.dim = dim
        self.store = store if store is not None else TokenStore(dim, "float32")
        self.owner = owner
        self.source = source

    def __len__(self) -> int:
        return len(self.store)

    @property
    def ids(self) -> I64:
        return self.store.ids

    @property
    def dtype(self) -> str:
        return str(self.store.dtype)

    def alive_mask(self) -> Bool:
        return self.store.alive_mask()

    def rows_of(self, ids: I64) -> I64:
        return self.store.rows_of(ids)

    def remove(self, ids: I64) -> int:
        if self.owner is not None:
            return self.owner.remove(ids)
        return self.store.remove(ids)

    def add(self, ids: I64, batch: TokenBatch) -> None:
        self.store.add(ids, np.asarray(batch.tokens, dtype=np.float32), batch.offsets)

    def batch(self) -> TokenBatch:
        """Every stored document (dead ones included), exact float32 where a source exists."""
        if self.source is not None:
            return self.source
        return TokenBatch(self.store.tokens, self.store.offsets)

    def doc(self, row: int) -> F32:
        return self.batch().doc(row)

    def tokens(self) -> int:
        """Token rows of the live documents."""
        sizes = np.diff(self.store.offsets)
        return int(sizes[self.alive_mask()].sum())

    def nbytes(self) -> int:
        """Bytes held; a segment's store is counted by its index."""
        return 0 if self.owner is not None else self.store.nbytes()

    def token_bytes(self) -> int:
        """Bytes of the token rows held in memory (dead documents' included)."""
        return self.store.token_bytes()

    def search(self, queries: TokenBatch, k: int, selector: IdSelector | None) -> SearchResult:
        """Exact MaxSim top-``k`` of every live document for each query."""
        tokens = np.ascontiguousarray(queries.tokens, dtype=np.float32)
        return MaxSimReranker(self.store).search(tokens, queries.offsets, k, selector)


#: What holds a part's exact rows: dense vectors, or token sets of a multi-vector collection.
Rows = FlatIndex | TokenRows


def append_part(part: Rows, ids: I64, x: F32 | TokenBatch) -> None:
    """``part.add(ids, x)`` for either kind (the kinds never mix in one collection)."""
    if isinstance(part, TokenRows):
        assert isinstance(x, TokenBatch)
        part.add(ids, x)
    else:
        assert not isinstance(x, TokenBatch)
        part.add(ids, x)


def gather_parts(sources: list[Rows], keep: list[Bool], dim: int, multi: bool) -> F32 | TokenBatch:
    """The rows of ``sources`` where ``keep``, concatenated (exact float32)."""
    pairs = list(zip(sources, keep, strict=True))
    if multi:
        batches = [s.batch().select(m) for s, m in pairs if isinstance(s, TokenRows)]
        return TokenBatch.concat(batches, dim)
    return np.concatenate([s.vectors[m] for s, m in pairs if isinstance(s, FlatIndex)])


def write_token_files(stage: Path, ids: I64, batch: TokenBatch) -> None:
    write_array(stage / "tokens.npy", np.ascontiguousarray(batch.tokens, dtype=np.float32))
    write_array(stage / "offsets.npy", batch.offsets)
    write_array(stage / "ids.npy", ids)


def load_source(path: Path) -> TokenBatch:
    """A segment's exact tokens, memory-mapped."""
    return TokenBatch(np.load(path / "tokens.npy", mmap_mode="r"), np.load(path / "offsets.npy"))


def read_token_chunks(path: Path, offsets: I64, max_rows: int) -> Iterator[tuple[int, int, F32]]:
    """Stream a segment's ``tokens.npy`` as ``(first, end, token rows of those documents)``
    chunks cut at document boundaries (about ``max_rows`` rows each; a longer document comes
    whole), with plain reads so the pages do not count towards the reader's resident memory."""
    n = len(offsets) - 1
    with open(path, "rb") as fh:
        rows, d = open_rows(fh, path)
        if rows != offsets[-1]:
            raise ValueError(f"{path}: expected {offsets[-1]} token rows, found {rows}")
        a = 0
        while a < n:
            b = int(np.searchsorted(offsets, offsets[a] + max_rows, side="right")) - 1
            b = min(max(b, a + 1), n)
            buf = np.empty((int(offsets[b] - offsets[a]), d), dtype=np.float32)
            fh.readinto(buf.data.cast("B"))
            yield a, b, buf
            a = b


def build_token_index(spec: str, dim: int, ids: I64, batch: TokenBatch) -> MuveraIndex:
    """A Muvera index under ``spec`` over the documents of ``batch``."""
    index = index_factory(dim, spec)
    if not isinstance(index, MuveraIndex):
        raise ValueError(f"{spec!r} is not a multi-vector index")
    index.add(ids, batch.docs())
    return index


def open_token_segment(path: Path, meta: dict[str, Any]) -> tuple[TokenRows, MuveraIndex]:
    """The row store and index of the multi-vector segment in ``path`` (checksums verified)."""
    ids = np.load(path / "ids.npy")
    source = load_source(path)
    dim, spec = int(meta["dim"]), str(meta["spec"])
    if (path / "index").is_dir():
        index = lookup(parse_spec(spec).parts[0].name).load(path / "index")
        if not isinstance(index, MuveraIndex) or not np.array_equal(index.store.ids, ids):
            raise ValueError(f"{path}: the index does not hold the segment's documents")
    else:
        index = build_token_index(spec, dim, ids, source)
    return TokenRows(dim, index.store, index, source), index
