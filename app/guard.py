"""The memory guardrail: refuse work that would take the process past its memory budget.

``INNERSPACE_MEMORY_BUDGET_BYTES`` bounds the bytes that vectors and indexes of all collections
take (``bytes_in_memory`` of every collection). An index build keeps the old index serving
until the new one is installed, so at its peak both are resident: a build is refused with 507
when ``in use + estimated size of the new index`` exceeds the budget. The estimate is a
formula per index kind (float32 vectors, ids and tombstones, plus graph links or centroids);
an index kind the formula does not know is counted as its raw float32 vectors, a lower bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from app.errors import InsufficientStorage
from index.params import SpecError
from index.spec import parse_spec

if TYPE_CHECKING:
    from app.service import SearchService

#: Per vector: the int64 id and the one-byte tombstone every index keeps beside the vectors.
_ROW = 8 + 1


def _params(params: Iterable[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in params:
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


def estimate_index_bytes(spec: str, dim: int, n: int) -> int:
    """Approximate resident bytes of an index of ``n`` vectors of ``dim`` built under ``spec``.

    >>> estimate_index_bytes("Flat", 4, 10)
    250
    >>> estimate_index_bytes("HNSW(m=16)", 4, 10) > estimate_index_bytes("Flat", 4, 10)
    True
    """
    try:
        first = parse_spec(spec).parts[0]
    except SpecError:
        return n * (dim * 4 + _ROW)
    p = _params(first.params)
    per_row = dim * 4 + _ROW
    fixed = 0
    if first.name == "HNSW":
        m = p.get("m", 32)
        # Layer 0 keeps 2m int32 links, upper layers ~1/(m-1) of that; an int32 level and an
        # int64 offset per row.
        per_row += int(2 * m * 4 * (1 + 1 / max(1, m - 1))) + 4 + 8
    elif first.name == "IVF":
        per_row += 8  # faiss keeps its own id per list entry
        fixed += min(p.get("nlist", 1024), max(1, n)) * dim * 4
    elif first.name == "Binary":
        per_row += (dim + 7) // 8
    return n * per_row + fixed


def check_budget(budget: int | None, in_use: int, extra: int, what: str) -> None:
    """Raise 507 when ``in_use + extra`` bytes would exceed ``budget`` (None: no budget)."""
    if budget is None or in_use + extra <= budget:
        return
    raise InsufficientStorage(
        f"{what} needs about {extra:,} bytes; with {in_use:,} in use that exceeds the "
        f"{budget:,}-byte memory budget (INNERSPACE_MEMORY_BUDGET_BYTES)",
        {"needed_bytes": extra, "in_use_bytes": in_use, "budget_bytes": budget},
    )


def check_build(service: SearchService, name: str, spec: str) -> None:
    """Refuse building ``spec`` over collection ``name`` when it would pass the budget."""
    budget = service.settings.memory_budget_bytes
    if budget is None:
        return
    infos = service.list_collections()
    info = next((i for i in infos if i["name"] == name), None)
    if info is None:
        return  # the caller reports the unknown collection
    in_use = sum(int(i["bytes_in_memory"]) for i in infos)
    extra = estimate_index_bytes(spec, int(info["dim"]), int(info["count"]))
    check_budget(int(budget), in_use, extra, f"building {spec} over {info['count']:,} points")
