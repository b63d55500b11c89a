"""Multi-vector (MUVERA) collections through the HTTP API, checked against brute-force numpy
MaxSim: writes, search (tail, sealed segments, built index), filters, deletes, restarts, text
through a token encoder, and every 422."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import Server, wait_ready

from app.api.app import create_app
from app.config import Settings
from encoders import encoder_factory
from index.spec import index_factory

D = 16
N = 240
SPEC = "Muvera(k_sim=3,d_proj=8,r_reps=4,seed=7),Flat,MaxSim(candidates=40)"
CANON = index_factory(D, SPEC).spec


def docs_of(n: int, seed: int = 0, dim: int = D) -> list[np.ndarray]:
    """``n`` documents of 1-8 float32 tokens with varying norms (MaxSim is not cosine)."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((int(t), dim)) * rng.uniform(0.5, 2.0)).astype(np.float32)
        for t in rng.integers(1, 9, n)
    ]


def maxsim(q: np.ndarray, doc: np.ndarray) -> float:
    return float((q.astype(np.float64) @ doc.astype(np.float64).T).max(axis=1).sum())


def truth(docs: dict[Any, np.ndarray], q: np.ndarray, k: int) -> list[tuple[Any, float]]:
    """Top-k (id, score) by brute-force MaxSim; ties are not expected on random data."""
    scored = sorted(((-maxsim(q, d), i) for i, d in docs.items()), key=lambda t: t[0])
    return [(i, -s) for s, i in scored[:k]]


def create(client: Any, name: str = "m", **extra: Any) -> dict[str, Any]:
    r = client.post("/collections", json={"name": name, "dim": D, "multivector": True, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def upsert(client: Any, docs: dict[Any, np.ndarray], name: str = "m", **extra: Any) -> None:
    items = list(docs.items())
    for s in range(0, len(items), 100):
        pts = [
            {"id": i, "vectors": d.tolist(), "payload": {"odd": int(i) % 2, **extra}}
            for i, d in items[s : s + 100]
        ]
        r = client.put(f"/collections/{name}/points", json={"points": pts})
        assert r.status_code == 200, r.text


def search(client: Any, q: np.ndarray, k: int = 10, name: str = "m", **extra: Any) -> Any:
    r = client.post(f"/collections/{name}/search", json={"vectors": q.tolist(), "k": k, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def check(body: dict[str, Any], want: list[tuple[Any, float]]) -> None:
    assert [h["id"] for h in body["hits"]] == [i for i, _ in want]
    np.testing.assert_allclose(
        [h["score"] for h in body["hits"]], [s for _, s in want], rtol=1e-4, atol=1e-4
    )


def wait_job(client: Any, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (job := client.get(f"/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["state"] == "succeeded", job
    return dict(job)


def test_create_defaults_and_spec_kind_checks(client: TestClient) -> None:
    info = create(client)
    assert info["multivector"] is True
    assert info["index"].startswith(f"Muvera(k_sim=4,d_proj={min(32, D)},")
    assert info["index"].endswith(",Flat,MaxSim(candidates=250)")
    assert (info["tokens"], info["token_dtype"], info["token_bytes"]) == (0, "float32", 0)
    assert create(client, "s", index=SPEC)["index"] == CANON
    r = client.post("/collections", json={"name": "m", "dim": D, "multivector": True})
    assert r.status_code == 409
    bad = [
        ({"multivector": True, "index": "Flat"}, "needs a Muvera index"),
        ({"multivector": True, "index": "HNSW(m=8)"}, "needs a Muvera index"),
        ({"index": SPEC}, "multi-vector collections"),
        ({"multivector": True, "index": "Muvera(k_sim=99)"}, "k_sim"),
        ({"multivector": True, "index": "Muvera(d_proj=32)"}, "d_proj"),
    ]
    for extra, msg in bad:
        r = client.post("/collections", json={"name": "y", "dim": D, **extra})
        assert r.status_code == 422 and msg in r.json()["message"], (extra, r.text)
    dense = client.post("/collections", json={"name": "d", "dim": D}).json()
    assert dense["multivector"] is False and dense["index"] == "Flat"
    assert dense["token_dtype"] is None
    r = client.post("/collections/d/index", json={"spec": SPEC})
    assert r.status_code == 422 and "multi-vector" in r.json()["message"]
    r = client.post("/collections/m/index", json={"spec": "Flat"})
    assert r.status_code == 422 and "Muvera" in r.json()["message"]


def test_tail_and_segments_equal_brute_force_maxsim(client: TestClient) -> None:
    create(client, index=SPEC)
    docs = dict(enumerate(docs_of(N)))
    upsert(client, docs)
    client.post("/collections/m/flush")
    info = client.get("/collections/m").json()
    assert info["count"] == N and info["indexed_count"] == N and info["segments"] >= 1
    assert info["tokens"] == sum(len(d) for d in docs.values())
    assert info["token_bytes"] >= info["tokens"] * D * 4
    more = {N + i: d for i, d in enumerate(docs_of(30, seed=1))}  # stays in the tail
    upsert(client, more)
    docs.update(more)
    assert client.get("/collections/m").json()["unindexed_count"] == 30
    for qi, q in enumerate(docs_of(4, seed=2)):
        want = truth(docs, q, 10)
        covered = search(client, q, params={"candidates": len(docs)})
        check(covered, want)
        assert covered["exact"] is False  # FDE candidates; covering them all is not promised
        exact = search(client, q, params={"exact": True})
        check(exact, want)
        assert exact["exact"] is True
        default = search(client, q)  # approximate, but every score is an exact MaxSim
        for h in default["hits"]:
            assert h["score"] == pytest.approx(maxsim(q, docs[h["id"]]), rel=1e-4, abs=1e-4)
        if qi == 0:
            page = search(client, q, k=5, offset=5, params={"exact": True})
            check(page, want[5:10])


def test_tail_only_is_exact_and_batches_match(client: TestClient) -> None:
    create(client)
    docs = dict(enumerate(docs_of(40)))
    upsert(client, docs)
    qs = docs_of(3, seed=5)
    body = client.post(
        "/collections/m/search/batch",
        json={"searches": [{"vectors": q.tolist(), "k": 5} for q in qs]},
    )
    assert body.status_code == 200, body.text
    for q, res in zip(qs, body.json()["results"], strict=True):
        check(res, truth(docs, q, 5))
        assert res["exact"] is True


def test_points_round_trip_delete_replace_and_filter(client: TestClient) -> None:
    create(client, index=SPEC)
    docs = dict(enumerate(docs_of(N)))
    upsert(client, docs)
    client.post("/collections/m/flush")
    got = client.get("/collections/m/points/7", params={"with_vector": True}).json()
    assert "vector" not in got
    np.testing.assert_array_equal(np.asarray(got["vectors"], np.float32), docs[7])
    page = client.post("/collections/m/points/scroll", json={"limit": 3, "with_vector": True})
    for p in page.json()["points"]:
        np.testing.assert_array_equal(np.asarray(p["vectors"], np.float32), docs[p["id"]])
    gone = list(range(0, N, 3))
    r = client.post("/collections/m/points/delete", json={"ids": gone})
    assert r.json()["deleted"] == len(gone)
    for i in gone:
        del docs[i]
    replaced = dict(zip([1, 2], docs_of(2, seed=9), strict=True))
    upsert(client, replaced)
    docs.update(replaced)
    q = docs_of(1, seed=3)[0]
    for params in ({"candidates": N}, {"exact": True}, {}):
        hits = search(client, q, k=50, params=params)["hits"]
        assert not {h["id"] for h in hits} & set(gone)
    check(search(client, q, k=20, params={"exact": True}), truth(docs, q, 20))
    flt = {"must": [{"key": "odd", "match": 1}]}
    odd = {i: d for i, d in docs.items() if i % 2 == 1}
    for params in ({"candidates": N}, {"exact": True}):
        check(search(client, q, k=10, filter=flt, params=params), truth(odd, q, 10))
    few = search(client, q, k=10, filter=flt, params={"candidates": 5})["hits"]
    assert len(few) == 10 and all(h["id"] % 2 == 1 for h in few)
    # search by a stored point's tokens: itself left out
    body = client.post("/collections/m/search", json={"id": 5, "k": 5, "params": {"exact": True}})
    others = {i: d for i, d in docs.items() if i != 5}
    check(body.json(), truth(others, docs[5], 5))
    hit = search(client, q, k=1, with_vector=True, params={"exact": True})["hits"][0]
    np.testing.assert_array_equal(np.asarray(hit["vectors"], np.float32), docs[hit["id"]])


def test_build_job_then_incremental_adds(client: TestClient) -> None:
    create(client)
    docs = dict(enumerate(docs_of(N)))
    upsert(client, docs)
    client.post("/collections/m/points/delete", json={"ids": [0, 1, 2]})
    for i in (0, 1, 2):
        del docs[i]
    r = client.post("/collections/m/index", json={"spec": SPEC})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["result"]["vectors"] == N - 3
    info = client.get("/collections/m").json()
    assert info["index"] == CANON and info["indexed_count"] == N - 3 and info["segments"] == 1
    assert info["tokens"] == sum(len(d) for d in docs.values())
    q = docs_of(1, seed=4)[0]
    check(search(client, q, params={"candidates": N}), truth(docs, q, 10))
    more = {1000 + i: d for i, d in enumerate(docs_of(20, seed=6))}
    upsert(client, more)
    docs.update(more)
    client.post("/collections/m/points/delete", json={"ids": [10, 1005]})
    del docs[10], docs[1005]
    check(search(client, q, k=15, params={"candidates": N + 20}), truth(docs, q, 15))
    check(search(client, q, k=15, params={"exact": True}), truth(docs, q, 15))
    compact = client.post("/collections/m/compact")
    assert wait_job(client, compact.json()["id"])["result"]["vectors"] == len(docs)
    check(search(client, q, k=15, params={"candidates": N + 20}), truth(docs, q, 15))


def test_restart_replays_wal_and_loads_segments(settings: Settings) -> None:
    docs = dict(enumerate(docs_of(100)))
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        create(c, index=SPEC)
        upsert(c, docs)  # 100 > seal threshold (64): a sealed segment plus a WAL tail
        c.post("/collections/m/points/delete", json={"ids": [3, 70]})
        before = c.get("/collections/m").json()
    del docs[3], docs[70]
    q = docs_of(1, seed=8)[0]
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        info = c.get("/collections/m").json()
        for key in ("count", "tokens", "index", "multivector"):
            assert info[key] == before[key], key
        check(search(c, q, params={"exact": True}), truth(docs, q, 10))
        check(search(c, q, params={"candidates": 200}), truth(docs, q, 10))
        got = c.get("/collections/m/points/80", params={"with_vector": True}).json()
        np.testing.assert_array_equal(np.asarray(got["vectors"], np.float32), docs[80])


def test_float16_token_store_is_reported(client: TestClient) -> None:
    spec = SPEC.replace("seed=7", "store_dtype=float16,seed=7")
    info = create(client, index=spec)
    assert "store_dtype=float16" in info["index"]
    docs = dict(enumerate(docs_of(80)))
    upsert(client, docs)
    client.post("/collections/m/flush")
    info = client.get("/collections/m").json()
    assert info["token_dtype"] == "float16"
    q = docs_of(1, seed=8)[0]
    body = search(client, q, params={"exact": True})
    assert [h["id"] for h in body["hits"]] == [i for i, _ in truth(docs, q, 10)]
    # exact float32 tokens stay on disk: reads return them unrounded
    got = client.get("/collections/m/points/4", params={"with_vector": True}).json()
    np.testing.assert_array_equal(np.asarray(got["vectors"], np.float32), docs[4])


@pytest.mark.parametrize(
    ("point", "msg"),
    [
        ({"vectors": []}, "points[1].vectors is empty"),
        ({"vectors": [[1.0] * D, [1.0] * (D - 1)]}, "points[1].vectors[1] has 15 dimensions"),
        ({"vectors": [[1.0] * 3]}, "points[1].vectors[0] has 3 dimensions"),
        ({"vectors": [[1.0] * D, [1e39] * D]}, "points[1].vectors[1] contains NaN or infinity"),
        ({"vector": [1.0] * D}, "points[1].vector: collection 'm' is multi-vector"),
        ({"vectors": [[1.0] * D], "vector": [1.0] * D}, "exactly one of"),
    ],
)
def test_bad_points_are_422_naming_the_item(client: TestClient, point: Any, msg: str) -> None:
    create(client)
    good = {"id": 0, "vectors": [[0.5] * D]}
    r = client.put("/collections/m/points", json={"points": [good, {"id": 1, **point}]})
    assert r.status_code == 422 and msg in r.json()["message"], r.text
    assert client.get("/collections/m").json()["count"] == 0  # all-or-nothing


def test_bad_searches_and_dense_mismatch_are_422(client: TestClient) -> None:
    create(client)
    upsert(client, dict(enumerate(docs_of(5))))
    q = [[0.1] * D]
    cases = [
        ({"vector": [0.1] * D}, "is multi-vector"),
        ({"vectors": []}, "searches[0].vectors is empty"),
        ({"vectors": [[0.1] * 4]}, "has 4 dimensions"),
        ({"vectors": q, "params": {"candidates": 0}}, "candidates must be a positive integer"),
        ({"vectors": q, "params": {"candidates": 2.5}}, "candidates must be a positive integer"),
        ({"vectors": q, "params": {"exact": 1}}, "exact must be true or false"),
        ({"vectors": q, "params": {"ef_search": 8}}, "takes no ef_search"),
    ]
    for body, msg in cases:
        r = client.post("/collections/m/search", json={"k": 3, **body})
        assert r.status_code == 422 and msg in r.json()["message"], (body, r.text)
    client.post("/collections", json={"name": "d", "dim": D})
    r = client.put("/collections/d/points", json={"points": [{"id": 1, "vectors": q}]})
    assert r.status_code == 422 and "points[0].vectors: collection 'd' is dense" in r.text
    r = client.post("/collections/d/search", json={"vectors": q})
    assert r.status_code == 422 and "searches[0].vectors" in r.json()["message"]


def test_text_through_the_token_encoder(client: TestClient) -> None:
    enc_spec = "test-hash-tokens(dim=32)"
    r = client.post("/collections", json={"name": "t", "encoder": enc_spec, "multivector": True})
    assert r.status_code == 201, r.text
    assert r.json()["dim"] == 32 and r.json()["index"].startswith("Muvera(")
    r = client.post("/collections", json={"name": "u", "encoder": enc_spec})
    assert r.status_code == 422 and '"multivector": true' in r.json()["message"]
    texts = ["red apples and pears", "a fast sports car", "green apples", "the car is red"]
    pts = [{"id": i, "text": t} for i, t in enumerate(texts)]
    assert client.put("/collections/t/points", json={"points": pts}).status_code == 200
    enc = encoder_factory(enc_spec)
    stored = dict(enumerate(np.asarray(m, np.float32) for m in enc.encode_documents(texts).multi))
    got = client.get("/collections/t/points/2", params={"with_vector": True}).json()
    np.testing.assert_allclose(got["vectors"], stored[2], rtol=1e-6)
    assert got["payload"] == {"text": "green apples"}
    body = client.post("/collections/t/search", json={"text": "red apples", "k": 4}).json()
    q = np.asarray(enc.encode_queries(["red apples"]).multi[0], np.float32)
    check(body, truth(stored, q, 4))


def test_kill9_after_acknowledged_upserts_loses_nothing(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_SEAL_THRESHOLD="50").start()
    try:
        r = httpx.post(
            f"{srv.url}/collections",
            json={"name": "m", "dim": D, "multivector": True, "index": SPEC},
        )
        assert r.status_code == 201, r.text
        docs = dict(enumerate(docs_of(120)))
        with httpx.Client(base_url=srv.url) as hc:
            upsert(hc, docs)
        srv.kill()
        srv.start()
        info = httpx.get(f"{srv.url}/collections/m").json()
        assert info["count"] == 120 and info["tokens"] == sum(len(d) for d in docs.values())
        q = docs_of(1, seed=11)[0]
        body = httpx.post(
            f"{srv.url}/collections/m/search",
            json={"vectors": q.tolist(), "k": 10, "params": {"exact": True}},
        ).json()
        check(body, truth(docs, q, 10))
        for i in (0, 60, 119):
            got = httpx.get(f"{srv.url}/collections/m/points/{i}", params={"with_vector": True})
            np.testing.assert_array_equal(np.asarray(got.json()["vectors"], np.float32), docs[i])
    finally:
        srv.stop()


def test_cosine_normalises_every_token(client: TestClient) -> None:
    create(client, metric="cosine")
    docs = dict(enumerate(docs_of(30)))
    upsert(client, docs)
    unit = {i: d / np.linalg.norm(d, axis=1, keepdims=True) for i, d in docs.items()}
    q = docs_of(1, seed=12)[0]
    check(search(client, q), truth(unit, q / np.linalg.norm(q, axis=1, keepdims=True), 10))
    zero = {"id": 99, "vectors": [[1.0] * D, [0.0] * D]}
    r = client.put("/collections/m/points", json={"points": [zero]})
    assert r.status_code == 422 and "points[0].vectors[1] is all zeros" in r.json()["message"]
