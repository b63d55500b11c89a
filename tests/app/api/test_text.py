"""Text in writes and queries: server-side encoding with the collection's pinned encoder."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from encoders import encoder_factory

ENC = "test-hash(dim=32)"


def test_create_takes_dim_from_encoder(client: TestClient) -> None:
    r = client.post("/collections", json={"name": "t", "encoder": ENC})
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["dim"] == 32 and info["encoder"] == encoder_factory(ENC).spec
    r = client.post("/collections", json={"name": "u", "encoder": ENC, "dim": 16})
    assert r.status_code == 422 and "does not match encoder" in r.json()["message"]
    r = client.post("/collections", json={"name": "u", "encoder": "nope"})
    assert r.status_code == 422 and "minilm" in r.json()["message"]
    r = client.post("/collections", json={"name": "u", "encoder": "onnx:/does/not/exist"})
    assert r.status_code == 422 and "/does/not/exist" in r.json()["message"]


def test_text_points_and_text_search(client: TestClient) -> None:
    client.post("/collections", json={"name": "t", "encoder": ENC})
    docs = ["red apples and pears", "a fast sports car", "green apples", "the car is red"]
    pts = [{"id": i, "text": t, "payload": {"i": i}} for i, t in enumerate(docs)]
    vec = np.ones(32, np.float32) / np.sqrt(32)
    pts.append({"id": "v", "vector": vec.tolist()})  # vectors and text mix when dims agree
    r = client.put("/collections/t/points", json={"points": pts})
    assert r.status_code == 200 and r.json()["upserted"] == 5, r.text
    enc = encoder_factory(ENC)
    want = enc.encode_documents(docs).dense
    got = client.get("/collections/t/points/2", params={"with_vector": True}).json()
    np.testing.assert_allclose(got["vector"], want[2], rtol=1e-6)
    assert got["payload"] == {"i": 2, "text": "green apples"}
    r = client.post("/collections/t/search", json={"text": "apples", "k": 5}).json()
    q = enc.encode_queries(["apples"]).dense[0]
    xb = np.vstack([want, vec])
    ids: list[object] = [0, 1, 2, 3, "v"]
    assert [h["id"] for h in r["hits"]] == [ids[j] for j in np.argsort(-(xb @ q), kind="stable")]


def test_other_encoder_is_409_with_both_names(client: TestClient) -> None:
    client.post("/collections", json={"name": "t", "encoder": ENC})
    body = {"text": "x", "encoder": "test-hash(dim=64)"}
    r = client.post("/collections/t/search", json=body)
    assert r.status_code == 409
    msg = r.json()["message"]
    assert "test-hash(dim=32" in msg and "test-hash(dim=64" in msg
    r = client.post("/collections/t/search", json={"text": "x", "encoder": ENC})
    assert r.status_code == 200


def test_text_without_encoder_is_422(client: TestClient) -> None:
    client.post("/collections", json={"name": "v", "dim": 4})
    r = client.put("/collections/v/points", json={"points": [{"id": 1, "text": "hi"}]})
    assert r.status_code == 422 and "has no encoder" in r.json()["message"]
    r = client.post("/collections/v/search", json={"text": "hi"})
    assert r.status_code == 422 and "has no encoder" in r.json()["message"]
    r = client.put("/collections/v/points", json={"points": [{"id": 1}]})
    assert r.status_code == 422 and "exactly one of 'vector' or 'text'" in r.json()["message"]


def test_truncation_is_reported(client: TestClient) -> None:
    client.post("/collections", json={"name": "t", "encoder": "test-hash(dim=8,max_tokens=4)"})
    pts = [{"id": 1, "text": "one two three four five six"}, {"id": 2, "text": "short"}]
    r = client.put("/collections/t/points", json={"points": pts})
    assert r.json()["truncated"] == 1


def test_encode_endpoint(client: TestClient) -> None:
    r = client.post("/encode", json={"texts": ["a b", "c"], "encoder": ENC, "kind": "query"})
    assert r.status_code == 200
    body = r.json()
    assert body["dim"] == 32 and not body["multivector"] and len(body["vectors"]) == 2
    np.testing.assert_allclose(
        body["vectors"][0], encoder_factory(ENC).encode_queries(["a b"]).dense[0], rtol=1e-6
    )
    r = client.post("/encode", json={"texts": ["a b c"], "encoder": "test-hash-tokens(dim=8)"})
    assert r.json()["multivector"] and np.asarray(r.json()["vectors"][0]).shape == (3, 8)
    assert client.post("/encode", json={"texts": []}).status_code == 422


def test_bundled_minilm_end_to_end(client: TestClient) -> None:
    """The default encoder, offline: paraphrases find each other through the API."""
    r = client.post("/collections", json={"name": "m", "encoder": "minilm"})
    assert r.status_code == 201 and r.json()["dim"] == 384
    docs = [
        "The cat sat on the mat.",
        "Stock markets fell sharply on Monday.",
        "How do I bake sourdough bread at home?",
        "The football match ended in a draw.",
    ]
    pts = [{"id": i, "text": t} for i, t in enumerate(docs)]
    assert client.put("/collections/m/points", json={"points": pts}).status_code == 200
    queries = {
        "a kitten resting on a rug": 0,
        "equities dropped at the start of the week": 1,
        "recipe for homemade bread": 2,
        "the soccer game was tied": 3,
    }
    for text, want in queries.items():
        hits = client.post("/collections/m/search", json={"text": text, "k": 1}).json()["hits"]
        assert hits[0]["id"] == want, text
    v = client.post("/encode", json={"texts": ["hello"]}).json()
    assert v["encoder"].startswith("minilm") and abs(np.linalg.norm(v["vectors"][0]) - 1) < 1e-4


def test_runtime_only_parameters_do_not_conflict(client: TestClient) -> None:
    client.post("/collections", json={"name": "m", "encoder": "minilm"})
    client.put("/collections/m/points", json={"points": [{"id": 1, "text": "hello"}]})
    r = client.post("/collections/m/search", json={"text": "hi", "encoder": "minilm(threads=1)"})
    assert r.status_code == 200, r.text
    r = client.post("/collections/m/search", json={"text": "hi", "encoder": "minilm(max_tokens=8)"})
    assert r.status_code == 409
