"""``lexical``: BM25 over a text field of the payloads (:mod:`bm25s`).

The BM25 index is derived data, like every index here: it is built from the point store on the
first lexical query and rebuilt on the first one after any write (the WAL's last sequence number
tells), so a lexical query always sees every acknowledged point. Tokenising: lower-case words of
two or more characters, English stop words removed, no stemming (results do not depend on
which optional packages are installed).
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import bm25s
import numpy as np

from app.collection import Collection
from app.errors import InvalidInput
from app.pipeline.base import Candidate, Context, Stage, Trace, rescan
from index.base import F32, I64

__all__ = ["Bm25", "LexicalStage", "bm25_for"]

FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
STOPWORDS = "en"


@dataclass
class Bm25:
    """A BM25 index over ``field`` as of WAL sequence ``seq``; row ``i`` is point ``iids[i]``."""

    seq: int
    iids: I64
    retriever: bm25s.BM25 | None  # None: no point has the field

    def scores(self, text: str) -> F32:
        """``(len(iids),) float32`` BM25 scores of ``text`` against every indexed point."""
        if self.retriever is None:
            return np.zeros(0, dtype=np.float32)
        words = bm25s.tokenize([text], stopwords=STOPWORDS, return_ids=False, show_progress=False)[
            0
        ]
        out: F32 = np.asarray(self.retriever.get_scores(words), dtype=np.float32)
        return out


_cache: weakref.WeakKeyDictionary[Collection, dict[str, Bm25]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def bm25_for(col: Collection, field: str) -> Bm25:
    """The current BM25 index of ``col`` over ``field``, (re)built when writes happened since."""
    with _lock:  # one build at a time; a query arriving meanwhile waits and reuses it
        built = _cache.setdefault(col, {})
        seq = col.wal.last_seq
        have = built.get(field)
        if have is not None and have.seq == seq:
            return have
        rows = col.points.texts(field)
        iids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
        retriever = None
        if rows:
            tokens = bm25s.tokenize([t for _, t in rows], stopwords=STOPWORDS, show_progress=False)
            retriever = bm25s.BM25()
            retriever.index(tokens, show_progress=False)
        built[field] = index = Bm25(seq, iids, retriever)
        return index


class LexicalStage(Stage):
    """BM25 top-``k`` of the query text over payload ``field`` (default ``text``); points
    sharing no word with the query are not candidates. The filter applies."""

    NAME = "lexical"
    generator = True
    ARGS = ("k", "field")
    needs = frozenset({"text"})

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        field = args.get("field", "text")
        if not isinstance(field, str) or not FIELD.fullmatch(field):
            raise InvalidInput(
                f"{where}.field: a top-level payload field name (letters, digits, _ or -), "
                f"got {field!r}"
            )
        self.field = field

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        text = ctx.text
        assert text is not None

        def scan() -> list[tuple[int, float]]:
            index = bm25_for(ctx.col, self.field)
            scores = index.scores(text)
            keep = scores > 0
            if ctx.filter is not None:
                keep &= np.isin(index.iids, ctx.col.points.iids(ctx.filter))
            rows = np.flatnonzero(keep)
            depth = min(self.k + (ctx.exclude is not None), len(rows))
            if depth < len(rows):
                rows = rows[np.argpartition(-scores[rows], depth - 1)[:depth]]
            rows = rows[np.lexsort((index.iids[rows], -scores[rows]))]  # score desc, then iid
            return [(int(index.iids[r]), float(scores[r])) for r in rows]

        return rescan(scan, ctx.col, ctx.exclude)[: self.k], True, None
