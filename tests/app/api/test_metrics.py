"""GET /metrics: Prometheus text that parses, counters that move, gauges of the service."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support import wait_ready

from app.api.app import create_app
from app.config import Settings


def scrape(c: TestClient, **headers: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(m: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for ls, v in m.get(name, []) if all(ls.get(k) == x for k, x in labels.items()))


def test_request_counters_increase_by_route_template(client: TestClient) -> None:
    before = scrape(client)
    assert client.post("/collections", json={"name": "c", "dim": 2}).status_code == 201
    pts = [{"id": i, "vector": [i, 1]} for i in range(10)]
    assert client.put("/collections/c/points", json={"points": pts}).status_code == 200
    for _ in range(3):
        assert (
            client.post("/collections/c/search", json={"vector": [1, 0], "k": 2}).status_code == 200
        )
    assert client.get("/collections/nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)
    search = {"method": "POST", "route": "/collections/{name}/search", "status": "200"}
    name = "innerspace_http_requests_total"
    assert value(after, name, **search) - value(before, name, **search) == 3
    assert value(after, name, route="/collections/{name}", status="404") == 1
    assert value(after, name, route="<unmatched>", status="404") == 1
    assert not any("nope" in ls.get("route", "") for ls, _ in after[name])
    hist = "innerspace_http_request_duration_seconds_count"
    assert value(after, hist, method="POST", route="/collections/{name}/search") == 3
    # search stages, observed from the route layer
    for stage in ("prepare", "execute", "respond"):
        assert value(after, "innerspace_search_stage_duration_seconds_count", stage=stage) == 3
    # service gauges
    assert value(after, "innerspace_collection_points", collection="c") == 10
    assert value(after, "innerspace_collection_memory_bytes", collection="c") > 0
    assert value(after, "innerspace_vector_memory_bytes") > 0
    assert value(after, "innerspace_ready") == 1
    assert value(after, "process_resident_memory_bytes") > 0
    assert {ls["state"] for ls, _ in after["innerspace_jobs"]} >= {"queued", "running", "failed"}


def test_job_states_are_counted(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": 2})
    job = client.post("/collections/c/compact").json()
    for _ in range(200):
        if client.get(f"/jobs/{job['id']}").json()["state"] == "succeeded":
            break
        time.sleep(0.02)
    m = scrape(client)
    assert value(m, "innerspace_jobs", state="succeeded") == 1


def test_metrics_can_require_a_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", auth="on", admin_key="root", metrics_auth=True)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.get("/metrics").status_code == 401
        key = c.post("/keys", json={"role": "read"}, headers={"api-key": "root"}).json()["key"]
        scoped = c.post(
            "/keys", json={"role": "admin", "collection": "x"}, headers={"api-key": "root"}
        ).json()["key"]
        assert c.get("/metrics", headers={"api-key": scoped}).status_code == 403
        assert "innerspace_http_requests_total" in scrape(c, **{"api-key": key})
    settings = Settings(data_dir=tmp_path / "e", auth="on", admin_key="root")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.get("/metrics").status_code == 200  # open by default, even with auth on
