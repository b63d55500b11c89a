"""``/search`` that re-ranks with a Hypencoder head.

A search re-ranks when it asks, ``params: {"rerank": "hypencoder", "candidates": 1000,
"head": "minilm-debian"}`` (``head`` and ``candidates`` optional), or when its collection's index
spec ends in ``Hypencoder(model=...,candidates=...)`` and the search carries ``text``;
``"rerank": "none"`` turns the spec's re-ranking off for one search. It then runs as the
pipeline ``[index(k=candidates), hypencoder(k=k+offset)]`` (:mod:`app.pipeline`), the rest of
``params`` going to the index, and its response carries the stages' trace.

The head is, in order: ``params.head``, the spec's ``model``, or the one head trained for the
collection's encoder (the bundled ``minilm-debian`` for ``minilm`` collections). The q-net is
built from the query text, so a re-ranking search must send ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.collection import Collection
from app.errors import InvalidInput
from app.pipeline.generators import IndexStage
from app.pipeline.hypencoder import Heads, HypencoderStage
from app.pipeline.plan import Plan, run
from app.search import Hit, Outcome, Query
from index.hypencoder import HypencoderParams
from index.spec import query_stages

if TYPE_CHECKING:
    from app.pipeline.service import Pipelines

__all__ = ["OWN", "Rerank", "check_spec", "rerank_of", "search_reranked"]

#: The ``params`` keys that belong to re-ranking, not to the index.
OWN = ("rerank", "head", "candidates")
RERANKERS = ("hypencoder", "none")


@dataclass(frozen=True)
class Rerank:
    """How one search re-ranks: the head (a name, or a directory from the spec) and how many
    first-stage candidates it re-scores."""

    model: str
    candidates: int


def _spec_stage(col: Collection) -> HypencoderParams | None:
    for p in query_stages(col.config.index):
        if isinstance(p, HypencoderParams):
            return p
    return None


def check_spec(heads: Heads, dim: int, spec: str) -> None:
    """A spec's Hypencoder head must exist and score ``dim``-d vectors (404 / 422 up front,
    not at the first search)."""
    for p in query_stages(spec):
        if isinstance(p, HypencoderParams):
            head = heads.head(p.model)
            if head.dim != dim:
                raise InvalidInput(
                    f"index {spec!r}: head {p.model!r} scores {head.dim}-d vectors, the "
                    f"collection holds {dim}-d"
                )


def rerank_of(
    col: Collection, q: Query, where: str, max_k: int, pipelines: Pipelines
) -> Rerank | None:
    """How search ``q`` re-ranks, None when it does not; a 422 for any inconsistent ask."""
    spec = _spec_stage(col)
    asked = q.params.get("rerank")
    own = [k for k in OWN if k in q.params]
    if asked is None and (spec is None or q.text is None):
        if spec is not None and {"head", "candidates"} & set(own):
            raise InvalidInput(
                f"{where}.params: {', '.join(own)} set how the collection's Hypencoder "
                "re-ranks text searches; this search sends no 'text'"
            )
        if "head" in q.params:
            raise InvalidInput(f'{where}.params.head: only with "rerank": "hypencoder"')
        return None
    if asked is not None and asked not in RERANKERS:
        raise InvalidInput(
            f"{where}.params.rerank: unknown reranker {asked!r} (known: {', '.join(RERANKERS)})"
        )
    if asked == "none":
        if len(own) > 1:
            raise InvalidInput(f'{where}.params: "rerank": "none" takes no head or candidates')
        return None
    if col.multivector:
        raise InvalidInput(f"{where}.params.rerank: hypencoder re-ranks dense collections")
    if q.text is None:
        raise InvalidInput(
            f"{where}.params.rerank: the hypencoder builds its q-net from the query text; "
            "search with 'text'"
        )
    head = q.params.get("head")
    if head is not None and not isinstance(head, str):
        raise InvalidInput(f"{where}.params.head: name a head, got {head!r}")
    if head is None:
        model = spec.model if spec else pipelines.heads.default_for(col.config.encoder, col.dim)
    else:
        model = head
    cands = q.params.get("candidates", spec.candidates if spec else 1000)
    k = q.k + q.offset
    if not isinstance(cands, int) or isinstance(cands, bool) or not k <= cands <= max_k:
        raise InvalidInput(
            f"{where}.params.candidates: an integer from k + offset ({k}) to {max_k}, got {cands!r}"
        )
    return Rerank(model, cands)


def search_reranked(
    pipelines: Pipelines, col: Collection, q: Query, r: Rerank, where: str
) -> Outcome:
    """Run search ``q`` as ``index(k=candidates)`` then the head's q-net."""
    from app.pipeline.service import QueryInput

    max_k = pipelines.service.settings.max_k
    knobs: dict[str, Any] = {k: v for k, v in q.params.items() if k not in OWN}
    bad = [k for k, v in knobs.items() if isinstance(v, str)]
    if bad:
        raise InvalidInput(f"{where}.params.{bad[0]}: must be a number or boolean")
    plan = Plan(
        [
            IndexStage(f"{where}.index", {"k": r.candidates, "params": knobs}, max_k),
            HypencoderStage.of_model(f"{where}.hypencoder", r.model, q.k + q.offset, max_k),
        ]
    )
    ctx = pipelines.context(col, plan, QueryInput(text=q.text), q.filter)
    res = run(plan, ctx)
    hits: list[Hit] = []
    for pid, score in res.hits:
        if q.score_threshold is not None and score < q.score_threshold:
            continue
        found = col.get(pid)
        if found is None:  # deleted since the index stage read it
            continue
        vec = col.vector_of(found[0]) if q.with_vector else None
        hits.append(
            Hit(
                id=pid,
                score=score,
                payload=found[1] if q.with_payload else None,
                vector=None if vec is None else vec.tolist(),
            )
        )
    return Outcome(hits[q.offset : q.offset + q.k], res.exact, res.took_ms, res.traces)
