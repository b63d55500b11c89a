"""``hypencoder``: re-score candidates with the query's q-net (:mod:`index.hypencoder`).

A head is a directory written by ``HyperHead.save`` (``innerspace train-hypencoder`` makes one)
placed under ``INNERSPACE_HYPENCODER_DIR`` (default ``<data dir>/hypencoder``); a stage names
it, ``{"hypencoder": {"head": "my-head", "k": 10}}``. Heads that ship with the package
(``encoders/assets/hypencoder/``: ``minilm-debian``, for collections of the bundled ``minilm``
encoder) are found when the directory holds none of that name, so a local head can replace a
bundled one. ``minilm-debian`` was trained on Debian package synopses -> descriptions: it helps
there and hurts far-off text (SciFact claims), so it is a name to choose, not a default.

The query text is encoded into token vectors with the encoder the head was trained with (its
``config.json``), the head turns them into a q-net, and the q-net scores each candidate's
stored float vector. Heads are loaded once and reloaded when their files change.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

import encoders
from app.encoding import Encoding
from app.errors import InvalidInput, NotFound
from app.pipeline.base import DENSE, Candidate, Context, Stage, Trace
from app.pipeline.rescorers import stored, top
from index.base import F32
from index.flat import _blas
from index.hypencoder_head import HyperHead

__all__ = ["BUNDLED", "Heads", "HypencoderStage"]

HEAD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Heads shipped with the package, one directory each.
BUNDLED = Path(encoders.__file__).parent / "assets" / "hypencoder"


def _heads_in(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return [p.name for p in root.iterdir() if (p / "config.json").is_file()]


class Heads:
    """The heads under one directory plus the bundled ones, and the token encoders they name."""

    def __init__(self, root: Path, encoding: Encoding, bundled: Path = BUNDLED) -> None:
        self.root = root
        self.bundled = bundled
        self.encoding = encoding
        self._lock = threading.Lock()
        self._loaded: dict[Path, tuple[float, HyperHead]] = {}

    def known(self) -> tuple[list[str], list[str]]:
        """Head names: ``(in the heads directory, bundled and not replaced by one there)``."""
        local = _heads_in(self.root)
        return sorted(local), sorted(set(_heads_in(self.bundled)) - set(local))

    def path(self, name: str) -> Path | None:
        """The directory of head ``name``: the heads directory first, then the bundled heads;
        None when neither has it."""
        for root in (self.root, self.bundled):
            if (root / name / "config.json").is_file():
                return root / name
        return None

    def head(self, name: str) -> HyperHead:
        path = self.path(name)
        try:
            if path is None:
                raise FileNotFoundError(name)
            stamp = max((path / f).stat().st_mtime for f in ("config.json", "head.npz"))
        except OSError:
            local, bundled = self.known()
            known = ", ".join(local) or f"none; put heads under {self.root}"
            if bundled:
                known += f"; bundled: {', '.join(bundled)}"
            raise NotFound(f"hypencoder head {name!r} not found (known: {known})") from None
        with self._lock:
            have = self._loaded.get(path)
            if have is None or have[0] != stamp:
                have = (stamp, HyperHead.load(path))
                self._loaded[path] = have
            return have[1]

    def query_tokens(self, head: HyperHead, text: str) -> F32:
        """``(t, token_dim) float32`` token vectors of ``text`` by the head's encoder."""
        spec = head.config.encoder
        if not spec:
            raise InvalidInput("this hypencoder head records no token encoder (config.encoder)")
        enc = self.encoding.encode(self.encoding.load(spec), [text], "query")
        if not isinstance(enc.vectors, list):
            raise InvalidInput(f"hypencoder head encoder {spec!r} gives no token vectors")
        tokens: F32 = np.asarray(enc.vectors[0], dtype=np.float32)
        return tokens


class HypencoderStage(Stage):
    """Scores each candidate with the q-net built from the query text."""

    NAME = "hypencoder"
    KINDS = (DENSE,)
    ARGS = ("k", "head")
    needs = frozenset({"text"})

    def __init__(self, where: str, args: dict[str, Any], max_k: int) -> None:
        super().__init__(where, args, max_k)
        head = args.get("head")
        if not isinstance(head, str) or not HEAD.fullmatch(head):
            raise InvalidInput(f"{where}.head: name a head directory, got {head!r}")
        self.head = head

    def run(
        self, ctx: Context, cands: list[Candidate]
    ) -> tuple[list[Candidate], bool, list[Trace] | None]:
        if ctx.heads is None:
            raise InvalidInput(f"{self.where}: hypencoder heads are not available here")
        head = ctx.heads.head(self.head)
        if head.dim != ctx.col.dim:
            raise InvalidInput(
                f"{self.where}: head {self.head!r} scores {head.dim}-d vectors, collection "
                f"{ctx.col.config.name!r} holds {ctx.col.dim}-d"
            )
        assert ctx.text is not None
        tokens = ctx.heads.query_tokens(head, ctx.text)
        kept, rows = stored(ctx, cands)
        if not rows:
            return [], True, None
        # One query's small matmuls: a second BLAS thread on a busy box only adds waiting
        # (measured 3-7x slower q-net builds; index.hypencoder's reranker does the same).
        with _blas.single_threaded():
            scores = head.qnet(tokens).scores(np.stack(rows))
        return top(kept, scores, self.k), True, None
