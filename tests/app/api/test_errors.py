"""Every bad input gets its status and one error shape: {error, message, details?}."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings


def shape(r: Any, status: int, code: str, *fragments: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) <= {"error", "message", "details"}
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    for f in fragments:
        assert f in body["message"], (f, body["message"])


@pytest.fixture
def col(client: TestClient) -> TestClient:
    assert client.post("/collections", json={"name": "c", "dim": 3}).status_code == 201
    return client


def test_unknown_collection_404(client: TestClient) -> None:
    for method, url, body in [
        ("GET", "/collections/zz", None),
        ("DELETE", "/collections/zz", None),
        ("PUT", "/collections/zz/points", {"points": [{"id": 1, "vector": [1, 2, 3]}]}),
        ("POST", "/collections/zz/search", {"vector": [1, 2, 3]}),
        ("POST", "/collections/zz/points/count", {}),
    ]:
        shape(client.request(method, url, json=body), 404, "not_found", "'zz'")


def test_unknown_route_and_method(client: TestClient) -> None:
    shape(client.get("/nowhere"), 404, "not_found")
    shape(client.patch("/collections"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "bad name!", "dim": 3}, "bad collection name"),
        ({"name": "x", "dim": 0}, "dim"),
        ({"name": "x", "dim": 10**9}, "dim must be between"),
        ({"name": "x", "dim": 3, "metric": "l2"}, "metric"),
        ({"name": "x", "dim": 3, "index": "Nope"}, "HNSW, IVF"),
        ({"name": "x", "dim": 3, "index": "Flat(("}, "bad index spec"),
        ({"name": "x"}, "give 'dim'"),
        ({"name": "x", "dim": 3, "colour": 1}, "colour"),
    ],
)
def test_bad_collection_create_422(client: TestClient, body: dict[str, Any], fragment: str) -> None:
    shape(client.post("/collections", json=body), 422, "invalid_input", fragment)


@pytest.mark.parametrize(
    ("points", "fragment"),
    [
        ([{"id": 1, "vector": [1, 2]}], "points[0].vector has 2 dimensions"),
        ([{"id": 1, "vector": [1, 2, 3]}, {"id": 2, "vector": [1, 2, 3, 4]}], "points[1]"),
        ([{"id": 1, "vector": [1, 2, 1e39]}], "points[0].vector contains NaN or infinity"),
        ([{"id": -1, "vector": [1, 2, 3]}], "points[0]"),
        ([{"id": 1.5, "vector": [1, 2, 3]}], "points[0].id"),
        ([{"id": True, "vector": [1, 2, 3]}], "points[0].id"),
        ([{"id": "", "vector": [1, 2, 3]}], "points[0]"),
        ([{"id": 1, "vector": [1, "a", 3]}], "points[0].vector[1]"),
        ([{"id": 1, "vector": [1, 2, 3]}, {"id": 1, "vector": [1, 2, 3]}], "repeats"),
        ([{"id": 1, "vector": [1, 2, 3], "payload": [1]}], "points[0].payload"),
        ([], "points"),
    ],
)
def test_bad_points_422(col: TestClient, points: list[Any], fragment: str) -> None:
    r = col.put("/collections/c/points", json={"points": points})
    shape(r, 422, "invalid_input", fragment)
    assert col.get("/collections/c").json()["count"] == 0  # all-or-nothing


def test_nan_and_infinity_literals_422(col: TestClient) -> None:
    for lit in ("NaN", "Infinity", "-Infinity"):
        raw = '{"points": [{"id": 1, "vector": [1, LIT, 3]}]}'.replace("LIT", lit)
        r = col.put(
            "/collections/c/points", content=raw, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, lit
        assert "NaN or infinity" in r.json()["message"] or "finite" in r.json()["message"]


def test_malformed_json_400(col: TestClient) -> None:
    r = col.put(
        "/collections/c/points", content=b"{nope", headers={"content-type": "application/json"}
    )
    shape(r, 400, "bad_request", "not valid JSON")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"vector": [1, 2, 3], "k": 0}, "k"),
        ({"vector": [1, 2, 3], "k": 10**6}, "k + offset must be between 1 and"),
        ({"vector": [1, 2, 3], "k": 3, "offset": -1}, "offset"),
        ({"vector": [1, 2]}, "vector has 2 dimensions"),
        ({"k": 3}, "exactly one of 'vector', 'id' or 'text'"),
        ({"vector": [1, 2, 3], "id": 4}, "exactly one of 'vector', 'id' or 'text'"),
        ({"vector": [1, 2, 3], "filter": {"must": [{"key": "a"}]}}, "filter"),
        ({"vector": [1, 2, 3], "filter": {"must": [{"key": "a", "range": {}}]}}, "filter"),
        ({"vector": [1, 2, 3], "filter": {"must": [{"key": "a..b", "match": 1}]}}, "filter"),
        ({"vector": [1, 2, 3], "filter": {"bogus": []}}, "bogus"),
    ],
)
def test_bad_search_422(col: TestClient, body: dict[str, Any], fragment: str) -> None:
    shape(col.post("/collections/c/search", json=body), 422, "invalid_input", fragment)


def test_search_by_unknown_id_404(col: TestClient) -> None:
    shape(col.post("/collections/c/search", json={"id": 42}), 404, "not_found", "42")


def test_bad_delete_scroll_cursor(col: TestClient) -> None:
    shape(col.post("/collections/c/points/delete", json={}), 422, "invalid_input", "exactly one")
    r = col.post("/collections/c/points/scroll", json={"cursor": "!!notours"})
    shape(r, 422, "invalid_input", "cursor")


def test_limits(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, max_body_bytes=2048, max_batch_points=3, max_search_batch=2
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        c.post("/collections", json={"name": "c", "dim": 3})
        big = {"points": [{"id": i, "vector": [1, 2, 3]} for i in range(200)]}
        shape(c.put("/collections/c/points", json=big), 413, "payload_too_large", "2048")

        def chunks() -> Any:
            yield b'{"points": ['
            for _ in range(100):
                yield b'{"id": 1, "vector": [1, 2, 3]},'
            yield b"]}"

        r = c.put(
            "/collections/c/points", content=chunks(), headers={"content-type": "application/json"}
        )
        shape(r, 413, "payload_too_large")
        four = {"points": [{"id": i, "vector": [1, 2, 3]} for i in range(4)]}
        shape(c.put("/collections/c/points", json=four), 422, "invalid_input", "at most 3")
        many = {"searches": [{"vector": [1, 2, 3]}] * 3}
        shape(c.post("/collections/c/search/batch", json=many), 422, "invalid_input", "at most 2")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"a": "x\u0000y"}, "points[0].payload.a contains a NUL"),
        ({"a": [1, 2**64]}, "points[0].payload.a[1] is an integer outside the 64-bit range"),
        ({"a": {"b": float("nan")}}, "points[0].payload.a.b is NaN"),
    ],
)
def test_unfaithful_payloads_422(col: TestClient, payload: dict[str, Any], fragment: str) -> None:
    import json

    raw = json.dumps({"points": [{"id": 1, "vector": [1, 2, 3], "payload": payload}]})
    r = col.put("/collections/c/points", content=raw, headers={"content-type": "application/json"})
    shape(r, 422, "invalid_input", fragment)
