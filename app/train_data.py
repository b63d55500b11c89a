"""Training data for ``innerspace train-hypencoder`` (:mod:`app.cli_train`): query/document
pairs read from JSONL or the Debian descriptions, and their encodings, cached on disk under a key
of the encoder's fingerprint and the texts, with a progress bar."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from index.base import F32

__all__ = ["Pairs", "bar", "console", "encode_dense", "encode_tokens", "read_pairs", "with_threads"]

console = Console(stderr=True)


# ---- data ---------------------------------------------------------------------------------


@dataclass
class Pairs:
    """Queries with their relevant documents (indices into ``docs``) and given negatives."""

    queries: list[str]
    docs: list[str]
    positives: list[list[int]]
    negatives: list[list[int]] = field(default_factory=list)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_pairs(path: Path, debian: bool = False) -> Pairs:
    """Read training pairs; ``debian``: rows are ``{"synopsis", "description"}``.

    Raises:
        ValueError: a row is not an object with non-empty string fields (names the line).
    """
    q_keys = ("synopsis", "description") if debian else ("query", "positive")
    doc_row: dict[str, int] = {}
    query_row: dict[str, int] = {}
    out = Pairs([], [], [], [])

    def doc(text: str) -> int:
        if text not in doc_row:
            doc_row[text] = len(out.docs)
            out.docs.append(text)
        return doc_row[text]

    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                query, positive = row[q_keys[0]], row[q_keys[1]]
                negatives = [] if debian else row.get("negatives", [])
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise ValueError(
                    f"{path}:{n}: expected a JSON object with {q_keys[0]!r} and {q_keys[1]!r}"
                ) from None
            texts = [query, positive, *negatives] if isinstance(negatives, list) else [None]
            if not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValueError(f"{path}:{n}: texts must be non-empty strings")
            if query not in query_row:
                query_row[query] = len(out.queries)
                out.queries.append(query)
                out.positives.append([])
                out.negatives.append([])
            i = query_row[query]
            if (p := doc(positive)) not in out.positives[i]:
                out.positives[i].append(p)
            out.negatives[i] += [d for t in negatives if (d := doc(t)) not in out.negatives[i]]
    if not out.queries:
        raise ValueError(f"{path}: no training pairs")
    for i, pos in enumerate(out.positives):  # a text both positive and negative is positive
        out.negatives[i] = [d for d in out.negatives[i] if d not in pos]
    return out


# ---- encoding (cached) ----------------------------------------------------------------------


def bar() -> Progress:
    """A progress bar on stderr: done / total, elapsed and remaining time, a note."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _cache_key(spec: str, role: str, texts: Sequence[str]) -> tuple[Any, str]:
    from encoders import encoder_factory

    enc = encoder_factory(spec)
    h = hashlib.sha256()
    # What changes the vectors (not threads or batch sizes): weights, truncation, role.
    h.update(f"{enc.name}\0{enc.fingerprint}\0{enc.max_tokens}\0{role}\0".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return enc, h.hexdigest()[:32]


def encode_dense(spec: str, texts: Sequence[str], role: str, cache: Path | None) -> F32:
    """``(n, d) float32`` dense vectors of ``texts`` (``role``: "query" or "document")."""
    enc, key = _cache_key(spec, role, texts)
    path = None if cache is None else cache / f"dense-{key}.npy"
    if path is not None and path.is_file():
        out: F32 = np.load(path)
        return out
    what = f"{'queries' if role == 'query' else 'documents'} ({spec})"
    rows = [np.asarray(b, np.float32) for b in _encode(enc, texts, role, what)]
    out = np.concatenate(rows) if rows else np.empty((0, enc.dim), np.float32)
    if path is not None:
        _save_npz_or_npy(path, out)
    return out


def encode_tokens(spec: str, texts: Sequence[str], cache: Path | None) -> list[F32]:
    """Per-query ``(t_i, d) float32`` token vectors (cached as float16 to halve the cache)."""
    enc, key = _cache_key(spec, "query", texts)
    path = None if cache is None else cache / f"tokens-{key}.npz"
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            flat, off = z["tokens"], z["offsets"]
    else:
        sets: list[npt.NDArray[Any]] = []
        for batch in _encode(enc, texts, "query", f"query tokens ({spec})"):
            sets += batch
        off = np.zeros(len(sets) + 1, np.int64)
        np.cumsum([len(s) for s in sets], out=off[1:])
        flat = np.concatenate(sets).astype(np.float16)
        if path is not None:
            _save_npz_or_npy(path, {"tokens": flat, "offsets": off})
    return [flat[off[i] : off[i + 1]].astype(np.float32) for i in range(len(off) - 1)]


def with_threads(spec: str, threads: int) -> str:
    """``spec`` with its ``threads`` parameter set (0: unchanged); for encoding the training
    data only, so the head records the spec as given.

    >>> with_threads("minilm", 8), with_threads("minilm-tokens(max_tokens=64)", 8)
    ('minilm(threads=8)', 'minilm-tokens(max_tokens=64,threads=8)')
    """
    if not threads:
        return spec
    spec = spec.strip()
    if spec.endswith(")") and "(" in spec:
        head, body = spec[: spec.rfind("(")], spec[spec.rfind("(") + 1 : -1]
        kept = [p for p in body.split(",") if p.strip() and p.split("=")[0].strip() != "threads"]
        return f"{head}({','.join([*kept, f'threads={threads}'])})"
    return f"{spec}(threads={threads})"


def _encode(
    enc: Any, texts: Sequence[str], role: str, what: str, batch: int = 256
) -> Iterator[Any]:
    fn = enc.encode_queries if role == "query" else enc.encode_documents
    with bar() as progress:
        task = progress.add_task(f"encode {what}", total=len(texts), note="")
        for i in range(0, len(texts), batch):
            part = texts[i : i + batch]
            yield fn(part).vectors
            progress.advance(task, len(part))


def _save_npz_or_npy(path: Path, data: F32 | dict[str, npt.NDArray[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    with os.fdopen(fd, "wb") as f:
        if isinstance(data, dict):
            np.savez(f, **data)  # type: ignore[arg-type]
        else:
            np.save(f, data)
    os.replace(tmp, path)
