"""Typed parameters of spec parts: coercion from spec text and canonical printing."""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from index.spec import Part


class SpecError(ValueError):
    """A spec string that does not parse or names an unknown component or parameter."""


def _coerce(component: str, key: str, raw: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise SpecError(f"{component}: {key} must be one of {', '.join(choices)}, got {raw!r}")
        return raw
    try:
        if hint is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        if hint is int:
            return int(raw)
        if hint is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value
        return str(raw)
    except ValueError:
        raise SpecError(f"{component}: {key} must be {hint.__name__}, got {raw!r}") from None


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def bind(component: str, cls: type[Any], part: Part) -> Any:
    """Coerce a part's raw parameters into ``cls.Params``; validation errors become SpecError."""
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    hints = typing.get_type_hints(cls.Params)
    values: dict[str, Any] = {}
    for key, raw in part.params:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise SpecError(f"{component}: unknown parameter {key!r} (known: {known})")
        values[key] = _coerce(component, key, raw, hints[key])
    try:
        return cls.Params(**values)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{component}: {exc}") from None


def canonical_part(name: str, params: Any) -> str:
    """Print a part with every parameter in declaration order."""
    fields = dataclasses.fields(params)
    if not fields:
        return name
    return f"{name}({','.join(f'{f.name}={_format(getattr(params, f.name))}' for f in fields)})"
