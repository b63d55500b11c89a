"""Index build jobs: progress, swap, cancel, worker death and server death mid-build."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from support import Server, wait_ready

from app.api.app import create_app
from app.config import Settings

D = 32
FAST_HNSW = "HNSW(m=16,ef_construction=40,ef_search=64)"
SLOW_HNSW = "HNSW(m=32,ef_construction=400,ef_search=64)"


def fill(client: Any, n: int, seed: int = 0, start: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D), dtype=np.float32)
    for i in range(0, n, 2000):
        pts = [{"id": start + i + j, "vector": v.tolist()} for j, v in enumerate(x[i : i + 2000])]
        assert client.put("/collections/c/points", json={"points": pts}).status_code == 200
    return x


def events(client: Any, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse the job's Server-Sent Events stream until its ``end`` event."""
    out: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/jobs/{job_id}/events", timeout=300) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                assert event is not None
                out.append((event, json.loads(line[6:])))
    return out


def wait_state(client: Any, job_id: str, pred: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if pred(job):
            return job
        time.sleep(0.05)
    raise TimeoutError(job)


def worker_pids(data_dir: Path | None = None) -> list[int]:
    """Build workers running on ``data_dir`` (any, when None)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"app.jobs.worker" in cmd and (data_dir is None or str(data_dir).encode() in cmd):
                pids.append(int(d.name))
    return pids


def no_stage_dirs(data: Path) -> bool:
    return not list(data.glob("collections/*/segments/.stage-*"))


def test_build_progress_and_swap(client: TestClient, settings: Any) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    x = fill(client, 6000)
    r = client.post("/collections/c/index", json={"spec": "HNSW(m=16)"})
    assert r.status_code == 202
    job = r.json()
    assert job["state"] == "queued" and job["params"]["spec"].startswith("HNSW(m=16,")
    stream = events(client, job["id"])
    kinds = [e for e, _ in stream]
    assert kinds[-1] == "end" and set(kinds[:-1]) <= {"progress"}
    final = stream[-1][1]
    assert final["state"] == "succeeded", final
    adding = [j["done"] for e, j in stream if j["phase"] == "adding"]
    assert adding == sorted(adding)  # monotonic
    assert final["result"]["vectors"] == 6000
    info = client.get("/collections/c").json()
    assert info["index"] == job["params"]["spec"] and info["segments"] == 1
    assert info["indexed_count"] == 6000
    q = x[:20]
    found = 0
    for v in q:
        r = client.post("/collections/c/search", json={"vector": v.tolist(), "k": 10}).json()
        assert r["exact"] is False
        truth = set(np.argsort(-(x @ v))[:10].tolist())
        found += len(truth & {h["id"] for h in r["hits"]})
    assert found / 200 >= 0.9
    assert no_stage_dirs(settings.data_dir)


def test_bad_spec_and_unknown_collection(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    r = client.post("/collections/c/index", json={"spec": "HNSW(q=1)"})
    assert r.status_code == 422 and "unknown parameter" in r.json()["message"]
    assert client.post("/collections/zz/index", json={"spec": "Flat"}).status_code == 404
    assert client.get("/jobs/nope").status_code == 404


def test_cancel_keeps_old_index_and_leaves_no_files(client: TestClient, settings: Any) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    x = fill(client, 40_000)
    job = client.post("/collections/c/index", json={"spec": SLOW_HNSW}).json()
    wait_state(client, job["id"], lambda j: j["phase"] == "adding")
    r = client.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 200
    final = wait_state(client, job["id"], lambda j: j["state"] != "running")
    assert final["state"] == "cancelled"
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 409
    info = client.get("/collections/c").json()
    assert info["index"] == "Flat" and info["count"] == 40_000
    r = client.post("/collections/c/search", json={"vector": x[7].tolist(), "k": 3}).json()
    assert r["exact"] is True
    assert [h["id"] for h in r["hits"]] == np.argsort(-(x @ x[7]))[:3].tolist()
    time.sleep(0.5)
    assert no_stage_dirs(settings.data_dir) and not worker_pids(settings.data_dir)


def test_search_during_build_sees_new_points_exactly(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    fill(client, 30_000)
    job = client.post("/collections/c/index", json={"spec": SLOW_HNSW}).json()
    wait_state(client, job["id"], lambda j: j["phase"] == "adding")
    y = fill(client, 50, seed=5, start=1_000_000)
    for i in range(0, 50, 7):
        r = client.post("/collections/c/search", json={"vector": (y[i] * 10).tolist(), "k": 1})
        assert r.json()["hits"][0]["id"] == 1_000_000 + i
    client.post(f"/jobs/{job['id']}/cancel")
    wait_state(client, job["id"], lambda j: j["state"] != "running")


def test_worker_killed_fails_with_reason(client: TestClient, settings: Any) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    x = fill(client, 30_000)
    job = client.post("/collections/c/index", json={"spec": SLOW_HNSW}).json()
    wait_state(client, job["id"], lambda j: j["phase"] == "adding")
    for pid in worker_pids(settings.data_dir):
        os.kill(pid, signal.SIGKILL)
    final = wait_state(client, job["id"], lambda j: j["state"] != "running")
    assert final["state"] == "failed" and "exited with code -9" in final["error"]
    r = client.post("/collections/c/search", json={"vector": x[1].tolist(), "k": 1}).json()
    assert r["hits"][0]["id"] == int(np.argmax(x @ x[1]))
    assert no_stage_dirs(settings.data_dir)
    # the collection can still be rebuilt afterwards
    again = client.post("/collections/c/index", json={"spec": FAST_HNSW}).json()
    assert events(client, again["id"])[-1][1]["state"] == "succeeded"


def test_server_killed_mid_build_resumes_after_restart(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data").start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        c.post("/collections", json={"name": "c", "dim": D})
        x = fill(c, 30_000)
        job = c.post("/collections/c/index", json={"spec": SLOW_HNSW}).json()
        wait_state(c, job["id"], lambda j: j["phase"] == "adding")
    srv.kill()
    for pid in worker_pids(tmp_path / "data"):  # an orphaned worker would finish; kill it
        os.kill(pid, signal.SIGKILL)
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        final = wait_state(c, job["id"], lambda j: j["state"] in ("succeeded", "failed"), 300)
        assert final["state"] == "succeeded", final
        assert final["attempts"] == 2
        info = c.get("/collections/c").json()
        assert info["index"] == job["params"]["spec"] and info["count"] == 30_000
        r = c.post("/collections/c/search", json={"vector": x[3].tolist(), "k": 1}).json()
        assert r["hits"][0]["id"] == 3
    srv.stop()
    assert no_stage_dirs(tmp_path / "data")


def test_compaction_frees_disk_and_memory(tmp_path: Path) -> None:
    # Seals only on flush: the shared fixture's tiny seal threshold lets a background merge
    # (which also drops dead rows) race the compaction and take the rows it should count.
    settings = Settings(data_dir=tmp_path / "data", seal_threshold=1_000_000, max_segments=8)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        _compaction_frees_disk_and_memory(client)


def _compaction_frees_disk_and_memory(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    x = fill(client, 8000)
    client.post("/collections/c/flush")
    before = client.get("/collections/c").json()
    r = client.post("/collections/c/points/delete", json={"ids": list(range(0, 8000, 2))})
    assert r.json()["deleted"] == 4000
    y = np.random.default_rng(3).standard_normal((500, D), dtype=np.float32)
    pts = [{"id": 2 * j + 1, "vector": v.tolist()} for j, v in enumerate(y)]
    client.put("/collections/c/points", json={"points": pts})  # replacements leave dead rows
    client.post("/collections/c/flush")
    job = client.post("/collections/c/compact").json()
    assert job["kind"] == "compact"
    final = events(client, job["id"])[-1][1]
    assert final["state"] == "succeeded", final
    res = final["result"]
    assert res["dropped"] == 4500 and res["vectors"] == 4000 and res["bytes_freed"] > 0, res
    after = client.get("/collections/c").json()
    assert after["count"] == 4000 and after["segments"] == 1
    assert after["bytes_on_disk"] < before["bytes_on_disk"]
    assert after["bytes_in_memory"] < before["bytes_in_memory"]
    x = x.copy()
    x[1:1000:2] = y
    odd = np.arange(1, 8000, 2)
    for q in (x[1001], y[3]):
        r = client.post("/collections/c/search", json={"vector": q.tolist(), "k": 5}).json()
        assert [h["id"] for h in r["hits"]] == odd[np.argsort(-(x[odd] @ q))][:5].tolist()
