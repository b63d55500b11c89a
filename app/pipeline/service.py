"""What the pipeline routes call: run a pipeline (named, default or inline) on one query,
manage a collection's named pipelines, report sampled recall and evaluate labelled queries."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.collection import Collection
from app.dense import WireVector
from app.errors import InvalidInput, NotFound
from app.filters import Filter
from app.pipeline.base import DENSE, MULTI, Context
from app.pipeline.hypencoder import Heads
from app.pipeline.named import NamedPipelines
from app.pipeline.plan import Plan, Result, parse, run
from app.pipeline.quality import RecallSampler, recall_at
from app.search import Outcome, Query
from app.store.tokens import TokenBatch
from encoders.evaluation import ndcg as ndcg_of

if TYPE_CHECKING:
    from app.service import SearchService

__all__ = ["Pipelines", "QueryInput", "INLINE"]

INLINE = "<inline>"  # the label of a pipeline sent with the request


@dataclass
class QueryInput:
    """One query: at most one of ``vector``, ``vectors`` (multi-vector), ``id``, plus ``text``
    for the stages that read text; ``text`` alone is encoded when a stage needs a vector. So one
    body fits every pipeline of a collection."""

    vector: WireVector | None = None
    vectors: list[list[float]] | None = None
    text: str | None = None
    point_id: int | str | None = None


class Pipelines:
    """Pipelines of every collection of ``service``."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        s = service.settings
        self.sampler = RecallSampler(s.recall_sample_rate, s.recall_sample_seed)
        root = s.hypencoder_dir or Path(s.data_dir) / "hypencoder"
        self.heads = Heads(Path(root).expanduser(), service.encoding)

    def close(self) -> None:
        self.sampler.close()

    def named(self, name: str) -> NamedPipelines:
        col = self.service.collection(name)
        return NamedPipelines(col.path, name)

    def parse(self, col: Collection, stages: Any) -> Plan:
        return parse(stages, self.service.settings.max_k, MULTI if col.multivector else DENSE)

    def resolve(self, name: str, pipeline: str | list[Any] | None) -> tuple[str, list[Any]]:
        """``(label, stages)``: a named pipeline, the inline one, or the collection's default."""
        if isinstance(pipeline, list):
            return INLINE, pipeline
        named = self.named(name)
        if pipeline is not None:
            return pipeline, named.get(pipeline)
        found = named.default()
        if found is None:
            raise InvalidInput(
                f"collection {name!r} has no default pipeline; send 'stages' or 'pipeline'"
            )
        return found

    def context(self, col: Collection, plan: Plan, q: QueryInput, flt: Filter | None) -> Context:
        """The stages' view of one query; text is encoded only when a stage scores vectors."""
        given = [x is not None for x in (q.vector, q.vectors, q.point_id)]
        if sum(given) > 1:  # text may come along: text stages read it, the others ignore it
            raise InvalidInput("give at most one of 'vector', 'vectors' or 'id' (plus 'text')")
        if q.vectors is not None and not col.multivector:
            raise InvalidInput("vectors: this collection is dense; send 'vector'")
        if q.vector is not None and col.multivector:
            raise InvalidInput("vector: this collection is multi-vector; send 'vectors'")
        raw: Any = q.vector if q.vector is not None else q.vectors
        wants_vector = bool(plan.needs - {"text"})
        if raw is None and q.point_id is None and q.text is not None and wants_vector:
            raw = self.service.encode_queries(col.config.name, [q.text], None)[0]
        vec = tokens = None
        if raw is not None:
            x = col.validate([raw], what="query")
            if isinstance(x, TokenBatch):
                tokens = x.doc(0)
            else:
                vec = x[0]
        elif q.point_id is not None:
            stored = col.vector_of(col.require(q.point_id)[0])
            if stored is None:  # deleted between the two reads
                raise NotFound(f"point {q.point_id!r} not found in collection {col.config.name!r}")
            if col.multivector:
                tokens = stored
            else:
                vec = stored
        max_k = self.service.settings.max_k
        return Context(
            col, vec, flt, q.point_id, max_k, text=q.text, tokens=tokens, heads=self.heads
        )

    def query(
        self,
        name: str,
        pipeline: str | list[Any] | None,
        q: QueryInput,
        flt: Filter | None = None,
        measure_recall: bool = False,
        with_payload: bool = True,
        explain: bool = False,
    ) -> tuple[str, Result]:
        """Run one query; returns the pipeline's label and the result (``explain``: stages may
        add notes that cost extra work, such as how a filter ran)."""
        col = self.service.collection(name)
        label, stages = self.resolve(name, pipeline)
        plan = self.parse(col, stages)
        ctx = self.context(col, plan, q, flt)
        ctx.explain = explain
        res = run(plan, ctx, measure_recall)
        self.sampler.offer(label, lambda: ctx, res.hits, plan.k)
        if with_payload:
            found = ((pid, col.get(pid)) for pid, _ in res.hits)
            res.payloads = {pid: f[1] for pid, f in found if f is not None}
        return label, res

    def sample_searches(
        self, col: Collection, queries: list[Query], outcomes: list[Outcome]
    ) -> None:
        """Offer plain ``/search`` queries to the recall sampler (pipeline label ``search``)."""
        for q, out in zip(queries, outcomes, strict=True):
            if q.offset or q.score_threshold is not None:
                continue  # a page past the first, or a cut list: no top-k to compare
            hits = [(h.id, h.score) for h in out.hits]
            self.sampler.offer("search", partial(self._search_context, col, q), hits, q.k)

    def _search_context(self, col: Collection, q: Query) -> Context | None:
        """A ``/search`` query's context for the sampler (None: nothing to re-run)."""
        if q.vector is not None:
            x = col.validate([q.vector], what="query")
            vec = None if isinstance(x, TokenBatch) else x[0]
        elif q.point_id is not None:
            found = col.get(q.point_id)
            vec = None if found is None else col.vector_of(found[0])
        else:
            return None
        if vec is None:
            return None
        return Context(col, vec, q.filter, q.point_id, self.service.settings.max_k)

    def save(self, name: str, pname: str, stages: Any, default: bool, replace: bool) -> None:
        """Validate ``stages`` against the collection, then store them as ``pname``."""
        col = self.service.collection(name)
        self.parse(col, stages)
        self.named(name).add(pname, stages, default, replace)

    def quality(self, name: str) -> dict[str, Any]:
        self.service.collection(name)
        rows = [f._asdict() for f in self.sampler.figures(name)]
        return {
            "sample_rate": self.sampler.rate,
            "dropped": self.sampler.dropped,
            "pipelines": rows,
        }

    def evaluate(
        self,
        name: str,
        queries: list[tuple[str, QueryInput]],
        qrels: dict[str, dict[str, float]],
        pipelines: list[str | list[Any]] | None,
        k: int,
        flt: Filter | None = None,
    ) -> dict[str, Any]:
        """nDCG@``k`` and recall@(pipeline's k) per pipeline over labelled queries; point ids
        are compared as strings (JSON object keys)."""
        col = self.service.collection(name)
        if len(queries) > self.service.settings.max_eval_queries:
            raise InvalidInput(
                f"queries: at most {self.service.settings.max_eval_queries}, got {len(queries)}"
            )
        missing = [qid for qid, _ in queries if qid not in qrels]
        if missing:
            raise InvalidInput(f"qrels: no judgements for query {missing[0]!r}")
        if pipelines is None:
            default, named = self.named(name).all()
            pipelines = list(named) or [[{"index": {"k": k}}]]
        results = []
        for i, p in enumerate(pipelines):
            try:
                label, stages = self.resolve(name, p)
                plan = self.parse(col, stages)
            except InvalidInput as e:
                raise InvalidInput(f"pipelines[{i}]: {e.message}", e.details) from e
            ndcg, rec, took = [], [], []
            for qid, q in queries:
                res = run(plan, self.context(col, plan, q, flt))
                got = [str(pid) for pid, _ in res.hits]
                grades = qrels[qid]
                ndcg.append(ndcg_of(got, grades, k) or 0.0)  # no relevant point: 0
                rec.append(recall_at(got, {d for d, g in grades.items() if g > 0}, plan.k))
                took.append(res.took_ms)
            results.append(
                {
                    "pipeline": label if label != INLINE else f"pipelines[{i}]",
                    "stages": stages,
                    "ndcg": statistics.fmean(ndcg),
                    "recall_at_k": statistics.fmean(rec),
                    "recall_k": plan.k,
                    "median_took_ms": statistics.median(took),
                }
            )
        return {"queries": len(queries), "k": k, "results": results}
