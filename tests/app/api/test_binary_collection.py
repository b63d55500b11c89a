"""Binary-code collections through the HTTP API: build job, per-query oversample/rescore,
filters, deletes and restarts, checked against brute-force numpy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app

D = 48
N = 600
SPEC = "Binary(encoding=rabitq,bits=2,seed=7),Rescore(oversample=4)"


def make(client: Any, spec: str = SPEC) -> np.ndarray:
    rng = np.random.default_rng(5)
    # Varying norms: this is MIPS, not cosine.
    x = rng.standard_normal((N, D)).astype(np.float32) * rng.uniform(0.5, 2.0, (N, 1))
    x = x.astype(np.float32)
    assert client.post("/collections", json={"name": "b", "dim": D, "index": spec}).status_code
    pts = [{"id": i, "vector": v.tolist(), "payload": {"odd": i % 2}} for i, v in enumerate(x)]
    assert client.put("/collections/b/points", json={"points": pts}).status_code == 200
    job = client.post("/collections/b/index", json={"spec": spec}).json()
    deadline = time.monotonic() + 120
    while (state := client.get(f"/jobs/{job['id']}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["state"] == "succeeded", state
    return x


def search(client: Any, q: np.ndarray, k: int, **extra: Any) -> dict[str, Any]:
    r = client.post("/collections/b/search", json={"vector": q.tolist(), "k": k, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_full_oversample_equals_flat_and_scores_are_exact(client: TestClient) -> None:
    x = make(client)
    info = client.get("/collections/b").json()
    assert info["indexed_count"] == N and info["index"].startswith("Binary(")
    # Codes + ids in RAM; the segment's float rows are memory-mapped, not a second RAM copy.
    per = info["bytes_per_vector"]
    assert per["in_memory"] < 4 * D + 200, per
    assert per["on_disk"] > 4 * D, per
    q = np.random.default_rng(9).standard_normal((5, D)).astype(np.float32)
    for qi in q:
        body = search(client, qi, 10, params={"oversample": N})
        ids = [h["id"] for h in body["hits"]]
        truth = np.argsort(-(x @ qi), kind="stable")[:10]
        assert ids == truth.tolist()
        np.testing.assert_allclose(
            [h["score"] for h in body["hits"]], x[truth] @ qi, rtol=1e-5, atol=1e-5
        )
        assert body["exact"] is False


def test_rescore_false_returns_estimates(client: TestClient) -> None:
    x = make(client)
    qi = np.random.default_rng(2).standard_normal(D).astype(np.float32)
    est = search(client, qi, 10, params={"rescore": False})
    scores = np.array([h["score"] for h in est["hits"]])
    exact = x[[h["id"] for h in est["hits"]]] @ qi
    assert len(scores) == 10 and not np.allclose(scores, exact, atol=1e-6)
    assert est["exact"] is False


def test_filters_deletes_and_bad_params(client: TestClient) -> None:
    x = make(client)
    qi = np.random.default_rng(3).standard_normal(D).astype(np.float32)
    r = client.post("/collections/b/points/delete", json={"ids": list(range(100))})
    assert r.status_code == 200
    flt = {"must": [{"key": "odd", "match": 1}]}
    body = search(client, qi, 10, filter=flt, params={"oversample": N})
    ids = [h["id"] for h in body["hits"]]
    allowed = np.array([i for i in range(100, N) if i % 2 == 1])
    truth = allowed[np.argsort(-(x[allowed] @ qi), kind="stable")[:10]]
    assert ids == truth.tolist()
    bad = client.post(
        "/collections/b/search", json={"vector": qi.tolist(), "k": 5, "params": {"oversample": 0.5}}
    )
    assert bad.status_code == 422 and "oversample" in bad.json()["message"]
    bad = client.post(
        "/collections/b/search", json={"vector": qi.tolist(), "k": 5, "params": {"tau": 4}}
    )
    assert bad.status_code == 422 and "oversample" in bad.json()["message"]


def test_binary_index_survives_restart(settings: Any) -> None:
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        x = make(c)
    qi = np.random.default_rng(4).standard_normal(D).astype(np.float32)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        info = c.get("/collections/b").json()
        assert info["indexed_count"] == N and info["index"].startswith("Binary(")
        body = search(c, qi, 5, params={"oversample": N})
        truth = np.argsort(-(x @ qi), kind="stable")[:5]
        assert [h["id"] for h in body["hits"]] == truth.tolist()
