"""``bench.pipelines`` on a tiny synthetic set (its core, in-process: no SciFact, no head), and
on real SciFact where ``../shared/data`` and the cached MiniLM vectors are present."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.hypencoder import CACHE, HEAD_DIR, SCIFACT, flat_index, load_split
from bench.pipelines import (
    BASELINE,
    Data,
    load,
    per_query_ndcg,
    pipelines,
    quality,
    run,
    scifact,
    service,
)
from bench.pipelines_report import markdown
from index.hypencoder import HypencoderReranker
from index.hypencoder_head import HyperHead


def synthetic(n: int = 300, nq: int = 24, dim: int = 16, seed: int = 0) -> Data:
    """Unit doc vectors with texts of random words; each query is a noisy copy of one doc
    (grade 2) with three of its words, plus one other doc judged grade 1."""
    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((n, dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    vocab = [f"w{i:03d}" for i in range(400)]
    texts = [" ".join(rng.choice(vocab, 12)) for _ in range(n)]
    src = rng.choice(n, nq, replace=False)
    other = (src + 1 + rng.integers(0, n - 1, nq)) % n
    queries = docs[src] + 0.5 * rng.standard_normal((nq, dim)).astype(np.float32)
    return Data(
        [f"d{i}" for i in range(n)],
        docs,
        texts,
        [f"q{i}" for i in range(nq)],
        queries.astype(np.float32),
        [" ".join(texts[s].split()[:3]) for s in src],
        [{f"d{s}": 2, f"d{o}": 1} for s, o in zip(src, other, strict=True)],
    )


def numpy_ndcg(data: Data, k: int = 10) -> float:
    """Mean linear-gain nDCG@k of exact inner-product top-k, all in numpy."""
    top = np.argsort(-(data.query_vectors @ data.doc_vectors.T), axis=1)[:, :k]
    values = []
    for rows, grades in zip(top, data.qrels, strict=True):
        gains = np.array([grades.get(data.doc_ids[r], 0) for r in rows], dtype=np.float64)
        ideal = np.sort(np.array(list(grades.values()), dtype=np.float64))[::-1][:k]
        discount = 1 / np.log2(np.arange(2, k + 2))
        values.append(gains @ discount[: len(gains)] / (ideal @ discount[: len(ideal)]))
    return float(np.mean(values))


def test_core_on_synthetic_set(tmp_path: Path) -> None:
    data = synthetic()
    result = run(data, tmp_path / "data", None, heads=[], rounds=1, latency_queries=6)
    rows = result["pipelines"]
    assert list(rows) == list(pipelines([]))  # no head: no Hypencoder rows
    assert result["queries"] == 24 and result["docs"] == 300
    assert math.isclose(rows[BASELINE]["ndcg10"], numpy_ndcg(data), abs_tol=1e-12)
    for label, row in rows.items():
        assert 0.0 <= row["ndcg10"] <= 1.0
        assert math.isclose(row["evaluate_ndcg10"], row["ndcg10"], abs_tol=1e-12), label
        if label != BASELINE:
            lo, hi = row["diff_ci95"]
            assert lo <= row["diff"] <= hi and sum(row["wins_ties_losses"]) == 24
    assert rows["lexical (BM25)"]["ndcg10"] > 0.5  # the query words come from the judged doc
    assert set(result["candidate_recall100"]) == {"exact top-100", "lexical top-100", "RRF top-100"}
    over = result["overhead"]
    assert over["queries"] == 6 and all(v > 0 for v in over["median_ms"].values())
    assert all(v > 0 for v in over["ratios"].values())
    result.update(
        command="python -m bench.pipelines",
        machine={"sgemm_2t": 1e11, "read_bw_1t": 2e10},
        loadavg_1_5_15=[1.0, 1.0, 1.0],
    )
    text = markdown(result)
    assert "## Query pipelines on SciFact" in text and "| hybrid RRF |" in text


def scifact_or_skip() -> None:
    if not (SCIFACT / "corpus.jsonl.gz").exists():
        pytest.skip(f"SciFact is not under {SCIFACT} (see ../shared/data/README.md)")
    if not (CACHE / "scifact-minilm-queries-test.npz").exists():
        pytest.skip(f"no cached SciFact MiniLM vectors under {CACHE} (python -m bench.hypencoder)")


def test_scifact_exact_matches_offline_flat(tmp_path: Path) -> None:
    """Dense exact through the service ranks the first 30 test queries as a flat index does."""
    scifact_or_skip()
    data = scifact(limit=30)
    offline = flat_index(data.doc_vectors).search(data.query_vectors, 10).ids
    lists = [[data.doc_ids[j] for j in row] for row in offline]
    with service(tmp_path / "data", None) as client:
        load(client, data)
        rows = quality(client, data, {BASELINE: pipelines([])[BASELINE]}, {BASELINE})
    expected = float(per_query_ndcg(lists, data.qrels).mean())
    assert math.isclose(rows[BASELINE]["ndcg10"], expected, abs_tol=1e-12)
    assert math.isclose(rows[BASELINE]["evaluate_ndcg10"], expected, abs_tol=1e-12)


@pytest.mark.slow
def test_scifact_hypencoder_stage_matches_offline_rerank(tmp_path: Path) -> None:
    """The service's Hypencoder stage (which encodes the claim itself) re-ranks the first 20
    test queries as ``bench.hypencoder`` does offline from the cached query tokens."""
    scifact_or_skip()
    if not (HEAD_DIR / "config.json").exists():
        pytest.skip(f"no Hypencoder head at {HEAD_DIR} (python -m bench.hypencoder train)")
    data = scifact(limit=20)
    _, split = load_split("test")
    index = flat_index(data.doc_vectors)
    rr = HypencoderReranker(HyperHead.load(HEAD_DIR), index)
    cand = index.search(data.query_vectors, 100).ids
    offline = [rr.rerank(split.tokens[i], cand[i], 10).ids[0] for i in range(20)]
    expected = per_query_ndcg([[data.doc_ids[j] for j in r] for r in offline], data.qrels)
    label = f"dense + Hypencoder ({HEAD_DIR.name})"
    pipes = {n: s for n, s in pipelines([HEAD_DIR.name]).items() if n in (BASELINE, label)}
    with service(tmp_path / "data", HEAD_DIR.parent) as client:
        load(client, data)
        rows = quality(client, data, pipes, set())
    assert math.isclose(rows[label]["ndcg10"], float(expected.mean()), abs_tol=1e-9)
