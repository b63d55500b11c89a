"""Point routes: upsert, get, delete, scroll, count."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient


def make(client: TestClient, n: int = 30, dim: int = 4) -> list[dict[str, object]]:
    client.post("/collections", json={"name": "c", "dim": dim})
    rng = np.random.default_rng(7)
    pts = [
        {
            "id": i if i % 3 else f"s{i}",
            "vector": rng.standard_normal(dim).tolist(),
            "payload": {"n": i, "tag": ["red", "blue"][i % 2], "meta": {"year": 2000 + i}},
        }
        for i in range(n)
    ]
    r = client.put("/collections/c/points", json={"points": pts})
    assert r.status_code == 200 and r.json()["upserted"] == n and r.json()["seq"] >= 1
    return pts


def test_get_point_with_and_without_vector(client: TestClient) -> None:
    pts = make(client)
    r = client.get("/collections/c/points/1")
    assert r.status_code == 200
    assert r.json() == {"id": 1, "payload": pts[1]["payload"]}
    r = client.get("/collections/c/points/s3", params={"with_vector": "true"})
    np.testing.assert_allclose(r.json()["vector"], pts[3]["vector"], rtol=1e-6)
    assert client.get("/collections/c/points/999").status_code == 404


def test_upsert_replaces_by_id(client: TestClient) -> None:
    make(client)
    r = client.put(
        "/collections/c/points",
        json={"points": [{"id": 1, "vector": [9, 9, 9, 9], "payload": {"new": True}}]},
    )
    assert r.status_code == 200
    assert client.get("/collections/c").json()["count"] == 30
    got = client.get("/collections/c/points/1", params={"with_vector": True}).json()
    assert got["payload"] == {"new": True} and got["vector"] == [9, 9, 9, 9]
    hits = client.post("/collections/c/search", json={"vector": [1, 1, 1, 1], "k": 30}).json()
    assert [h["id"] for h in hits["hits"]].count(1) == 1


def test_int_and_string_ids_are_distinct(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": 2})
    client.put(
        "/collections/c/points",
        json={"points": [{"id": 7, "vector": [1, 0]}, {"id": "7", "vector": [0, 1]}]},
    )
    assert client.get("/collections/c").json()["count"] == 2
    r = client.post("/collections/c/points/delete", json={"ids": ["7"]})
    assert r.json()["deleted"] == 1
    assert client.get("/collections/c/points/7").json()["id"] == 7


def test_delete_by_ids_and_filter(client: TestClient) -> None:
    make(client)
    r = client.post("/collections/c/points/delete", json={"ids": [1, 2, "s3", 12345]})
    assert r.status_code == 200 and r.json()["deleted"] == 3
    flt = {"must": [{"key": "tag", "match": "red"}]}
    before = client.post("/collections/c/points/count", json={"filter": flt}).json()["count"]
    r = client.post("/collections/c/points/delete", json={"filter": flt})
    assert r.json()["deleted"] == before
    assert client.post("/collections/c/points/count", json={"filter": flt}).json()["count"] == 0
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 27 - before


def test_scroll_pages_cover_everything_once(client: TestClient) -> None:
    make(client)
    seen: list[object] = []
    cursor = None
    while True:
        body = {"limit": 7, "with_vector": True}
        if cursor:
            body["cursor"] = cursor
        page = client.post("/collections/c/points/scroll", json=body).json()
        assert all(len(p["vector"]) == 4 for p in page["points"])
        seen += [p["id"] for p in page["points"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 30 and len({str(s) for s in seen}) == 30


def test_scroll_and_count_with_filter(client: TestClient) -> None:
    make(client)
    flt = {"must": [{"key": "meta.year", "range": {"gte": 2010, "lt": 2020}}]}
    page = client.post("/collections/c/points/scroll", json={"filter": flt, "limit": 100}).json()
    assert sorted(p["payload"]["n"] for p in page["points"]) == list(range(10, 20))
    assert client.post("/collections/c/points/count", json={"filter": flt}).json() == {"count": 10}
    flt = {"should": [{"key": "n", "match": {"any": [1, 2]}}, {"has_id": ["s3"]}]}
    assert client.post("/collections/c/points/count", json={"filter": flt}).json() == {"count": 3}
