"""The request path's fast JSON reader: :func:`app.api.deps.loads` reads what ``json.loads``
reads, value for value and error for error."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from app.api import deps

BODIES = [
    b'{"a": 1, "b": [1.5, -0.0, 1e-400, 0.000123456789012345678]}',
    b'{"id": 18446744073709551615}',
    b'{"id": 18446744073709551616}',  # beyond 64 bits: orjson would give a float
    b'{"id": -9223372036854775809}',
    b'{"k": 1234567890123456789012345678901234567890}',
    b"[1e19, 1e400, -1e400]",
    b"[NaN, Infinity, -Infinity]",
    b'{"a": 1, "a": 2}',
    b'"\\u00e9\\ud83d\\ude00"',
    b"\xef\xbb\xbf[1]",  # UTF-8 BOM
    '{"x": [1, 2]}'.encode("utf-16"),
    b"",
    b"{",
    b'{"a": 1,}',
    b"[01]",
    b'"\\ud800"',
    b"\xff",
    b" [1] \n",
]


def _outcome(read: Any, body: bytes) -> tuple[str, str]:
    try:
        return "ok", repr(read(body))
    except Exception as e:  # the same exception, the same message
        return type(e).__name__, str(e)


@pytest.mark.parametrize("body", BODIES)
def test_loads_reads_as_json_does(body: bytes) -> None:
    assert _outcome(deps.loads, body) == _outcome(json.loads, body)


def test_loads_float_vectors_round_trip() -> None:
    x = np.random.default_rng(0).standard_normal((50, 384)).astype(np.float32) * 1e-3
    body = json.dumps({"points": [{"id": i, "vector": v} for i, v in enumerate(x.tolist())]})
    assert deps.loads(body.encode()) == json.loads(body)
