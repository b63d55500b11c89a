"""Every bad input gets its status and one error shape: {error, message, details?}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from support import wait_ready

from app.api.app import create_app, unicode_problem
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
    raw = json.dumps({"points": [{"id": 1, "vector": [1, 2, 3], "payload": payload}]})
    r = col.put("/collections/c/points", content=raw, headers={"content-type": "application/json"})
    shape(r, 422, "invalid_input", fragment)


@pytest.mark.parametrize(
    ("method", "url", "raw"),
    [
        (
            "PUT",
            "/collections/c/points",
            r'{"points": [{"id": 1, "vector": [1, 2, 3], "payload": {"a": "\ud800"}}]}',
        ),
        (
            "PUT",
            "/collections/c/points",
            r'{"points": [{"id": 1, "vector": [1, 2, 3], "payload": {"\udfff": 1}}]}',
        ),
        ("PUT", "/collections/c/points", r'{"points": [{"id": "x\ud800", "vector": [1, 2, 3]}]}'),
        (
            "POST",
            "/collections/c/search",
            r'{"vector": [1, 2, 3], "filter": {"must": [{"key": "a", "match": "\ud800"}]}}',
        ),
        (
            "POST",
            "/collections/c/search",
            r'{"vector": [1, 2, 3], "filter": {"must": [{"has_id": ["\udc00"]}]}}',
        ),
        ("POST", "/encode", r'{"texts": ["ok \ud83d\ude00", "\ud83d"]}'),
        ("POST", "/collections", r'{"name": "d", "dim": 3, "encoder": "onnx:/tmp/\ud800"}'),
    ],
)
def test_lone_surrogates_400(col: TestClient, method: str, url: str, raw: str) -> None:
    """JSON may escape half a surrogate pair; Python decodes it to a str with no UTF-8 form,
    which orjson, SQLite, the tokenizer and the file system refused deep in the route (500)."""
    r = col.request(method, url, content=raw, headers={"content-type": "application/json"})
    shape(r, 400, "bad_request", "unpaired UTF-16 surrogate escape \\u")
    assert col.get("/collections/c").json()["count"] == 0


def test_surrogate_bytes_and_utf16_bodies_400(col: TestClient) -> None:
    """``json.loads`` also takes UTF-8-encoded surrogates ("surrogatepass") and UTF-16."""
    h = {"content-type": "application/json"}
    raw = b'{"points": [{"id": 1, "vector": [1, 2, 3], "payload": {"a": "\xed\xa0\x80"}}]}'
    shape(col.put("/collections/c/points", content=raw, headers=h), 400, "bad_request", "UTF-8")
    utf16 = '{"points": [{"id": 1, "vector": [1, 2, 3]}]}'.encode("utf-16")
    shape(col.put("/collections/c/points", content=utf16, headers=h), 400, "bad_request", "UTF-8")
    # surrogate pairs, escaped or not, and escaped backslashes are fine
    ok = (
        r'{"points": [{"id": "\ud83d\ude00", "vector": [1, 2, 3], "payload": {"a": "\\ud800 😀"}}]}'
    )
    assert col.put("/collections/c/points", content=ok.encode(), headers=h).status_code == 200
    assert col.get("/collections/c/points/😀").json()["payload"] == {"a": "\\ud800 😀"}


def test_unknown_job_state_422(client: TestClient) -> None:
    shape(client.get("/jobs", params={"state": "done"}), 422, "invalid_input", "'succeeded'")
    assert client.get("/jobs", params={"state": "succeeded"}).json() == {"jobs": []}


def test_openapi_documents_the_error_shape(tmp_path: Path) -> None:
    """Every operation that can refuse a request documents ``4XX`` as ErrorBody, not FastAPI's
    default 422 body (which this app never sends)."""
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if path not in ("/healthz", "/readyz"):
                ref = op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (method, path)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(
    text=st.text(st.characters(exclude_categories=()), max_size=12)
    | st.lists(st.sampled_from(["\ud800", "\udc00", "\\", "u", "d", "8", "0", "a", "😀"])).map(
        "".join
    ),
    ascii_only=st.booleans(),
)
def test_unicode_problem_iff_no_utf8_form(text: str, ascii_only: bool) -> None:
    """The body scan flags exactly the JSON texts that decode to strings with no UTF-8 form,
    however they are written: escaped (``\\ud800``, next to escaped backslashes) or raw."""
    raw = json.dumps({"k": text, text: [text]}, ensure_ascii=ascii_only).encode(
        "utf-8", "surrogatepass"
    )
    decoded = json.loads(raw)["k"]  # a pair escaped as two \\u escapes is one character
    try:
        decoded.encode("utf-8")
        valid = True
    except UnicodeEncodeError:
        valid = False
    assert (unicode_problem(raw) is None) == valid, raw
