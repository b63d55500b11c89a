"""Query pipelines (``POST /collections/{name}/query``) against brute-force numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import brute_force, wait_ready

from app.api.app import create_app
from app.config import Settings
from app.pipeline import REGISTRY, rrf

D = 12


def load(client: TestClient, index: str = "Flat", n: int = 300, name: str = "c") -> np.ndarray:
    client.post("/collections", json={"name": name, "dim": D, "index": index})
    x = np.random.default_rng(11).standard_normal((n, D)).astype(np.float32)
    pts = [{"id": i, "vector": x[i].tolist(), "payload": {"g": i % 5}} for i in range(n)]
    for i in range(0, n, 100):  # several batches: sealed segments plus a tail
        r = client.put(f"/collections/{name}/points", json={"points": pts[i : i + 100]})
        assert r.status_code == 200
    return x


def query(client: TestClient, body: dict[str, Any], name: str = "c") -> dict[str, Any]:
    r = client.post(f"/collections/{name}/query", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def queries(n: int = 4) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, D)).astype(np.float32)


def test_exact_equals_brute_force(client: TestClient) -> None:
    x = load(client)
    for q in queries():
        r = query(client, {"vector": q.tolist(), "stages": [{"exact": {"k": 10}}]})
        s, i = brute_force(x, np.arange(len(x)), q[None], 10)
        assert [h["id"] for h in r["hits"]] == i[0].tolist()
        np.testing.assert_allclose([h["score"] for h in r["hits"]], s[0], rtol=1e-5)
        assert r["exact"] is True and r["hits"][0]["payload"] == {"g": r["hits"][0]["id"] % 5}


def test_exact_with_filter_and_by_id(client: TestClient) -> None:
    x = load(client)
    flt = {"must": [{"key": "g", "match": 3}]}
    r = query(client, {"id": 8, "filter": flt, "stages": [{"exact": {"k": 7}}]})
    ids = np.arange(len(x))[(np.arange(len(x)) % 5 == 3) & (np.arange(len(x)) != 8)]
    _, want = brute_force(x[ids], ids, x[8][None], 7)
    assert [h["id"] for h in r["hits"]] == want[0].tolist()


def test_index_then_rescore_equals_brute_force_on_flat(client: TestClient) -> None:
    x = load(client)
    for q in queries():
        body = {"vector": q.tolist(), "stages": [{"index": {"k": 50}}, {"rescore": {"k": 10}}]}
        r = query(client, {**body, "with_payload": False})
        s, i = brute_force(x, np.arange(len(x)), q[None], 10)
        assert [h["id"] for h in r["hits"]] == i[0].tolist()
        np.testing.assert_allclose([h["score"] for h in r["hits"]], s[0], rtol=1e-5)
        assert "payload" not in r["hits"][0]


def test_ids_then_rescore_and_limit(client: TestClient) -> None:
    x = load(client)
    q = queries(1)[0]
    given = [5, 17, 2, 99]
    stages = [{"ids": {"ids": given}}, {"rescore": {"k": 3}}, {"limit": {"k": 2}}]
    r = query(client, {"vector": q.tolist(), "stages": stages})
    want = sorted(given, key=lambda i: -float(x[i] @ q))[:2]
    assert [h["id"] for h in r["hits"]] == want
    r = query(client, {"stages": [{"ids": {"ids": given}}, {"limit": {"k": 3}}]})
    assert [h["id"] for h in r["hits"]] == given[:3]


def reference_rrf(lists: list[list[int]], c: float, k: int) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranked in lists:
        for pos, pid in enumerate(ranked):
            scores[pid] = scores.get(pid, 0.0) + 1 / (c + pos + 1)
    first = {pid: i for i, pid in enumerate(dict.fromkeys(p for lst in lists for p in lst))}
    return sorted(scores.items(), key=lambda t: (-t[1], first[t[0]]))[:k]


def test_rrf_equals_hand_computed() -> None:
    a = [("x", 3.0), ("y", 2.0), ("z", 1.0)]
    b = [("z", 9.0), ("x", 8.0), ("w", 7.0)]
    got = rrf([a, b], 60, 4)
    # x: 1/61 + 1/62; z: 1/63 + 1/61; y: 1/62; w: 1/63
    assert [p for p, _ in got] == ["x", "z", "y", "w"]
    assert got[0][1] == pytest.approx(1 / 61 + 1 / 62) and got[3][1] == pytest.approx(1 / 63)


def test_rrf_stage_over_generators(client: TestClient) -> None:
    x = load(client)
    q = queries(1)[0]
    given = [7, 3, 250]
    fused = {"rrf": {"of": [{"exact": {"k": 5}}, {"ids": {"ids": given}}], "k": 6}}
    r = query(client, {"vector": q.tolist(), "stages": [fused], "explain": True})
    exact = np.argsort(-(x @ q), kind="stable")[:5].tolist()
    want = reference_rrf([exact, given], 60, 6)
    assert [h["id"] for h in r["hits"]] == [p for p, _ in want]
    np.testing.assert_allclose([h["score"] for h in r["hits"]], [s for _, s in want])
    (trace,) = r["explain"]
    assert trace["stage"] == "rrf" and trace["output"] == 6
    assert [t["stage"] for t in trace["of"]] == ["exact", "ids"]
    assert [t["output"] for t in trace["of"]] == [5, 3]


def test_explain_counts(client: TestClient) -> None:
    load(client)
    q = queries(1)[0]
    stages = [{"index": {"k": 40}}, {"rescore": {"k": 10}}, {"limit": {"k": 4}}]
    r = query(client, {"vector": q.tolist(), "stages": stages, "explain": True})
    assert [t["stage"] for t in r["explain"]] == ["index", "rescore", "limit"]
    assert [(t["input"], t["output"]) for t in r["explain"]] == [(0, 40), (40, 10), (10, 4)]
    assert all(t["took_ms"] >= 0 and t["exact"] for t in r["explain"])
    assert len(r["hits"]) == 4 and "recall_estimate" not in r
    assert "explain" not in query(client, {"vector": q.tolist(), "stages": stages})


def test_recall_is_one_for_exact_pipelines(client: TestClient) -> None:
    load(client)
    q = queries(1)[0].tolist()
    for stages in ([{"exact": {"k": 10}}], [{"index": {"k": 30}}, {"rescore": {"k": 10}}]):
        r = query(client, {"vector": q, "stages": stages, "measure_recall": True})
        assert r["recall_estimate"] == 1.0


def test_recall_of_approximate_index_against_brute_force(client: TestClient) -> None:
    x = load(client, index="HNSW(m=4)", n=500, name="h")
    assert client.post("/collections/h/flush").status_code == 200
    k, seen = 20, []
    for q in queries(6):
        body = {
            "vector": q.tolist(),
            "stages": [{"index": {"k": k, "params": {"ef_search": 1}}}],
            "measure_recall": True,
        }
        r = query(client, body, name="h")
        _, truth = brute_force(x, np.arange(len(x)), q[None], k)
        want = len(set(truth[0].tolist()) & {h["id"] for h in r["hits"]}) / k
        assert r["recall_estimate"] == pytest.approx(want) and r["exact"] is False
        seen.append(want)
    assert min(seen) < 1.0  # ef_search=1 really is approximate here


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"stages": []}, "at least one stage"),
        ({"stages": [{"nope": {"k": 3}}]}, "known: exact, filter, hypencoder, ids, index, ip"),
        ({"stages": [{"exact": {"k": 0}}]}, "stages[0].exact.k"),
        ({"stages": [{"exact": {"k": 10**9}}]}, "between 1 and"),
        ({"stages": [{"exact": {"k": 5}}, {"rescore": {"k": 9}}]}, "more than the 5"),
        ({"stages": [{"rrf": {"of": [], "k": 3}}]}, "stages[0].rrf.of"),
        ({"stages": [{"rrf": {"k": 3}}]}, "non-empty list of generator"),
        ({"stages": [{"rrf": {"of": [{"limit": {"k": 2}}], "k": 3}}]}, "not a generator"),
        ({"stages": [{"rescore": {"k": 3}}]}, "start with one of"),
        ({"stages": [{"exact": {"k": 5}}, {"exact": {"k": 5}}]}, "only the first stage"),
        ({"stages": [{"exact": {"k": 5, "ef": 3}}]}, "unknown arguments ef"),
        ({"stages": [{"exact": {"k": 5}, "limit": {"k": 1}}]}, "one key"),
        ({"stages": [{"index": {"k": 5, "params": {"nprobe": 3}}}]}, "stages[0].index"),
        ({"stages": [{"ids": {"ids": []}}]}, "stages[0].ids.ids"),
    ],
)
def test_bad_pipelines_are_422(client: TestClient, body: dict[str, Any], needle: str) -> None:
    load(client, n=10)
    r = client.post("/collections/c/query", json={"vector": [1.0] * D, **body})
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"]


def test_vector_stages_need_a_vector_and_dense_rows(client: TestClient) -> None:
    load(client, n=10)
    r = client.post("/collections/c/query", json={"stages": [{"exact": {"k": 3}}]})
    assert r.status_code == 422 and "stages[0].exact: needs a dense query" in r.json()["message"]
    client.post("/collections", json={"name": "m", "dim": 4, "multivector": True})
    body = {"id": 1, "stages": [{"exact": {"k": 3}}]}
    r = client.post("/collections/m/query", json=body)
    assert r.status_code == 422 and "multi-vector" in r.json()["message"]


def test_registry_is_explicit() -> None:
    assert sorted(REGISTRY) == [
        "exact", "filter", "hypencoder", "ids", "index", "ip", "lexical", "limit", "maxsim",
        "rescore", "rrf", "threshold", "weighted",
    ]  # fmt: skip


def test_text_query_uses_the_collection_encoder(client: TestClient) -> None:
    client.post("/collections", json={"name": "t", "encoder": "test-hash(dim=32)"})
    docs = ["red apples and pears", "a fast sports car", "green apples", "the car is red"]
    pts = [{"id": i, "text": t} for i, t in enumerate(docs)]
    assert client.put("/collections/t/points", json={"points": pts}).status_code == 200
    search = client.post("/collections/t/search", json={"text": "apples", "k": 3}).json()
    r = query(client, {"text": "apples", "stages": [{"exact": {"k": 3}}]}, name="t")
    assert [h["id"] for h in r["hits"]] == [h["id"] for h in search["hits"]]


@pytest.mark.parametrize(
    ("n", "groups", "strategy"), [(600, 40, "exact scan"), (6000, 2, "filtered index")]
)
def test_selective_filters_fill_k_and_explain_says_how(
    tmp_path: Path, n: int, groups: int, strategy: str
) -> None:
    # one sealed segment of all n points (flush), so the strategy does not hang on timing
    with TestClient(create_app(Settings(data_dir=tmp_path / "d", seal_threshold=10**6))) as c:
        wait_ready(c)
        _selective(c, n, groups, strategy)


def _selective(client: TestClient, n: int, groups: int, strategy: str) -> None:
    loose = "HNSW(m=4,ef_construction=8,ef_search=4)"
    client.post("/collections", json={"name": "h", "dim": D, "index": loose})
    x = np.random.default_rng(17).standard_normal((n, D)).astype(np.float32)
    pts = [{"id": i, "vector": x[i].tolist(), "payload": {"g": i % groups}} for i in range(n)]
    for i in range(0, n, 1000):
        assert (
            client.put("/collections/h/points", json={"points": pts[i : i + 1000]}).status_code
            == 200
        )
    client.post("/collections/h/flush")
    flt = {"must": [{"key": "g", "match": 1}]}
    allowed = np.arange(n)[np.arange(n) % groups == 1]
    for q in queries(3):
        body = {
            "vector": q.tolist(),
            "filter": flt,
            "stages": [{"index": {"k": 10}}],
            "explain": True,
        }
        r = query(client, body, name="h")
        assert len(r["hits"]) == 10 and all(h["id"] % groups == 1 for h in r["hits"])
        assert strategy in r["explain"][0]["note"]
        if strategy == "exact scan":
            _, want = brute_force(x[allowed], allowed, q[None], 10)
            assert [h["id"] for h in r["hits"]] == want[0].tolist()
