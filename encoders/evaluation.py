"""Retrieval quality of an encoder: a BEIR-format loader, exact top-k and nDCG@k.

Used by the SciFact quality gate (``tests/encoders``) and ``bench/encoders.py``. Documents are
``title + " " + text``, as in BEIR/MTEB; scores are exact inner products.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from encoders.base import F32

Qrels = dict[str, dict[str, int]]
K = TypeVar("K", bound=Hashable)  # a document id


@dataclass(frozen=True)
class Beir:
    """A labeled retrieval set: documents, queries (in file order) and relevance labels."""

    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: Qrels

    def subset(self, n_docs: int, n_queries: int, seed: int) -> Beir:
        """The first ``n_queries`` labeled queries over ``n_docs`` documents: every document
        judged for them, topped up with a seeded random draw from the rest (in corpus order)."""
        queries = [i for i, q in enumerate(self.query_ids) if self.qrels.get(q)][:n_queries]
        qids = [self.query_ids[i] for i in queries]
        judged = {d for q in qids for d in self.qrels[q]}
        keep = [i for i, d in enumerate(self.doc_ids) if d in judged]
        if len(keep) > n_docs:
            raise ValueError(f"{len(keep)} judged documents do not fit in n_docs={n_docs}")
        rest = np.array([i for i, d in enumerate(self.doc_ids) if d not in judged])
        fill = np.random.default_rng(seed).choice(rest, size=n_docs - len(keep), replace=False)
        rows = sorted(keep + fill.tolist())
        return Beir(
            doc_ids=[self.doc_ids[i] for i in rows],
            doc_texts=[self.doc_texts[i] for i in rows],
            query_ids=qids,
            query_texts=[self.query_texts[i] for i in queries],
            qrels={q: self.qrels[q] for q in qids},
        )


def load_beir(root: Path, split: str = "test") -> Beir:
    """Read ``corpus.jsonl.gz``, ``queries.<split>.jsonl`` and ``qrels.<split>.tsv``."""
    doc_ids, doc_texts = [], []
    with gzip.open(root / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            doc_ids.append(str(doc["_id"]))
            doc_texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
    qrels: Qrels = {}
    with (root / f"qrels.{split}.tsv").open(encoding="utf-8") as f:
        next(f)  # header: query-id corpus-id score
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    query_ids, query_texts = [], []
    with (root / f"queries.{split}.jsonl").open(encoding="utf-8") as f:
        for line in f:
            query = json.loads(line)
            query_ids.append(str(query["_id"]))
            query_texts.append(query["text"])
    return Beir(doc_ids, doc_texts, query_ids, query_texts, qrels)


def top_k(queries: F32, docs: F32, k: int) -> npt.NDArray[np.int64]:
    """Exact top-``k`` rows of ``docs (n, d)`` by inner product for each of ``queries (nq, d)``.

    Returns ``(nq, min(k, n)) int64``, best first; ties go to the lower row.

    >>> top_k(np.eye(2, dtype=np.float32), np.array([[1, 0], [2, 0], [0, 1]], np.float32), 2)
    array([[1, 0],
           [2, 0]])
    """
    if queries.ndim != 2 or docs.ndim != 2 or queries.shape[1] != docs.shape[1]:
        raise ValueError(f"queries {queries.shape} and docs {docs.shape} must be (·, d)")
    scores = queries @ docs.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64)


def ndcg(docs: Sequence[K], labels: Mapping[K, float], k: int) -> float | None:
    """nDCG@k of one ranking (linear gain, as trec_eval/BEIR); None when no label is > 0.

    >>> round(ndcg(["a", "x", "b"], {"a": 1, "b": 2}, 10), 4)
    0.7602
    """
    ideal = sorted((g for g in labels.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return None
    dcg = sum(labels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(docs[:k]))
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def ndcg_at_k(ranked: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]], k: int) -> float:
    """Mean nDCG@k (linear gain, as trec_eval/BEIR) over queries with at least one label > 0.

    >>> round(ndcg_at_k([["a", "b"], ["x", "a"]], [{"a": 1}, {"a": 1}], 10), 4)
    0.8155
    """
    values = [ndcg(docs, labels, k) for docs, labels in zip(ranked, qrels, strict=True)]
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else 0.0


def paired_bootstrap(diff: npt.NDArray[Any], seed: int = 0, n: int = 10_000) -> tuple[float, float]:
    """95% paired-bootstrap interval of the mean of per-query differences ``diff (q,)``."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def recall_at_k(
    ranked: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]], k: int
) -> float:
    """Mean fraction of each query's relevant documents found in its top ``k``.

    >>> recall_at_k([["a", "b"]], [{"b": 1, "c": 1}], 1), recall_at_k([["a", "b"]], [{"b": 1}], 2)
    (0.0, 1.0)
    """
    values = []
    for docs, labels in zip(ranked, qrels, strict=True):
        relevant = {d for d, g in labels.items() if g > 0}
        if relevant:
            values.append(len(relevant.intersection(docs[:k])) / len(relevant))
    return float(np.mean(values)) if values else 0.0
