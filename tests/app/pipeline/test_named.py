"""Named pipelines: declared per collection, validated on save, durable, used by name or as
the default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from support import brute_force, wait_ready

from app.api.app import create_app
from app.config import Settings

D = 6
HYBRID = [{"rrf": {"of": [{"exact": {"k": 20}}, {"index": {"k": 20}}], "k": 5}}]
EXACT = [{"exact": {"k": 3}}]


def load(client: TestClient) -> np.ndarray:
    client.post("/collections", json={"name": "c", "dim": D})
    x = np.random.default_rng(1).standard_normal((50, D)).astype(np.float32)
    pts = [{"id": i, "vector": x[i].tolist()} for i in range(50)]
    assert client.put("/collections/c/points", json={"points": pts}).status_code == 200
    return x


def test_save_list_use_and_delete(client: TestClient) -> None:
    x = load(client)
    r = client.post("/collections/c/pipelines", json={"name": "hybrid", "stages": HYBRID})
    assert r.status_code == 201 and r.json()["default"] is True  # the first one saved
    r = client.post("/collections/c/pipelines", json={"name": "top3", "stages": EXACT})
    assert r.status_code == 201 and r.json()["default"] is False
    listed = client.get("/collections/c/pipelines").json()["pipelines"]
    assert [(p["name"], p["default"]) for p in listed] == [("hybrid", True), ("top3", False)]
    q = x[7] + 0.1
    _, want = brute_force(x, np.arange(50), q[None], 3)
    r = client.post("/collections/c/query", json={"vector": q.tolist(), "pipeline": "top3"})
    assert r.status_code == 200 and [h["id"] for h in r.json()["hits"]] == want[0].tolist()
    assert r.json()["pipeline"] == "top3"
    r = client.post("/collections/c/query", json={"vector": q.tolist()})  # the default
    assert r.json()["pipeline"] == "hybrid" and len(r.json()["hits"]) == 5
    r = client.post("/collections/c/query", json={"vector": q.tolist(), "pipeline": EXACT})
    assert r.json()["pipeline"] == "<inline>"
    assert client.delete("/collections/c/pipelines/hybrid").status_code == 204
    r = client.post("/collections/c/query", json={"vector": q.tolist()})
    assert r.status_code == 422 and "no default pipeline" in r.json()["message"]


def test_errors_name_the_problem(client: TestClient) -> None:
    load(client)
    ok = {"name": "p", "stages": EXACT}
    assert client.post("/collections/c/pipelines", json=ok).status_code == 201
    r = client.post("/collections/c/pipelines", json=ok)
    assert r.status_code == 409 and "replace" in r.json()["message"]
    r = client.post("/collections/c/pipelines", json={**ok, "stages": HYBRID, "replace": True})
    assert r.status_code == 201
    bad = {"name": "q", "stages": [{"exact": {"k": 3}}, {"ip": {"k": 9}}]}
    r = client.post("/collections/c/pipelines", json=bad)
    assert r.status_code == 422 and "stages[1].ip.k: 9 is more than the 3" in r.json()["message"]
    r = client.post(
        "/collections/c/pipelines", json={"name": "q", "stages": [*EXACT, {"maxsim": {"k": 3}}]}
    )
    assert (
        r.status_code == 422
        and "stages[1].maxsim: 'maxsim' works on multi-vector" in r.json()["message"]
    )
    r = client.post("/collections/c/pipelines", json={"name": "../x", "stages": EXACT})
    assert r.status_code == 422 and "pipeline name" in r.json()["message"]
    r = client.post("/collections/c/query", json={"vector": [1.0] * D, "pipeline": "nope"})
    assert r.status_code == 404 and "known: p" in r.json()["message"]
    r = client.post(
        "/collections/c/query", json={"vector": [1.0] * D, "pipeline": "p", "stages": EXACT}
    )
    assert r.status_code == 422 and "not both" in r.json()["message"]
    assert client.delete("/collections/c/pipelines/nope").status_code == 404
    assert client.get("/collections/zz/pipelines").status_code == 404


def test_pipelines_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        load(c)
        c.post("/collections/c/pipelines", json={"name": "a", "stages": EXACT})
        c.post("/collections/c/pipelines", json={"name": "b", "stages": HYBRID, "default": True})
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        listed = c.get("/collections/c/pipelines").json()["pipelines"]
        assert {p["name"]: p["default"] for p in listed} == {"a": False, "b": True}
        assert c.post("/collections/c/query", json={"vector": [1.0] * D}).json()["pipeline"] == "b"
