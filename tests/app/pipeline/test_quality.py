"""Measured quality: the recall sampler against an offline computation on the same queries,
its Prometheus gauge, and ``/evaluate`` against hand-computed nDCG and recall."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import brute_force, wait_ready

from app.api.app import create_app
from app.config import Settings
from app.pipeline.quality import RecallSampler

D, N = 12, 600
LOOSE_HNSW = "HNSW(m=4,ef_construction=8,ef_search=4)"  # approximate enough to miss some


@pytest.fixture
def sampled(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", seal_threshold=200, recall_sample_rate=1.0)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


def load(client: TestClient) -> np.ndarray:
    client.post("/collections", json={"name": "c", "dim": D, "index": LOOSE_HNSW})
    x = np.random.default_rng(21).standard_normal((N, D)).astype(np.float32)
    pts = [{"id": i, "vector": x[i].tolist(), "payload": {"g": i % 3}} for i in range(N)]
    for i in range(0, N, 100):
        assert (
            client.put("/collections/c/points", json={"points": pts[i : i + 100]}).status_code
            == 200
        )
    return x


def test_sampled_recall_equals_offline_recall(sampled: TestClient) -> None:
    x = load(sampled)
    qs = np.random.default_rng(22).standard_normal((25, D)).astype(np.float32)
    got_q, got_s = [], []
    for q in qs:
        r = sampled.post(
            "/collections/c/query", json={"vector": q.tolist(), "stages": [{"index": {"k": 10}}]}
        )
        got_q.append([h["id"] for h in r.json()["hits"]])
        r = sampled.post("/collections/c/search", json={"vector": q.tolist(), "k": 10})
        got_s.append([h["id"] for h in r.json()["hits"]])
    app: Any = sampled.app
    app.state.service.pipelines.sampler.drain()
    _, truth = brute_force(x, np.arange(N), qs, 10)
    want_q = np.mean(
        [len(set(g) & set(t)) / 10 for g, t in zip(got_q, truth.tolist(), strict=True)]
    )
    want_s = np.mean(
        [len(set(g) & set(t)) / 10 for g, t in zip(got_s, truth.tolist(), strict=True)]
    )
    assert want_q < 1.0  # the index really is approximate, so the figure means something
    rows = {p["pipeline"]: p for p in sampled.get("/collections/c/quality").json()["pipelines"]}
    assert rows["<inline>"]["samples"] == 25 and rows["search"]["samples"] == 25
    assert rows["<inline>"]["recall"] == pytest.approx(want_q)
    assert rows["search"]["recall"] == pytest.approx(want_s)
    text = sampled.get("/metrics").text
    line = next(
        t
        for t in text.splitlines()
        if t.startswith('innerspace_recall{collection="c",k="10",pipeline="search"}')
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(want_s)


def test_sampler_off_by_default_and_bounded(client: TestClient) -> None:
    r = client.post("/collections", json={"name": "c", "dim": 2})
    assert r.status_code == 201
    client.put("/collections/c/points", json={"points": [{"id": 1, "vector": [1.0, 0.0]}]})
    client.post("/collections/c/search", json={"vector": [1.0, 0.0], "k": 1})
    assert client.get("/collections/c/quality").json() == {
        "sample_rate": 0.0,
        "dropped": 0,
        "pipelines": [],
    }
    assert client.get("/collections/nope/quality").status_code == 404
    with pytest.raises(ValueError, match="rate"):
        RecallSampler(1.5)


def ndcg(got: list[str], grades: dict[str, float], k: int) -> float:
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(got[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def test_evaluate_matches_hand_computed_metrics(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    x = np.random.default_rng(3).standard_normal((80, D)).astype(np.float32)
    client.put(
        "/collections/c/points",
        json={"points": [{"id": i, "vector": x[i].tolist()} for i in range(80)]},
    )
    qs = np.random.default_rng(4).standard_normal((6, D)).astype(np.float32)
    _, top = brute_force(x, np.arange(80), qs, 20)
    rng = np.random.default_rng(5)
    qrels = {  # some relevant points inside the exact top 20, some outside
        f"q{j}": {
            str(int(d)): float(rng.integers(1, 3)) for d in (*top[j][[0, 3, 15]], (j * 7) % 80)
        }
        for j in range(len(qs))
    }
    queries = [{"id": f"q{j}", "vector": q.tolist()} for j, q in enumerate(qs)]
    pipes = [[{"exact": {"k": 20}}], [{"exact": {"k": 20}}, {"limit": {"k": 2}}]]
    r = client.post(
        "/collections/c/evaluate", json={"queries": queries, "qrels": qrels, "pipelines": pipes}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["queries"] == 6 and out["k"] == 10
    for res, cut in zip(out["results"], (20, 2), strict=True):
        got = [[str(int(d)) for d in top[j][:cut]] for j in range(len(qs))]
        want_ndcg = np.mean([ndcg(got[j], qrels[f"q{j}"], 10) for j in range(len(qs))])
        want_rec = np.mean(
            [
                len(set(got[j]) & set(qrels[f"q{j}"])) / min(len(qrels[f"q{j}"]), cut)
                for j in range(len(qs))
            ]
        )
        assert res["ndcg"] == pytest.approx(want_ndcg) and res["recall_at_k"] == pytest.approx(
            want_rec
        )
        assert res["recall_k"] == cut


def test_evaluate_rejects_bad_sets(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": 2})
    q = [{"id": "a", "vector": [1.0, 0.0]}]
    r = client.post("/collections/c/evaluate", json={"queries": q, "qrels": {"b": {"1": 1}}})
    assert r.status_code == 422 and "no judgements for query 'a'" in r.json()["message"]
    bad = {"queries": q, "qrels": {"a": {"1": 1}}, "pipelines": [[{"exact": {"k": 2}}], "nope"]}
    r = client.post("/collections/c/evaluate", json=bad)
    assert r.status_code == 404 and "nope" in r.json()["message"]
    r = client.post("/collections/c/evaluate", json={"queries": [], "qrels": {}})
    assert r.status_code == 422
