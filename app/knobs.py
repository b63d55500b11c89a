"""Per-query index parameters (``params``): which ones a segment's index takes, and the call
that passes them on, turning a value the index rejects into a 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import InvalidInput
from index.base import SearchResult


def search_part(
    index: Any, search: Callable[..., SearchResult], params: dict[str, Any], *args: Any
) -> SearchResult:
    """``search(*args, **knobs)`` with the ``params`` that ``index``'s class lists in ``KNOBS``.

    Queries, ``k`` and filters are checked before any index is called, so what an index still
    rejects (``ValueError``/``TypeError``) is a knob's value: reported as ``params: ...``.
    """
    accepted = getattr(type(index), "KNOBS", ())
    knobs = {k: v for k, v in params.items() if k in accepted}
    try:
        return search(*args, **knobs)
    except (TypeError, ValueError) as exc:
        if not knobs:
            raise
        raise InvalidInput(f"params: {exc}") from exc
