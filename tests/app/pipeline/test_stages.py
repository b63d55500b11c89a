"""The lexical, fusion, re-scoring and cut stages, each against a reference computed apart."""

from __future__ import annotations

from typing import Any

import bm25s
import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import brute_force

from app.pipeline import weighted
from index.maxsim import chamfer

D = 8
DOCS = [
    "red apples and green pears from the orchard",
    "a fast red sports car on the road",
    "green apples are sour",
    "the car is parked near the orchard",
    "pears ripen after the harvest",
    "sports news: the race car crashed",
    "apple pie with cinnamon",
    "the orchard sells apples pears and plums",
]


def load_texts(client: TestClient, name: str = "t") -> np.ndarray:
    client.post("/collections", json={"name": name, "dim": D})
    x = np.random.default_rng(5).standard_normal((len(DOCS), D)).astype(np.float32)
    pts = [
        {"id": i, "vector": x[i].tolist(), "payload": {"text": t, "g": i % 2}}
        for i, t in enumerate(DOCS)
    ]
    pts.append({"id": 99, "vector": [0.0] * D, "payload": {"title": "no text field"}})
    assert client.put(f"/collections/{name}/points", json={"points": pts}).status_code == 200
    return x


def query(client: TestClient, body: dict[str, Any], name: str = "t") -> dict[str, Any]:
    r = client.post(f"/collections/{name}/query", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def bm25_reference(texts: list[str], q: str) -> np.ndarray:
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    words = bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False)[0]
    return np.asarray(retriever.get_scores(words))


@pytest.mark.parametrize("q", ["apples pears", "red car", "orchard", "zebra"])
def test_lexical_equals_bm25s(client: TestClient, q: str) -> None:
    load_texts(client)
    r = query(client, {"text": q, "stages": [{"lexical": {"k": 5}}]})
    ref = bm25_reference(DOCS, q)
    order = sorted((i for i in range(len(DOCS)) if ref[i] > 0), key=lambda i: (-ref[i], i))[:5]
    assert [h["id"] for h in r["hits"]] == order
    np.testing.assert_allclose([h["score"] for h in r["hits"]], ref[order], rtol=1e-5)
    assert r["exact"] is True


def test_lexical_sees_every_acknowledged_write_and_the_filter(client: TestClient) -> None:
    load_texts(client)
    body = {"text": "cinnamon", "stages": [{"lexical": {"k": 3}}]}
    assert [h["id"] for h in query(client, body)["hits"]] == [6]
    pts = [{"id": 7, "vector": [0.1] * D, "payload": {"text": "cinnamon rolls", "g": 0}}]
    client.put("/collections/t/points", json={"points": pts})
    assert {h["id"] for h in query(client, body)["hits"]} == {6, 7}
    client.post("/collections/t/points/delete", json={"ids": [6]})
    assert [h["id"] for h in query(client, body)["hits"]] == [7]
    flt = {"must": [{"key": "g", "match": 1}]}
    assert query(client, {**body, "filter": flt})["hits"] == []


def test_lexical_needs_text_and_a_plain_field(client: TestClient) -> None:
    load_texts(client)
    r = client.post(
        "/collections/t/query", json={"vector": [0.0] * D, "stages": [{"lexical": {"k": 3}}]}
    )
    assert r.status_code == 422 and "stages[0].lexical: needs the query 'text'" in r.text
    bad = {"text": "x", "stages": [{"lexical": {"k": 3, "field": "a.b"}}]}
    r = client.post("/collections/t/query", json=bad)
    assert r.status_code == 422 and "stages[0].lexical.field" in r.text


def test_hybrid_rrf_equals_hand_composed_stages(client: TestClient) -> None:
    x = load_texts(client)
    q = np.random.default_rng(9).standard_normal(D).astype(np.float32)
    dense = {"exact": {"k": 5}}
    lex = {"lexical": {"k": 5}}
    fused = query(
        client,
        {
            "vector": q.tolist(),
            "text": "apples orchard",
            "stages": [{"rrf": {"of": [dense, lex], "k": 4}}],
        },
    )
    a = [h["id"] for h in query(client, {"vector": q.tolist(), "stages": [dense]})["hits"]]
    b = [h["id"] for h in query(client, {"text": "apples orchard", "stages": [lex]})["hits"]]
    xs = np.vstack([x, np.zeros((1, D), np.float32)])  # point 99: the zero vector
    _, truth = brute_force(xs, np.arange(len(xs)), q[None], 5)
    assert a == [i if i < len(DOCS) else 99 for i in truth[0].tolist()]
    scores: dict[int, float] = {}
    for hits in (a, b):
        for rank, pid in enumerate(hits, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1 / (60 + rank)
    first = {pid: i for i, pid in enumerate(dict.fromkeys(a + b))}
    want = sorted(scores, key=lambda p: (-scores[p], first[p]))[:4]
    assert [h["id"] for h in fused["hits"]] == want


def test_weighted_fusion_matches_a_numpy_reference(client: TestClient) -> None:
    load_texts(client)
    q = np.random.default_rng(2).standard_normal(D).astype(np.float32)
    dense = {"exact": {"k": 6}}
    lex = {"lexical": {"k": 6}}
    body = {"vector": q.tolist(), "text": "red car orchard"}
    a = query(client, {"vector": body["vector"], "stages": [dense]})["hits"]
    b = query(client, {"text": body["text"], "stages": [lex]})["hits"]
    ref: dict[Any, float] = {}
    for hits, w in ((a, 0.3), (b, 0.7)):
        s = np.array([h["score"] for h in hits])
        norm = (s - s.min()) / (s.max() - s.min())
        for h, v in zip(hits, norm, strict=True):
            ref[h["id"]] = ref.get(h["id"], 0.0) + w * v
    stage = {"weighted": {"of": [dense, lex], "weights": [0.3, 0.7], "k": 5}}
    got = query(client, {**body, "stages": [stage]})["hits"]
    want = sorted(ref.items(), key=lambda t: -t[1])[:5]
    assert [h["id"] for h in got] == [p for p, _ in want]
    np.testing.assert_allclose([h["score"] for h in got], [v for _, v in want], rtol=1e-6)


def test_weighted_zscore_and_equal_weights() -> None:
    lists = [[("a", 3.0), ("b", 1.0)], [("b", 5.0), ("c", 1.0)]]
    out = dict(weighted(lists, [1.0, 1.0], "zscore", 3))
    assert out == pytest.approx({"a": 1.0, "b": 0.0, "c": -1.0})
    r = weighted(lists, [1.0, 2.0], "none", 1)
    assert r == [("b", 11.0)]


def test_filter_threshold_and_ip_stages(client: TestClient) -> None:
    x = load_texts(client)
    q = np.random.default_rng(4).standard_normal(D).astype(np.float32)
    stages = [
        {"exact": {"k": 8}},
        {"filter": {"where": {"must": [{"key": "g", "match": 0}]}}},
        {"threshold": {"min": 0.0}},
        {"ip": {"k": 3}},
    ]
    r = query(client, {"vector": q.tolist(), "stages": stages, "explain": True})
    s = x @ q
    keep = [i for i in np.argsort(-s)[:8] if i % 2 == 0 and s[i] >= 0][:3]
    assert [h["id"] for h in r["hits"]] == [int(i) for i in keep]
    trace = r["explain"]
    assert [t["stage"] for t in trace] == ["exact", "filter", "threshold", "ip"]
    assert trace[1]["input"] == 8 and trace[1]["output"] <= 8
    assert keep and trace[-1]["min_score"] == pytest.approx(float(s[keep[-1]]), rel=1e-5)


@pytest.mark.parametrize(
    ("stage", "needle"),
    [
        ({"filter": {"where": {"must": [{"key": "g", "nope": 1}]}}}, "stages[1].filter.where"),
        ({"threshold": {"min": "high"}}, "stages[1].threshold.min"),
        ({"maxsim": {"k": 3}}, "'maxsim' works on multi-vector collections"),
        ({"weighted": {"of": [{"exact": {"k": 3}}], "weights": [1, 2], "k": 3}}, "weights"),
    ],
)
def test_bad_stages_are_422(client: TestClient, stage: dict[str, Any], needle: str) -> None:
    load_texts(client)
    if "weighted" in stage:
        stages = [stage]
        needle = "stages[0].weighted.weights"
    else:
        stages = [{"exact": {"k": 5}}, stage]
    r = client.post("/collections/t/query", json={"vector": [1.0] * D, "stages": stages})
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"]


def test_maxsim_equals_brute_force_chamfer(client: TestClient) -> None:
    client.post("/collections", json={"name": "m", "dim": 6, "multivector": True})
    rng = np.random.default_rng(8)
    docs = [rng.standard_normal((int(rng.integers(2, 6)), 6)).astype(np.float32) for _ in range(40)]
    pts = [{"id": i, "vectors": d.tolist()} for i, d in enumerate(docs)]
    assert client.put("/collections/m/points", json={"points": pts}).status_code == 200
    qt = rng.standard_normal((3, 6)).astype(np.float32)
    ids = list(range(0, 40, 3))
    r = query(
        client,
        {"vectors": qt.tolist(), "stages": [{"ids": {"ids": ids}}, {"maxsim": {"k": 5}}]},
        "m",
    )
    ref = sorted(ids, key=lambda i: -chamfer(qt, docs[i]))[:5]
    assert [h["id"] for h in r["hits"]] == ref
    np.testing.assert_allclose(
        [h["score"] for h in r["hits"]], [chamfer(qt, docs[i]) for i in ref], rtol=1e-4
    )
    full = query(
        client,
        {"vectors": qt.tolist(), "stages": [{"index": {"k": 40}}, {"maxsim": {"k": 5}}]},
        "m",
    )
    assert [h["id"] for h in full["hits"]] == sorted(
        range(40), key=lambda i: -chamfer(qt, docs[i])
    )[:5]
    r2 = client.post(
        "/collections/m/query", json={"vectors": qt.tolist(), "stages": [{"exact": {"k": 3}}]}
    )
    assert r2.status_code == 422 and "'exact' works on dense collections" in r2.text


def test_text_rides_along_and_two_query_vectors_do_not(client: TestClient) -> None:
    x = load_texts(client)
    q = x[2] + 0.01
    dense = query(client, {"vector": q.tolist(), "stages": [{"exact": {"k": 3}}]})
    both = query(client, {"vector": q.tolist(), "text": "apples", "stages": [{"exact": {"k": 3}}]})
    assert both["hits"] == dense["hits"]  # no text stage: the text is ignored
    r = client.post(
        "/collections/t/query",
        json={"vector": q.tolist(), "id": 1, "stages": [{"exact": {"k": 3}}]},
    )
    assert (
        r.status_code == 422 and "at most one of 'vector', 'vectors' or 'id'" in r.json()["message"]
    )
