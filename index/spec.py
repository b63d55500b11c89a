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

import re
from dataclasses import dataclass
from typing import Any

from index.base import Index
from index.flat import FlatIndex
from index.hnsw import HNSWIndex
from index.ivf import IVFIndex
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
    return IndexSpec(tuple(_parse_part(p) for p in _split_top(text)))


#: Every index component, by spec name: the one place a new index is registered.
REGISTRY: dict[str, type[Any]] = {
    "Flat": FlatIndex,
    "HNSW": HNSWIndex,
    "IVF": IVFIndex,
}


def lookup(name: str) -> type[Any]:
    """The registered class for a part name; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise SpecError(f"unknown index component {name!r} (known: {known})") from None


def canonical(spec: str) -> str:
    """The canonical form of a spec string (parameters complete and ordered)."""
    parsed = parse_spec(spec)
    out = []
    for part in parsed.parts:
        cls = lookup(part.name)
        out.append(canonical_part(part.name, bind(part.name, cls, part)))
    return ",".join(out)


def index_factory(dim: int, spec: str) -> Index:
    """Build an empty index of dimension ``dim`` from its spec string."""
    if not isinstance(dim, int) or dim <= 0:
        raise SpecError(f"dim must be a positive integer, got {dim!r}")
    parsed = parse_spec(spec)
    if len(parsed.parts) != 1:
        raise SpecError(
            f"{spec!r}: multi-stage specs are not available yet; give one index part such as 'Flat'"
        )
    part = parsed.parts[0]
    cls = lookup(part.name)
    index: Index = cls(dim, bind(part.name, cls, part))
    return index
