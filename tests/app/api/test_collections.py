"""Collection routes through httpx against the ASGI app."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_create_get_list_delete(client: TestClient) -> None:
    r = client.post("/collections", json={"name": "docs", "dim": 8, "metric": "cosine"})
    assert r.status_code == 201
    info = r.json()
    assert info["name"] == "docs" and info["dim"] == 8 and info["metric"] == "cosine"
    assert info["index"] == "Flat" and info["count"] == 0 and info["status"] == "ready"
    assert client.get("/collections/docs").json()["dim"] == 8
    names = [c["name"] for c in client.get("/collections").json()["collections"]]
    assert names == ["docs"]
    assert client.delete("/collections/docs").status_code == 204
    assert client.get("/collections/docs").status_code == 404
    assert client.get("/collections").json()["collections"] == []


def test_info_reports_counts_and_bytes(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": 4})
    pts = [{"id": i, "vector": [i, 1, 0, 0]} for i in range(100)]
    client.put("/collections/c/points", json={"points": pts})
    info = client.get("/collections/c").json()
    assert info["count"] == 100
    assert info["indexed_count"] + info["unindexed_count"] == 100
    assert info["bytes_on_disk"] > 100 * 4 * 4
    assert info["bytes_in_memory"] >= 100 * 4 * 4
    assert client.post("/collections/c/flush").status_code == 200
    info = client.get("/collections/c").json()
    assert info["indexed_count"] == 100 and info["unindexed_count"] == 0


def test_duplicate_name_is_409(client: TestClient) -> None:
    assert client.post("/collections", json={"name": "a", "dim": 3}).status_code == 201
    r = client.post("/collections", json={"name": "a", "dim": 3})
    assert r.status_code == 409
    assert r.json() == {"error": "already_exists", "message": "collection 'a' already exists"}


def test_recreate_after_delete_starts_empty(client: TestClient) -> None:
    client.post("/collections", json={"name": "a", "dim": 2})
    client.put("/collections/a/points", json={"points": [{"id": 1, "vector": [1, 2]}]})
    client.delete("/collections/a")
    client.post("/collections", json={"name": "a", "dim": 2})
    assert client.get("/collections/a").json()["count"] == 0
