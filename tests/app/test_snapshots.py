"""Snapshots and restore: a consistent point-in-time copy that restores to the same state."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from support import brute_force, wait_ready

from app.api.app import create_app
from app.config import Settings

D = 8


def upsert(client: TestClient, state: dict[int, Any], ids: range, rng: Any) -> None:
    x = rng.standard_normal((len(ids), D)).astype(np.float32)
    pts = [
        {"id": i, "vector": v.tolist(), "payload": {"g": i % 3, "v": float(v[0])}}
        for i, v in zip(ids, x, strict=True)
    ]
    for j in range(0, len(pts), 50):  # several batches: crosses the seal threshold
        r = client.put("/collections/c/points", json={"points": pts[j : j + 50]})
        assert r.status_code == 200, r.text
    for p in pts:
        state[int(p["id"])] = (np.asarray(p["vector"], np.float32), p["payload"])


def delete(client: TestClient, state: dict[int, Any], ids: list[int]) -> None:
    r = client.post("/collections/c/points/delete", json={"ids": ids})
    assert r.status_code == 200, r.text
    for i in ids:
        state.pop(i, None)


def wait_job(client: TestClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(job_id)


def snapshot(client: TestClient, name: str = "c") -> dict[str, Any]:
    r = client.post(f"/collections/{name}/snapshots")
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "snapshot"
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded", job
    return job


def seeded(client: TestClient) -> tuple[dict[int, Any], dict[int, Any], str]:
    """Source with sealed segments, a tail and deletes; snapshot it; then change the source.
    Returns (snapshot-time state, current source state, snapshot id)."""
    rng = np.random.default_rng(7)
    client.post("/collections", json={"name": "c", "dim": D})
    state: dict[int, Any] = {}
    upsert(client, state, range(300), rng)
    client.post("/collections/c/flush")
    upsert(client, state, range(250, 330), rng)  # replaces some sealed rows, leaves a tail
    delete(client, state, list(range(0, 40, 3)))
    job = snapshot(client)
    at_snapshot = dict(state)
    upsert(client, state, range(100, 420), rng)  # after the snapshot
    delete(client, state, list(range(200, 260)))
    client.post("/collections/c/flush")
    return at_snapshot, state, job["id"]


def check_equal(client: TestClient, name: str, state: dict[int, Any]) -> None:
    """Points (ids, payloads, vectors) and searches of ``name`` match ``state`` exactly."""
    got: dict[int, Any] = {}
    cursor = None
    while True:
        body = {"limit": 100, "cursor": cursor, "with_vector": True}
        page = client.post(f"/collections/{name}/points/scroll", json=body).json()
        for p in page["points"]:
            got[p["id"]] = (np.asarray(p["vector"], np.float32), p["payload"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(got) == sorted(state)
    for i, (v, payload) in state.items():
        np.testing.assert_array_equal(got[i][0], v)
        assert got[i][1] == payload
    count = client.post(f"/collections/{name}/points/count", json={}).json()["count"]
    assert count == len(state)
    ids = np.array(sorted(state), dtype=np.int64)
    xb = np.stack([state[int(i)][0] for i in ids])
    for q in np.random.default_rng(3).standard_normal((5, D)).astype(np.float32):
        r = client.post(f"/collections/{name}/search", json={"vector": q.tolist(), "k": 10})
        hits = r.json()["hits"]
        s, want = brute_force(xb, ids, q[None], 10)
        assert [h["id"] for h in hits] == want[0].tolist()
        np.testing.assert_allclose([h["score"] for h in hits], s[0], rtol=1e-5)


def test_snapshot_restore_matches_snapshot_time(client: TestClient, settings: Settings) -> None:
    at_snapshot, now, snap_id = seeded(client)
    snap_dir = Path(settings.data_dir) / "snapshots" / "c" / snap_id
    assert (snap_dir / "snapshot.json").is_file()
    listed = client.get("/collections/c/snapshots").json()["snapshots"]
    assert [s["id"] for s in listed] == [snap_id]
    assert listed[0]["count"] == len(at_snapshot)
    assert listed[0]["bytes"] > 0 and listed[0]["last_seq"] > 0
    jobs = client.get("/jobs", params={"collection": "c"}).json()["jobs"]
    assert any(j["id"] == snap_id and j["kind"] == "snapshot" for j in jobs)

    r = client.post(f"/collections/c/snapshots/{snap_id}/restore", json={"target": "copy"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "copy" and r.json()["count"] == len(at_snapshot)
    check_equal(client, "copy", at_snapshot)
    check_equal(client, "c", now)  # the source is untouched
    # the restored collection takes writes like any other
    r = client.put("/collections/copy/points", json={"points": [{"id": 9999, "vector": [1.0] * D}]})
    assert r.status_code == 200
    assert client.post("/collections/copy/points/count", json={}).json()["count"] == (
        len(at_snapshot) + 1
    )


def test_restore_refuses_existing_target_unless_replace(client: TestClient) -> None:
    at_snapshot, now, snap_id = seeded(client)
    r = client.post(f"/collections/c/snapshots/{snap_id}/restore", json={})
    assert r.status_code == 409, r.text
    check_equal(client, "c", now)
    r = client.post(
        f"/collections/c/snapshots/{snap_id}/restore", json={"target": "c", "replace": True}
    )
    assert r.status_code == 200, r.text
    check_equal(client, "c", at_snapshot)


def test_corrupt_snapshot_is_refused(client: TestClient, settings: Settings) -> None:
    _, _, snap_id = seeded(client)
    snap_dir = Path(settings.data_dir) / "snapshots" / "c" / snap_id
    meta = json.loads((snap_dir / "snapshot.json").read_text())
    seg = next(f for f in meta["files"] if f.startswith("segments/") and "vectors" in f)
    path = snap_dir / "files" / seg
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    r = client.post(f"/collections/c/snapshots/{snap_id}/restore", json={"target": "copy"})
    assert r.status_code == 409, r.text
    assert "checksum" in r.json()["message"]
    assert client.get("/collections/copy").status_code == 404
    names = [c["name"] for c in client.get("/collections").json()["collections"]]
    assert names == ["c"]
    leftovers = [p.name for p in (Path(settings.data_dir) / "collections").iterdir()]
    assert leftovers == ["c"]


def test_unknown_snapshot_and_collection(client: TestClient) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    assert client.post("/collections/nope/snapshots").status_code == 404
    assert client.get("/collections/c/snapshots").json() == {"snapshots": []}
    r = client.post("/collections/c/snapshots/abc/restore", json={"target": "x"})
    assert r.status_code == 404


def test_restored_collection_survives_restart(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        at_snapshot, _, snap_id = seeded(client)
        r = client.post(f"/collections/c/snapshots/{snap_id}/restore", json={"target": "copy"})
        assert r.status_code == 200, r.text
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        check_equal(client, "copy", at_snapshot)
        listed = client.get("/collections/c/snapshots").json()["snapshots"]
        assert [s["id"] for s in listed] == [snap_id]


def test_snapshot_during_writes_is_a_consistent_prefix(client: TestClient) -> None:
    """Writes continue while the snapshot is taken; the restored collection holds exactly the
    writes up to some point (a prefix of the write order), with its reported count."""
    rng = np.random.default_rng(5)
    client.post("/collections", json={"name": "c", "dim": D})
    state: dict[int, Any] = {}
    upsert(client, state, range(200), rng)
    x = rng.standard_normal((400, D)).astype(np.float32)
    stop = threading.Event()

    def writer() -> None:
        for i in range(400):
            if stop.is_set():
                return
            p = {"id": 1000 + i, "vector": x[i].tolist()}
            client.put("/collections/c/points", json={"points": [p]})

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.05)
        job = snapshot(client)
    finally:
        stop.set()
        t.join()
    r = client.post(f"/collections/c/snapshots/{job['id']}/restore", json={"target": "copy"})
    assert r.status_code == 200, r.text
    count = r.json()["count"]
    assert count == job["result"]["count"]
    m = count - 200
    assert 0 <= m <= 400, m
    want = dict(state)
    for i in range(m):
        want[1000 + i] = (x[i], None)
    check_equal(client, "copy", want)
