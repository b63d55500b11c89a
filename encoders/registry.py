"""Encoder spec strings, the one registry of encoders, and the process-wide encoder cache.

Grammar (index specs' parameter syntax, plus names with ``-`` and a path)::

    spec   := NAME [":" PATH] ["(" [param ("," param)*] ")"]
    param  := KEY "=" VALUE          VALUE: int | float | true | false | bare string

``minilm`` · ``minilm(max_tokens=128,threads=1)`` · ``minilm-tokens(float16=true)`` ·
``onnx:/models/e5(pooling=mean)`` · ``st:~/models/mpnet`` · ``test-hash(dim=64)``.
The canonical form lists every parameter in declaration order and makes paths absolute, so
``encoder_factory(s).spec == canonical(s)`` and ``canonical(canonical(s)) == canonical(s)``.
A path may hold any character except that it must not end in ``)``.

>>> canonical("test-hash(dim=8)")
'test-hash(dim=8,seed=0,max_tokens=256)'
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from encoders.base import Encoder, EncoderError
from encoders.hashing import HashEncoder, HashTokensEncoder
from encoders.minilm import MiniLM, MiniLMTokens
from encoders.onnx import clear_sessions
from encoders.onnx_dir import OnnxDir, OnnxDirTokens
from encoders.st import STEncoder
from index.params import SpecError, bind, canonical_part
from index.spec import Part

#: The spec a collection gets when it names none.
DEFAULT_SPEC = "minilm"

#: Every encoder, by spec name: the one place a new encoder is registered. Each class has
#: ``Params`` (a dataclass), ``takes_path``, ``summary`` and ``build(spec, name, params, path)``.
REGISTRY: dict[str, type[Any]] = {
    "minilm": MiniLM,
    "minilm-tokens": MiniLMTokens,
    "onnx": OnnxDir,
    "onnx-tokens": OnnxDirTokens,
    "st": STEncoder,
    "test-hash": HashEncoder,
    "test-hash-tokens": HashTokensEncoder,
}

_NAME = re.compile(r"[a-z][a-z0-9-]*")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_lock = threading.Lock()
_cache: dict[str, Encoder] = {}


def known() -> list[str]:
    """Registered spec names, path-taking ones shown as ``name:<dir>``."""
    return [f"{n}:<dir>" if cls.takes_path else n for n, cls in REGISTRY.items()]


def _lookup(name: str) -> type[Any]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise EncoderError(f"unknown encoder {name!r} (known: {', '.join(known())})") from None


def _split(spec: str) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """``spec`` as (name, path or None, raw parameters), syntax only."""
    if not isinstance(spec, str) or not spec.strip():
        raise EncoderError(f"encoder spec must be a non-empty string such as {DEFAULT_SPEC!r}")
    head, body = spec.strip(), None
    if head.endswith(")"):
        open_at = head.rfind("(")
        if open_at < 0:
            raise EncoderError(f"unbalanced ')' in encoder spec {spec!r}")
        head, body = head[:open_at].strip(), head[open_at + 1 : -1]
    name, colon, path = head.partition(":")
    name = name.strip().lower()
    if not _NAME.fullmatch(name):
        raise EncoderError(f"bad encoder name {name!r} in {spec!r} (known: {', '.join(known())})")
    params: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in (body or "").split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not _KEY.fullmatch(key) or not value:
            raise EncoderError(f"{name}: parameter {item!r} is not key=value")
        if key in dict(params):
            raise EncoderError(f"{name}: parameter {key!r} given twice")
        params.append((key, value))
    return name, (path.strip() if colon else None), tuple(params)


def _resolve(spec: str) -> tuple[str, type[Any], Any, Path | None, str]:
    """Parse and validate: (name, class, bound params, path, canonical spec)."""
    name, path, raw = _split(spec)
    cls = _lookup(name)
    if cls.takes_path and not path:
        raise EncoderError(f"encoder {name!r} needs a directory: {name}:/path/to/model")
    if not cls.takes_path and path is not None:
        raise EncoderError(f"encoder {name!r} takes no path (got {name}:{path})")
    try:
        params = bind(name, cls, Part(name, raw))
    except SpecError as exc:
        raise EncoderError(str(exc)) from None
    where = Path(os.path.abspath(os.path.expanduser(path))) if path else None
    head = f"{name}:{where}" if where else name
    return name, cls, params, where, canonical_part(head, params)


def canonical(spec: str) -> str:
    """The canonical form of an encoder spec (no model is loaded)."""
    return _resolve(spec)[4]


def encoder_factory(spec: str) -> Encoder:
    """The encoder for ``spec``, built once per canonical spec and process, then shared.

    Raises:
        EncoderError: the spec does not parse, names an unknown encoder or parameter, or the
            model files are missing, corrupt or unloadable.
    """
    name, cls, params, path, text = _resolve(spec)
    with _lock:
        if text not in _cache:
            encoder = cls.build(text, f"{name}:{path}" if path else name, params, path)
            if not isinstance(encoder, Encoder):
                raise TypeError(f"{cls.__name__}.build did not return an Encoder")
            _cache[text] = encoder
        return _cache[text]


def clear_cache() -> None:
    """Forget built encoders (tests; after replacing a model directory on disk)."""
    with _lock:
        _cache.clear()
    clear_sessions()
