"""Multi-vector (late-interaction) collections: index specs, token input checks, search.

A multi-vector collection stores each point as a ``(t, dim)`` token matrix and scores by
MaxSim: ``sum over query tokens q of max over document tokens p of <q, p>``. Sealed segments
carry a Muvera index (FDE candidates, exact MaxSim re-rank); the unindexed tail is scanned by
exact MaxSim; the parts merge like dense search does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from app.dense import checked_rows
from app.errors import InvalidInput
from app.filters import Filter
from app.knobs import search_part
from app.store.tokens import TokenBatch, TokenRows
from index.base import F32, IdSelector, SearchResult
from index.merge import merge_results
from index.muvera import MuveraIndex
from index.params import SpecError
from index.spec import canonical as canonical_of
from index.spec import index_factory, lookup, parse_spec, query_stages

if TYPE_CHECKING:
    from app.collection import Collection


def default_spec(dim: int) -> str:
    """The index of a multi-vector collection that names none: the ``wide`` FDE preset (k_sim=4,
    d_proj=32, 20 repetitions: the paper's 10,240 dimensions, fewer and wider buckets) over a
    Flat FDE index, 250 re-ranked candidates. At equal size it beat the paper's k_sim=5,
    d_proj=16 on real SciFact tokens (recall@10 at 200 candidates 0.956 vs 0.947) and on the
    synthetic sets (index/MUVERA_NOTES.md); ``Muvera()`` itself keeps the paper's defaults.
    250 candidates, not 100: on 113,834 real Debian token sets recall@10 is 0.906 at 100 and
    0.958 at 250, for 146 vs 163 ms a query (the Flat FDE scan dominates either way)."""
    spec = f"Muvera(k_sim=4,d_proj={min(32, dim)}),Flat,MaxSim(candidates=250)"
    return index_factory(dim, spec).spec


def is_multivector(spec: str) -> bool:
    try:
        return bool(getattr(lookup(parse_spec(spec).parts[0].name), "multivector", False))
    except SpecError:
        return False


def canonical_spec(dim: int, spec: str, multivector: bool, name: str | None = None) -> str:
    """The canonical form of ``spec`` after checking it suits the collection's kind (422)."""
    try:
        canonical = canonical_of(spec, dim)
        reranked = bool(query_stages(spec))
    except (SpecError, ValueError) as exc:
        raise InvalidInput(f"bad index spec {spec!r}: {exc}") from None
    what = f"collection {name!r}" if name else "the collection"
    if multivector and reranked:
        raise InvalidInput(
            f"index {spec!r}: Hypencoder re-ranks dense vectors; {what} is multi-vector"
        )
    if multivector and not is_multivector(canonical):
        raise InvalidInput(
            f"index {spec!r} is a dense index; {what} is multi-vector and needs a Muvera index, "
            f"e.g. {default_spec(dim)!r}"
        )
    if not multivector and is_multivector(canonical):
        raise InvalidInput(
            f'index {spec!r} is for multi-vector collections; create {what} with "multivector": '
            "true, or use a dense index such as 'Flat'"
        )
    return canonical


def _token_field(field: str, doc: int, token: int) -> tuple[str, dict[str, int]]:
    return f"{field}[{token}]", {"index": doc, "token": token}


def to_tokens(
    docs: Sequence[Any], dim: int, cosine: bool, name: str, what: str = "points"
) -> TokenBatch:
    """Validate ``docs`` (each a ``(t, dim)`` list of lists or array) into a float32 batch.

    Raises 422 naming the first empty, ragged, wrongly sized or non-finite document (and, for
    cosine collections, an all-zero token: tokens are normalised one by one).
    """
    arrays: list[F32] = []
    for i, doc in enumerate(docs):
        field = f"{what}[{i}].vectors"
        if len(doc) == 0:
            raise InvalidInput(f"{field} is empty; a document needs at least one token vector")
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                x = np.asarray(doc, dtype=np.float32)
            except (TypeError, ValueError):  # ragged: find the row below
                x = np.empty((0, 0), dtype=np.float32)
        if x.ndim != 2 or x.shape != (len(doc), dim):
            for j, row in enumerate(doc):
                if len(row) != dim:
                    raise InvalidInput(
                        f"{field}[{j}] has {len(row)} dimensions; collection {name!r} "
                        f"expects {dim}",
                        {"index": i, "token": j, "expected": dim, "got": len(row)},
                    )
            raise InvalidInput(f"{field} must be a list of token vectors", {"index": i})
        x = checked_rows(x, cosine, partial(_token_field, field, i))
        arrays.append(x)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    tokens = np.concatenate(arrays) if arrays else np.empty((0, dim), dtype=np.float32)
    return TokenBatch(np.ascontiguousarray(tokens, dtype=np.float32), offsets)


def check_params(params: dict[str, Any], where: str) -> None:
    """Types and ranges of ``candidates`` (int >= 1), ``exact`` (bool), ``tau`` ((0, 1])."""
    c = params.get("candidates")
    if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
        raise InvalidInput(f"{where}.candidates must be a positive integer, got {c!r}")
    e = params.get("exact")
    if e is not None and not isinstance(e, bool):
        raise InvalidInput(f"{where}.exact must be true or false, got {e!r}")
    t = params.get("tau")
    if t is not None and (isinstance(t, bool) or not 0.0 < float(t) <= 1.0):
        raise InvalidInput(f"{where}.tau must be in (0, 1], got {t!r}")


def run(
    col: Collection, queries: TokenBatch, depth: int, flt: Filter | None, params: dict[str, Any]
) -> tuple[SearchResult, bool]:
    """Top-``depth`` by MaxSim over the sealed segments (Muvera; exact with
    ``params.exact``) and the exactly scanned tail, merged; and whether all of it was exact."""
    segments, tails = col.parts()
    selector = IdSelector(col.points.iids(flt)) if flt is not None else None
    docs = queries.docs()
    exact = bool(params.get("exact", False))
    parts: list[SearchResult] = []
    all_exact = True
    for s in segments:
        index = cast(MuveraIndex, s.index)
        res = search_part(index, index.search, params, docs, depth, selector)
        seg_exact = exact
        if not exact and bool((res.ids < 0).any()):
            # Short: fewer FDE candidates than wanted survived the filter; answer exactly.
            res = index.search(docs, depth, selector, exact=True)
            seg_exact = True
        parts.append(res)
        all_exact &= seg_exact
    for t in tails:
        assert isinstance(t, TokenRows)
        parts.append(t.search(queries, depth, selector))
    return merge_results(parts, depth), all_exact
