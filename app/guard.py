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


def estimate_index_bytes(spec: str, dim: int, n: int, tokens: int = 0) -> int:
    """Approximate resident bytes of an index of ``n`` vectors of ``dim`` built under ``spec``
    (multi-vector: ``n`` documents of ``tokens`` token vectors in all).

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
    elif first.name == "Muvera":
        # float32 FDEs in the inner index (counted as Flat), the token store and its offsets
        fde = p.get("d_final", 0) or p.get("r_reps", 20) * (1 << p.get("k_sim", 5)) * p.get(
            "d_proj", 16
        )
        half = ("store_dtype", "float16") in first.params
        per_row = fde * 4 + 2 * _ROW + 8
        fixed += tokens * dim * (2 if half else 4)
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
    extra = estimate_index_bytes(
        spec, int(info["dim"]), int(info["count"]), int(info.get("tokens", 0))
    )
    check_budget(int(budget), in_use, extra, f"building {spec} over {info['count']:,} points")
