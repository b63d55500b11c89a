"""Quality gate: the default encoder on a fixed SciFact subset, exact inner-product search.

300 test claims over 1,000 abstracts (every judged abstract plus a seeded draw of the rest);
the full corpus (5,183 abstracts, nDCG@10 0.647) runs in ``bench/encoders.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoders import Encoder
from encoders.evaluation import Beir, load_beir, ndcg_at_k, recall_at_k, top_k

#: ``<repo>/../shared/data/scifact``: real data beside the checkout, absent in a user's clone.
SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifact"
N_DOCS, N_QUERIES, SEED = 1000, 300, 0
#: Measured with ``minilm`` (max_tokens=256) on this subset; see encoders/NOTES.md.
EXPECTED_NDCG10 = 0.7994
#: int8 kernels differ a little between CPUs (AVX2 / AVX-512 VNNI); a real regression is larger.
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def subset() -> Beir:
    if not (SCIFACT / "corpus.jsonl.gz").is_file():
        pytest.skip(f"SciFact not found at {SCIFACT} (shared data sits beside the repository)")
    return load_beir(SCIFACT).subset(N_DOCS, N_QUERIES, SEED)


def test_subset_is_fixed(subset: Beir) -> None:
    assert (len(subset.doc_ids), len(subset.query_ids)) == (N_DOCS, N_QUERIES)
    judged = {d for labels in subset.qrels.values() for d in labels}
    assert judged <= set(subset.doc_ids)
    assert subset.doc_ids[:3] == ["5836", "33370", "87758"]


def test_scifact_ndcg_gate(subset: Beir, minilm: Encoder) -> None:
    docs = minilm.encode_documents(subset.doc_texts).dense
    queries = minilm.encode_queries(subset.query_texts).dense
    rows = top_k(queries, docs, 100)
    ranked = [[subset.doc_ids[j] for j in row] for row in rows]
    labels = [subset.qrels[q] for q in subset.query_ids]
    ndcg = ndcg_at_k(ranked, labels, 10)
    recall = recall_at_k(ranked, labels, 100)
    print(f"SciFact subset: nDCG@10 {ndcg:.4f}, recall@100 {recall:.4f}")
    assert np.isfinite(docs).all()
    assert ndcg >= EXPECTED_NDCG10 - TOLERANCE, f"nDCG@10 {ndcg:.4f} < {EXPECTED_NDCG10}"
