"""Spec strings: the printable, storable identity of an index (faiss ``index_factory`` style).

Grammar::

    spec  := part ("," part)*
    part  := NAME | NAME "(" [param ("," param)*] ")"
    param := KEY "=" VALUE        VALUE: int | float | true | false | bare string

Each part name is looked up in one explicit :data:`REGISTRY`; its parameters are coerced to the
types of the component's ``Params`` dataclass and printed back in declaration order with every
default filled in, so ``index_factory(d, s).spec`` is the canonical form of ``s`` and
``index_factory(d, index.spec).spec == index.spec``.

>>> str(parse_spec(" Flat "))
'Flat'
>>> index_factory(4, "Flat").spec
'Flat'
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import Any

from index.base import Index
from index.params import SpecError, bind, canonical_part

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEY = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Part:
    """One component of a spec: a registered name and its raw parameters."""

    name: str
    params: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in self.params)})"


@dataclass(frozen=True)
class IndexSpec:
    """A parsed spec: its parts in order (first the index, then any stages)."""

    parts: tuple[Part, ...]

    def __str__(self) -> str:
        return ",".join(str(p) for p in self.parts)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    out: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unbalanced ')' at position {i} in {text!r}")
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise SpecError(f"unbalanced '(' in {text!r}")
    out.append(text[start:])
    return out


def _parse_part(text: str) -> Part:
    text = text.strip()
    if not text:
        raise SpecError("empty part (two commas in a row, or a leading/trailing comma)")
    name, _, rest = text.partition("(")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise SpecError(f"bad component name {name!r}")
    if not _:
        return Part(name)
    if not rest.endswith(")"):
        raise SpecError(f"{name}: parameters must end with ')'")
    body = rest[:-1].strip()
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not _KEY.fullmatch(key) or not value:
            raise SpecError(f"{name}: parameter {item!r} is not key=value")
        if key in seen:
            raise SpecError(f"{name}: parameter {key!r} given twice")
        seen.add(key)
        params.append((key, value))
    return Part(name, tuple(params))


def parse_spec(text: str) -> IndexSpec:
    """Parse the syntax of a spec string (no registry look-up)."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("spec must be a non-empty string such as 'Flat'")
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> IndexSpec:
    """:func:`parse_spec`'s work, remembered: every search reads its collection's spec (the
    result is immutable)."""
    return IndexSpec(tuple(_parse_part(p) for p in _split_top(text)))


#: Every index component, by spec name: the one place a new index is registered. Entries are
#: ``"module:Class"`` so optional backends are imported only when a spec names them.
REGISTRY: dict[str, str] = {
    "Flat": "index.flat:FlatIndex",
    "HNSW": "index.hnsw:HNSWIndex",
    "IVF": "index.ivf:IVFIndex",
    "Binary": "index.binary:BinaryIndex",
    "Muvera": "index.muvera:MuveraIndex",
}

#: Parts that may follow an index part and modify it (their ``Params`` dataclasses).
STAGES: dict[str, str] = {
    "Rescore": "index.binary:RescoreParams",
    "MaxSim": "index.maxsim:MaxSimParams",
    "Hypencoder": "index.hypencoder:HypencoderParams",
}

#: Stages that end a spec but run after the index rather than inside it, because they read
#: more of the query than its vector (the Hypencoder builds its q-net from the query text):
#: :func:`index_factory` builds the index before them and the service applies them.
QUERY_STAGES = ("Hypencoder",)


def _resolve(kind: str, table: dict[str, str], name: str) -> Any:
    try:
        target = table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise SpecError(f"unknown {kind} {name!r} (known: {known})") from None
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{kind} {name!r} is registered but unavailable: {exc}") from None


def lookup(name: str) -> type[Any]:
    """The registered index class for a part name; an unknown name lists the known ones."""
    cls: type[Any] = _resolve("index component", REGISTRY, name)
    return cls


def knobs(spec: str) -> tuple[str, ...]:
    """Search-time parameters the spec's index takes per call (its class's ``KNOBS``), read
    from the registry without building the index."""
    return tuple(getattr(lookup(parse_spec(spec).parts[0].name), "KNOBS", ()))


def available() -> list[str]:
    """Registered index names whose module imports here, sorted."""
    out = []
    for name in sorted(REGISTRY):
        try:
            lookup(name)
        except SpecError:
            continue
        out.append(name)
    return out


def stage_params(part: Part) -> Any:
    """Bind a stage part (``Rescore(oversample=4)``) to its ``Params`` dataclass."""
    params_cls = _resolve("stage", STAGES, part.name)

    class _Holder:
        Params = params_cls

    return bind(part.name, _Holder, part)


def split_query_stages(spec: str) -> tuple[IndexSpec, tuple[Part, ...]]:
    """``(the index's parts, its trailing query stages)``.

    >>> [str(p) for p in split_query_stages("Flat,Hypencoder(model=minilm-debian)")[1]]
    ['Hypencoder(model=minilm-debian)']
    """
    parts = parse_spec(spec).parts
    cut = len(parts)
    while cut and parts[cut - 1].name in QUERY_STAGES:
        cut -= 1
    if cut == 0:
        raise SpecError(
            f"{parts[0].name} re-ranks what an index finds; put an index first, e.g. "
            f"'Flat,{parts[0]}'"
        )
    return IndexSpec(parts[:cut]), parts[cut:]


def query_stages(spec: str) -> list[Any]:
    """The bound ``Params`` of a spec's trailing query stages (``[]`` for most specs)."""
    return [stage_params(p) for p in split_query_stages(spec)[1]]


def index_factory(dim: int, spec: str) -> Index:
    """Build an empty index of dimension ``dim`` from its spec string.

    A spec of several parts is handed to the first part's class: ``cls.compose(dim, params,
    rest)`` builds the composite (e.g. ``Binary(...),Rescore(...)`` or
    ``Muvera(...),Flat,MaxSim(...)``) and prints it back as its ``spec``. Trailing
    :data:`QUERY_STAGES` are checked and left out: the index is what comes before them
    (:func:`canonical` prints the whole spec).
    """
    if not isinstance(dim, int) or dim <= 0:
        raise SpecError(f"dim must be a positive integer, got {dim!r}")
    parsed, tail = split_query_stages(spec)
    for p in tail:
        stage_params(p)
    part, rest = parsed.parts[0], list(parsed.parts[1:])
    cls = lookup(part.name)
    params = bind(part.name, cls, part)
    index: Index
    if rest:
        compose = getattr(cls, "compose", None)
        if compose is None:
            raise SpecError(
                f"{part.name} takes no further parts, got {','.join(str(p) for p in rest)!r}"
            )
        index = compose(dim, params, rest)
    else:
        index = cls(dim, params)
    return index


def canonical(spec: str, dim: int = 128) -> str:
    """The canonical form of a spec string (parameters complete and ordered), query stages
    included."""
    tail = [canonical_part(p.name, stage_params(p)) for p in split_query_stages(spec)[1]]
    return ",".join([index_factory(dim, spec).spec, *tail])
