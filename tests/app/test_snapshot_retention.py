"""Deleting snapshots (``DELETE /collections/{name}/snapshots/{id}``) and retention
(``INNERSPACE_SNAPSHOT_KEEP``), over HTTP against the app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings
from app.store import snapshots as snapmod

D = 4


def wait_job(client: TestClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise TimeoutError(job_id)


def upsert(client: TestClient, ids: range) -> None:
    x = np.random.default_rng(ids.start).standard_normal((len(ids), D))
    pts = [{"id": i, "vector": v.tolist()} for i, v in zip(ids, x, strict=True)]
    assert client.put("/collections/c/points", json={"points": pts}).status_code == 200


def snapshot(client: TestClient) -> dict[str, Any]:
    r = client.post("/collections/c/snapshots")
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded", job
    return job


def listed(client: TestClient) -> list[str]:
    return [s["id"] for s in client.get("/collections/c/snapshots").json()["snapshots"]]


@pytest.fixture
def snap_root(settings: Settings) -> Path:
    return Path(settings.data_dir) / "snapshots" / "c"


def test_delete_removes_the_snapshot_and_its_files(client: TestClient, snap_root: Path) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    upsert(client, range(100))
    first = snapshot(client)["id"]
    upsert(client, range(100, 150))
    second = snapshot(client)["id"]
    assert listed(client) == [first, second]

    r = client.delete(f"/collections/c/snapshots/{first}")
    assert r.status_code == 204, r.text
    assert listed(client) == [second]
    assert sorted(p.name for p in snap_root.iterdir()) == [second]  # no trash left behind
    r = client.delete(f"/collections/c/snapshots/{first}")
    assert r.status_code == 404 and first in r.json()["message"]
    r = client.post(f"/collections/c/snapshots/{first}/restore", json={"target": "copy"})
    assert r.status_code == 404
    r = client.post(f"/collections/c/snapshots/{second}/restore", json={"target": "copy"})
    assert r.status_code == 200 and r.json()["count"] == 150

    # snapshots outlive their collection, and so can still be deleted
    assert client.delete("/collections/c").status_code == 204
    assert client.delete(f"/collections/c/snapshots/{second}").status_code == 204
    assert listed(client) == []


@pytest.mark.parametrize("snap_id", ["nope", ".stage-x", ".trash-x", "%2E%2E", "a%2F..%2F.."])
def test_delete_unknown_is_404(client: TestClient, snap_id: str) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    snapshot(client)
    r = client.delete(f"/collections/c/snapshots/{snap_id}")
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"
    assert len(listed(client)) == 1
    assert client.delete("/collections/other/snapshots/nope").status_code == 404


def test_names_that_cannot_be_paths_are_404_not_500(client: TestClient) -> None:
    """Over-long or dotted names never reach the file system (was 500 File name too long)."""
    client.post("/collections", json={"name": "c", "dim": D})
    snapshot(client)
    long_name, long_id = "x" * 300, "y" * 300
    assert client.get(f"/collections/{long_name}/snapshots").status_code == 404
    assert client.get("/collections/%2E%2E/snapshots").status_code == 404
    r = client.post(f"/collections/c/snapshots/{long_id}/restore", json={})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert client.delete(f"/collections/c/snapshots/{long_id}").status_code == 404
    assert client.delete(f"/collections/{long_name}/snapshots/{long_id}").status_code == 404
    assert len(listed(client)) == 1


def test_delete_is_durable(
    client: TestClient, snap_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot leaves its name (rename + fsync of the directory) before its files go,
    and a trash directory a crash left behind is swept."""
    client.post("/collections", json={"name": "c", "dim": D})
    upsert(client, range(50))
    keep, drop = snapshot(client)["id"], snapshot(client)["id"]
    (snap_root / ".trash-crashed" / "files").mkdir(parents=True)
    seen: list[list[str]] = []
    real = snapmod.fsync_dir

    def fsync_dir(path: Path) -> None:
        if path == snap_root:
            seen.append(sorted(p.name for p in path.iterdir()))
        real(path)

    monkeypatch.setattr(snapmod, "fsync_dir", fsync_dir)
    assert client.delete(f"/collections/c/snapshots/{drop}").status_code == 204
    assert seen == [sorted([keep, f".trash-{drop}"]), [keep]]


def test_delete_while_being_written_is_409(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running snapshot job (held mid-copy) and a queued one behind it: both 409; once
    they finish, both delete."""
    release, started = threading.Event(), threading.Event()
    real = snapmod.create

    def slow_create(*args: Any) -> dict[str, Any]:
        started.set()
        assert release.wait(30)
        return real(*args)

    monkeypatch.setattr(snapmod, "create", slow_create)
    settings = Settings(data_dir=tmp_path / "data", job_workers=1)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        client.post("/collections", json={"name": "c", "dim": D})
        upsert(client, range(20))
        running = client.post("/collections/c/snapshots").json()["id"]
        assert started.wait(30)
        queued = client.post("/collections/c/snapshots").json()["id"]
        try:
            for snap_id, state in ((running, "running"), (queued, "queued")):
                r = client.delete(f"/collections/c/snapshots/{snap_id}")
                assert r.status_code == 409, r.text
                assert "being written" in r.json()["message"] and state in r.json()["message"]
        finally:
            release.set()
        for snap_id in (running, queued):
            assert wait_job(client, snap_id)["state"] == "succeeded"
            assert client.delete(f"/collections/c/snapshots/{snap_id}").status_code == 204


def test_restore_of_a_snapshot_deleted_meanwhile_is_404(
    client: TestClient, settings: Settings, snap_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/collections", json={"name": "c", "dim": D})
    upsert(client, range(100))
    snap_id = snapshot(client)["id"]
    real = snapmod.verify

    def verify_after_delete(root: Path, meta: dict[str, Any]) -> None:
        snapmod.delete(root, str(meta["id"]))  # lands between the lookup and the checksums
        real(root, meta)

    monkeypatch.setattr(snapmod, "verify", verify_after_delete)
    r = client.post(f"/collections/c/snapshots/{snap_id}/restore", json={"target": "copy"})
    assert r.status_code == 404, r.text
    assert "deleted" in r.json()["message"]
    assert client.get("/collections/copy").status_code == 404
    assert [p.name for p in (Path(settings.data_dir) / "collections").iterdir()] == ["c"]


@pytest.fixture
def keep2(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", snapshot_keep=2))) as c:
        wait_ready(c)
        yield c


def test_retention_keeps_the_newest(keep2: TestClient) -> None:
    keep2.post("/collections", json={"name": "c", "dim": D})
    taken: list[str] = []
    for round_ in range(4):
        upsert(keep2, range(round_ * 10, round_ * 10 + 10))
        job = snapshot(keep2)
        taken.append(job["id"])
        assert job["result"]["pruned"] == taken[:-2][-1:]  # at most one beyond two per round
        assert listed(keep2) == taken[-2:]
    r = keep2.post(f"/collections/c/snapshots/{taken[-1]}/restore", json={"target": "copy"})
    assert r.status_code == 200 and r.json()["count"] == 40
    r = keep2.post(f"/collections/c/snapshots/{taken[-2]}/restore", json={"target": "copy2"})
    assert r.status_code == 200 and r.json()["count"] == 30


def test_retention_is_per_collection(keep2: TestClient) -> None:
    for name in ("c", "d"):
        keep2.post("/collections", json={"name": name, "dim": D})
    for name in ("d", "c", "c", "c"):
        r = keep2.post(f"/collections/{name}/snapshots")
        assert wait_job(keep2, r.json()["id"])["state"] == "succeeded"
    assert len(listed(keep2)) == 2
    assert len(keep2.get("/collections/d/snapshots").json()["snapshots"]) == 1


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Settings(snapshot_keep=0)
