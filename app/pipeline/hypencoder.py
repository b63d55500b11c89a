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

import json
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
from index.hypencoder_head import HyperHead, arrays_file

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
        """The directory of head ``name``: the heads directory first, then the bundled heads
        (an absolute path, which only an index spec may give, is taken as it is); None when
        there is no head there."""
        given = Path(name)
        places = [given] if given.is_absolute() else [self.root / name, self.bundled / name]
        return next((p for p in places if (p / "config.json").is_file()), None)

    def default_for(self, encoder: str | None, dim: int) -> str:
        """The head a search gets when it asks to re-rank without naming one: the one head
        trained on ``dim``-d documents of ``encoder`` (the collection's), looked for in the
        heads directory first, then among the bundled ones."""
        local, bundled = self.known()
        model = _model_name(encoder)
        for names in (local, bundled):
            fits = [n for n in names if model and self._fits(n) == (model, dim)]
            if len(fits) == 1:
                return fits[0]
            if fits:
                raise InvalidInput(
                    f"params.head: several heads fit encoder {encoder!r} ({', '.join(fits)}); "
                    "name one"
                )
        known = ", ".join(local + bundled) or "none"
        raise InvalidInput(
            f"params.head: no hypencoder head was trained for {dim}-d vectors of encoder "
            f"{encoder!r}; name one "
            f"(known: {known})"
        )

    def _fits(self, name: str) -> tuple[str | None, int]:
        """``(document encoder model, document dim)`` of a head, from its config only."""
        path = self.path(name)
        try:
            assert path is not None
            config = json.loads((path / "config.json").read_text())["config"]
            return _model_name(str(config["doc_encoder"])), int(config["dim"])
        except (AssertionError, OSError, ValueError, KeyError, TypeError):
            return None, 0

    def head(self, name: str) -> HyperHead:
        path = self.path(name)
        try:
            if path is None:
                raise FileNotFoundError(name)
            stamp = max(f.stat().st_mtime for f in (path / "config.json", arrays_file(path)))
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

    @classmethod
    def of_model(cls, where: str, model: str, k: int, max_k: int) -> HypencoderStage:
        """The stage for a head name or, from an index spec, a head directory's path (the
        HTTP ``head`` argument takes names only)."""
        stage = cls(where, {"k": k, "head": "spec"}, max_k)
        stage.head = model
        return stage

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


def _model_name(spec: str | None) -> str | None:
    """An encoder spec's model name: ``minilm(threads=2)`` -> ``minilm`` (options such as
    threads or batch size do not change the vectors a head was trained on)."""
    return spec.partition("(")[0].strip() or None if spec else None
