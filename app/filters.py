"""Payload filters, Qdrant-style, compiled to SQLite and evaluated in Python (the reference).

A filter is ``{must: [...], should: [...], must_not: [...]}``; each condition is a nested filter,
``{has_id: [...]}`` or a field condition on ``key`` (dots walk nested objects)::

    {key, match: value}           value (str | int | bool) equals the field or any array element
    {key, match: {any: [...]}}    one of the values matches
    {key, range: {gt,gte,lt,lte}} a number (or any array element) within the bounds
    {key, exists: bool}           the key is present and not null

``must``: all hold; ``should``: at least one holds (when given); ``must_not``: none holds.
Types are strict: ``match: 1`` does not match ``true`` or ``"1"``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)


def _no_nul(s: str) -> str:
    if "\x00" in s:
        raise ValueError("strings must not contain NUL characters")
    return s


#: Payload integers are stored as SQLite 64-bit integers; larger ones could not match exactly.
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
Text = Annotated[StrictStr, AfterValidator(_no_nul)]
Number = StrictInt | StrictFloat
MatchValue = StrictBool | Int64 | Text
PointId = StrictInt | StrictStr


class MatchAny(BaseModel):
    model_config = ConfigDict(extra="forbid")
    any: list[MatchValue] = Field(min_length=1)


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        bounds = [v for v in (self.gt, self.gte, self.lt, self.lte) if v is not None]
        if not bounds:
            raise ValueError("range needs at least one of gt, gte, lt, lte")
        if not all(math.isfinite(v) for v in bounds):
            raise ValueError("range bounds must be finite numbers")
        return self


class FieldCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=256)
    match: MatchValue | MatchAny | None = None
    range: Range | None = None
    exists: StrictBool | None = None

    @model_validator(mode="after")
    def _one(self) -> FieldCondition:
        given = [n for n in ("match", "range", "exists") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"condition on {self.key!r} needs exactly one of match, range, exists")
        parts = self.key.split(".")
        if any(not p or '"' in p or "\\" in p or any(ord(c) < 0x20 for c in p) for p in parts):
            raise ValueError(
                f"bad key {self.key!r}: dotted names without empty parts, quotes, backslashes "
                "or control characters"
            )
        return self

    @property
    def path(self) -> str:
        return "$" + "".join(f'."{p}"' for p in self.key.split("."))


class HasId(BaseModel):
    model_config = ConfigDict(extra="forbid")
    has_id: list[PointId] = Field(min_length=1)


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    must: list[Condition] = Field(default_factory=list)
    should: list[Condition] = Field(default_factory=list)
    must_not: list[Condition] = Field(default_factory=list)


Condition = Filter | HasId | FieldCondition
Filter.model_rebuild()


def point_key(point_id: int | str) -> str:
    """The canonical text key of an external id: ``1`` and ``"1"`` stay distinct."""
    if type(point_id) is int:  # json.dumps's text for an int, without its ~2 us per id
        return str(point_id)
    return json.dumps(point_id)


# ---- SQLite compilation --------------------------------------------------------------------

_TYPE_SQL = {
    bool: "type IN ('true','false')",
    int: "type IN ('integer','real')",
    str: "type = 'text'",
}


def _value_sql(v: bool | int | str, params: list[Any]) -> str:
    params.append(int(v) if isinstance(v, bool) else v)
    return f"({_TYPE_SQL[type(v)]} AND value = ?)"


def _field_sql(c: FieldCondition, params: list[Any]) -> str:
    path = c.path
    if c.exists is not None:
        params.append(path)
        sql = "coalesce(json_type(payload, ?), 'null') != 'null'"
        return sql if c.exists else f"NOT ({sql})"
    if c.range is not None:
        ops = [(">", c.range.gt), (">=", c.range.gte), ("<", c.range.lt), ("<=", c.range.lte)]
        terms = ["type IN ('integer','real')"]
        for op, v in ops:
            if v is not None:
                terms.append(f"value {op} ?")
        elem = " AND ".join(terms)
        values = [v for _, v in ops if v is not None]
    else:
        vals = c.match.any if isinstance(c.match, MatchAny) else [c.match]
        sub: list[Any] = []
        elem = "(" + " OR ".join(_value_sql(v, sub) for v in vals if v is not None) + ")"
        values = sub
    params.extend([path, path, *values])
    return (
        "(coalesce(json_type(payload, ?), '') != 'object' AND EXISTS "
        f"(SELECT 1 FROM json_each(payload, ?) WHERE {elem}))"
    )


def _cond_sql(c: Condition, params: list[Any]) -> str:
    if isinstance(c, Filter):
        return to_sql(c, params)
    if isinstance(c, HasId):
        params.append(json.dumps([point_key(i) for i in c.has_id]))
        return "(key IN (SELECT value FROM json_each(?)))"
    return _field_sql(c, params)


def to_sql(f: Filter, params: list[Any]) -> str:
    """A WHERE expression over table ``points(key, payload)``; appends bound values to
    ``params``."""
    terms = [_cond_sql(c, params) for c in f.must]
    if f.should:
        terms.append("(" + " OR ".join(_cond_sql(c, params) for c in f.should) + ")")
    if f.must_not:
        terms.append("NOT (" + " OR ".join(_cond_sql(c, params) for c in f.must_not) + ")")
    return "(" + " AND ".join(terms) + ")" if terms else "1"


# ---- Python reference evaluator ------------------------------------------------------------

_MISSING = object()


def _lookup(payload: Any, key: str) -> Any:
    cur = payload
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _elem_matches(e: Any, v: bool | int | str) -> bool:
    if isinstance(v, bool):
        return isinstance(e, bool) and e == v
    if isinstance(v, int):
        return isinstance(e, int | float) and not isinstance(e, bool) and e == v
    return isinstance(e, str) and e == v


def _in_range(e: Any, r: Range) -> bool:
    if not isinstance(e, int | float) or isinstance(e, bool):
        return False
    return (
        (r.gt is None or e > r.gt)
        and (r.gte is None or e >= r.gte)
        and (r.lt is None or e < r.lt)
        and (r.lte is None or e <= r.lte)
    )


def _field_holds(c: FieldCondition, payload: Any) -> bool:
    value = _lookup(payload, c.key)
    if c.exists is not None:
        return (value is not _MISSING and value is not None) == c.exists
    if value is _MISSING or isinstance(value, dict):
        return False
    elems = value if isinstance(value, list) else [value]
    if c.range is not None:
        return any(_in_range(e, c.range) for e in elems)
    vals = c.match.any if isinstance(c.match, MatchAny) else [c.match]
    return any(_elem_matches(e, v) for e in elems for v in vals if v is not None)


def evaluate(f: Filter, point_id: int | str, payload: Any) -> bool:
    """Does the point satisfy ``f``? The reference semantics the SQL must agree with."""

    def holds(c: Condition) -> bool:
        if isinstance(c, Filter):
            return evaluate(c, point_id, payload)
        if isinstance(c, HasId):
            return point_key(point_id) in {point_key(i) for i in c.has_id}
        return _field_holds(c, payload)

    return (
        all(holds(c) for c in f.must)
        and (not f.should or any(holds(c) for c in f.should))
        and not any(holds(c) for c in f.must_not)
    )


def payload_problem(value: Any, where: str = "payload") -> str | None:
    """Why a payload cannot be stored and filtered faithfully, or None.

    SQLite's JSON functions cut strings at NUL and read integers beyond int64 as rounded floats,
    and JSON has no NaN or infinity: such values would not round-trip or would filter wrongly.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return f"{where} has a key containing a NUL character"
            if (problem := payload_problem(v, f"{where}.{k}")) is not None:
                return problem
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if (problem := payload_problem(v, f"{where}[{i}]")) is not None:
                return problem
    elif isinstance(value, str):
        if "\x00" in value:
            return f"{where} contains a NUL character"
    elif isinstance(value, bool) or value is None:
        return None
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            return f"{where} is an integer outside the 64-bit range"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"{where} is NaN or infinite (JSON cannot hold it)"
    return None
