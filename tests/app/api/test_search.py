"""Search routes against brute-force numpy on seeded data."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from support import brute_force

D = 12


def load(client: TestClient, n: int = 300) -> tuple[np.ndarray, list[dict[str, object]]]:
    client.post("/collections", json={"name": "c", "dim": D})
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, D)).astype(np.float32)
    pts = [{"id": i, "vector": x[i].tolist(), "payload": {"g": i % 5}} for i in range(n)]
    for i in range(0, n, 100):  # several batches: crosses the seal threshold of the fixture
        client.put("/collections/c/points", json={"points": pts[i : i + 100]})
    return x, pts


def test_search_equals_brute_force(client: TestClient) -> None:
    x, _ = load(client)
    rng = np.random.default_rng(3)
    for q in rng.standard_normal((5, D)).astype(np.float32):
        r = client.post("/collections/c/search", json={"vector": q.tolist(), "k": 10}).json()
        s, i = brute_force(x, np.arange(len(x)), q[None], 10)
        assert [h["id"] for h in r["hits"]] == i[0].tolist()
        np.testing.assert_allclose([h["score"] for h in r["hits"]], s[0], rtol=1e-5)
        assert r["exact"] is True and r["took_ms"] >= 0
        assert r["hits"][0]["payload"] == {"g": r["hits"][0]["id"] % 5}


def test_filtered_search_is_exact_and_full(client: TestClient) -> None:
    x, _ = load(client)
    q = np.ones(D, np.float32)
    flt = {"must": [{"key": "g", "match": 3}]}
    r = client.post("/collections/c/search", json={"vector": q.tolist(), "k": 25, "filter": flt})
    ids = np.arange(len(x))[np.arange(len(x)) % 5 == 3]
    _, want = brute_force(x[ids], ids, q[None], 25)
    assert [h["id"] for h in r.json()["hits"]] == want[0].tolist()


def test_offset_pages_are_stable_and_disjoint(client: TestClient) -> None:
    load(client)
    q = [0.5] * D
    full = client.post("/collections/c/search", json={"vector": q, "k": 30}).json()["hits"]
    pages = []
    for off in (0, 10, 20):
        body = {"vector": q, "k": 10, "offset": off}
        pages += client.post("/collections/c/search", json=body).json()["hits"]
    assert [h["id"] for h in pages] == [h["id"] for h in full]


def test_ties_broken_by_insertion_order(client: TestClient) -> None:
    client.post("/collections", json={"name": "t", "dim": 2})
    pts = [{"id": i, "vector": [1.0, 0.0]} for i in (5, 3, 9, 1)]
    client.put("/collections/t/points", json={"points": pts})
    r = client.post("/collections/t/search", json={"vector": [1, 0], "k": 4}).json()
    assert [h["id"] for h in r["hits"]] == [5, 3, 9, 1]


def test_score_threshold_and_with_vector(client: TestClient) -> None:
    x, _ = load(client)
    q = x[0]
    body = {
        "vector": q.tolist(),
        "k": 50,
        "score_threshold": 5.0,
        "with_vector": True,
        "with_payload": False,
    }
    hits = client.post("/collections/c/search", json=body).json()["hits"]
    assert all(h["score"] >= 5.0 for h in hits)
    assert len(hits) == int(((x @ q) >= 5.0).sum())
    assert all("payload" not in h and len(h["vector"]) == D for h in hits)


def test_search_by_id_excludes_itself(client: TestClient) -> None:
    x, _ = load(client)
    r = client.post("/collections/c/search", json={"id": 17, "k": 5}).json()
    ids = [h["id"] for h in r["hits"]]
    assert 17 not in ids and len(ids) == 5
    scores = x @ x[17]
    scores[17] = -np.inf
    assert ids == np.argsort(-scores, kind="stable")[:5].tolist()


def test_batch_search_matches_single(client: TestClient) -> None:
    load(client)
    rng = np.random.default_rng(5)
    qs = rng.standard_normal((4, D)).tolist()
    searches = [{"vector": q, "k": 3} for q in qs] + [
        {"vector": qs[0], "k": 3, "filter": {"must": [{"key": "g", "match": 1}]}}
    ]
    batch = client.post("/collections/c/search/batch", json={"searches": searches}).json()
    assert len(batch["results"]) == 5
    for s, res in zip(searches, batch["results"], strict=True):
        single = client.post("/collections/c/search", json=s).json()
        assert [h["id"] for h in res["hits"]] == [h["id"] for h in single["hits"]]


def test_deleted_points_never_returned(client: TestClient) -> None:
    x, _ = load(client)
    client.post("/collections/c/points/delete", json={"ids": list(range(0, 300, 2))})
    r = client.post("/collections/c/search", json={"vector": x[0].tolist(), "k": 300}).json()
    ids = [h["id"] for h in r["hits"]]
    assert len(ids) == 150 and all(i % 2 for i in ids)


def test_per_query_index_parameters(client: TestClient) -> None:
    client.post("/collections", json={"name": "h", "dim": D, "index": "HNSW(m=8)"})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, D)).astype(np.float32)
    pts = [{"id": i, "vector": v.tolist()} for i, v in enumerate(x)]
    client.put("/collections/h/points", json={"points": pts})
    client.post("/collections/h/flush")
    assert client.get("/collections/h").json()["segments"] >= 1
    q = x[3]
    body = {"vector": q.tolist(), "k": 10, "params": {"ef_search": 400}}
    r = client.post("/collections/h/search", json=body)
    assert r.status_code == 200 and r.json()["exact"] is False
    assert [h["id"] for h in r.json()["hits"]] == np.argsort(-(x @ q))[:10].tolist()
    r = client.post("/collections/h/search", json={**body, "params": {"nprobe": 4}})
    assert r.status_code == 422 and "takes: ef_search" in r.json()["message"]
    load(client)
    r = client.post("/collections/c/search", json={**body, "params": {"ef_search": 4}})
    assert r.status_code == 422 and "takes: none" in r.json()["message"]
