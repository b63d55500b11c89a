"""Dense vectors on the wire: JSON numbers and base64 float32 give the same bits, bad ones 422."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import brute_force

from app.client import Client
from app.client.wire import _point, _search_body
from app.dense import to_matrix
from app.errors import InvalidInput

D = 8


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def test_base64_and_lists_give_the_same_bits(rng: np.random.Generator) -> None:
    x = rng.standard_normal((50, D)).astype(np.float32)
    x[0, 0], x[1, 1], x[2, 2] = -0.0, np.float32(1e-45), np.finfo(np.float32).max
    as_lists = to_matrix(x.tolist(), D, False, "c", "points")
    as_b64 = to_matrix([b64(v) for v in x], D, False, "c", "points")
    rows = [b64(v) if i % 3 else v.tolist() for i, v in enumerate(x)]
    mixed = to_matrix(rows, D, False, "c", "points")
    for got in (as_lists, as_b64, mixed):
        assert got.dtype == np.float32 and got.shape == (50, D)
        assert got.tobytes() == x.tobytes()  # bit for bit, -0.0 and the subnormal included
    unit = to_matrix([b64(v) for v in x[3:]], D, True, "c", "points")
    np.testing.assert_allclose(unit, x[3:] / np.linalg.norm(x[3:], axis=1, keepdims=True), 1e-6)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not base64!", "points[1].vector is a string but not valid base64"),
        ("AAAA=AAA", "points[1].vector is a string but not valid base64"),  # padding mid-string
        (base64.b64encode(b"\0" * (4 * D - 4)).decode(), "is base64 of 28 bytes (7 float32"),
        (base64.b64encode(b"\0" * (4 * D + 2)).decode(), "is base64 of 34 bytes"),
        (b64(np.full(D, np.nan)), "points[1].vector contains NaN"),
        (b64(np.r_[np.inf, np.zeros(D - 1)]), "points[1].vector contains NaN or infinity"),
    ],
)
def test_bad_base64_names_the_vector(value: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as e:
        to_matrix([[1.0] * D, value], D, False, "c", "points")
    assert fragment in e.value.message and e.value.status == 422


def test_cosine_rejects_a_zero_base64_vector() -> None:
    with pytest.raises(InvalidInput, match=r"searches\[0\].vector is all zeros"):
        to_matrix([b64(np.zeros(D))], D, True, "c", "searches")


def test_http_upsert_and_search_with_base64(client: TestClient, rng: np.random.Generator) -> None:
    x = rng.standard_normal((300, D)).astype(np.float32)
    assert client.post("/collections", json={"name": "c", "dim": D}).status_code == 201
    pts = [{"id": i, "vector": b64(v) if i % 2 else v.tolist()} for i, v in enumerate(x)]
    r = client.put("/collections/c/points", json={"points": pts})
    assert r.status_code == 200 and r.json()["upserted"] == 300
    got = client.get("/collections/c/points/7", params={"with_vector": "true"}).json()
    assert np.array_equal(np.asarray(got["vector"], dtype=np.float32), x[7])
    q = rng.standard_normal(D).astype(np.float32)
    want = brute_force(x, np.arange(300), q[None], 10)[1][0].tolist()
    for vector in (b64(q), q.tolist()):
        hits = client.post("/collections/c/search", json={"vector": vector, "k": 10}).json()
        assert [h["id"] for h in hits["hits"]] == want
    bad = client.put("/collections/c/points", json={"points": [{"id": 1, "vector": "%%%"}]})
    assert bad.status_code == 422 and "points[0].vector is a string" in bad.json()["message"]
    short = client.post("/collections/c/search", json={"vector": b64(q[:3])})
    assert short.status_code == 422 and "expects 8 values, 32 bytes" in short.json()["message"]
    # a list keeps the field-level message of a number list (not both arms of a union)
    r = client.put("/collections/c/points", json={"points": [{"id": 1, "vector": [1, "x"]}]})
    assert r.status_code == 422 and r.json()["message"].startswith("points[0].vector[1]:")


def test_client_sends_numpy_vectors_as_base64() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"upserted": 2, "seq": 1, "truncated": 0})

    v64 = np.linspace(-1, 1, D)  # float64: sent as its float32 rounding, as a list would be
    with Client("http://test", transport=httpx.MockTransport(handler)) as c:
        c.upsert("c", [{"id": 1, "vector": v64}, {"id": 2, "vector": [0.5] * D}])
    (body,) = seen
    sent = body["points"]
    assert isinstance(sent, list)
    assert sent[0]["vector"] == b64(v64.astype(np.float32))
    assert sent[1]["vector"] == [0.5] * D  # lists stay lists
    assert _point({"id": 3, "vector": np.zeros((2, D))})["vector"] == [[0.0] * D] * 2  # not 1-d
    assert _search_body(vector=np.ones(D, dtype=np.float32))["vector"] == b64(np.ones(D))
