"""A real ``innerspace serve`` process: restart, ``kill -9`` and a torn WAL lose nothing
that was acknowledged."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
from support import Server

D = 8


def upsert(url: str, ids: list[int], x: np.ndarray) -> httpx.Response:
    pts = [
        {"id": i, "vector": v.tolist(), "payload": {"i": i}} for i, v in zip(ids, x, strict=True)
    ]
    return httpx.put(f"{url}/collections/c/points", json={"points": pts}, timeout=30)


def check_points(url: str, acked: dict[int, np.ndarray]) -> None:
    count = httpx.get(f"{url}/collections/c", timeout=30).json()["count"]
    assert count == len(acked)
    for i, v in acked.items():
        r = httpx.get(f"{url}/collections/c/points/{i}", params={"with_vector": True}, timeout=30)
        assert r.status_code == 200, i
        assert r.json()["payload"] == {"i": i}
        np.testing.assert_array_equal(np.asarray(r.json()["vector"], np.float32), v)


def test_restart_keeps_data(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_SEAL_THRESHOLD="50").start()
    httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": D})
    x = np.random.default_rng(0).standard_normal((120, D)).astype(np.float32)
    assert upsert(srv.url, list(range(120)), x).status_code == 200
    srv.stop()
    srv.start()
    check_points(srv.url, dict(enumerate(x)))
    r = httpx.post(f"{srv.url}/collections/c/search", json={"vector": x[5].tolist(), "k": 1})
    assert r.json()["hits"][0]["id"] == int(np.argmax(x @ x[5]))
    srv.stop()


def test_kill9_after_ack_loses_nothing(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_SEAL_THRESHOLD="40").start()
    httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": D})
    rng = np.random.default_rng(1)
    acked: dict[int, np.ndarray] = {}
    for b in range(6):
        ids = list(range(b * 25, b * 25 + 25))
        x = rng.standard_normal((25, D)).astype(np.float32)
        assert upsert(srv.url, ids, x).status_code == 200
        acked.update(zip(ids, x, strict=True))
    srv.kill()  # right after the last acknowledgement
    srv.start()
    check_points(srv.url, acked)
    srv.stop()


def test_kill9_under_concurrent_writers(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_SEAL_THRESHOLD="64").start()
    httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": D})
    acked: dict[int, np.ndarray] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        rng = np.random.default_rng(w)
        for b in range(200):
            if stop.is_set():
                return
            ids = [w * 100_000 + b * 10 + j for j in range(10)]
            x = rng.standard_normal((10, D)).astype(np.float32)
            try:
                ok = upsert(srv.url, ids, x).status_code == 200
            except httpx.TransportError:
                return  # the server died mid-request: not acknowledged
            if ok:
                with lock:
                    acked.update(zip(ids, x, strict=True))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    while len(acked) < 600:
        threading.Event().wait(0.02)
    srv.kill()
    stop.set()
    for t in threads:
        t.join()
    srv.start()
    count = httpx.get(f"{srv.url}/collections/c").json()["count"]
    assert count >= len(acked)  # in-flight batches may have become durable unacknowledged
    assert count % 10 == 0  # batches are all-or-nothing
    check_subset = dict(list(acked.items())[:: max(1, len(acked) // 100)])
    for i, v in check_subset.items():
        r = httpx.get(f"{srv.url}/collections/c/points/{i}", params={"with_vector": True})
        np.testing.assert_array_equal(np.asarray(r.json()["vector"], np.float32), v)
    srv.stop()


def test_torn_wal_tail_is_recovered(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_SEAL_THRESHOLD="100000").start()
    httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": D})
    x = np.random.default_rng(2).standard_normal((30, D)).astype(np.float32)
    for b in range(3):
        assert upsert(srv.url, list(range(b * 10, b * 10 + 10)), x[b * 10 : b * 10 + 10]).is_success
    srv.kill()
    wal = sorted((tmp_path / "data" / "collections" / "c" / "wal").glob("*.wal"))[-1]
    data = wal.read_bytes()
    # A crash mid-append: the last record is cut in half, then garbage follows.
    wal.write_bytes(data[: len(data) - 100] + b"\x00garbage")
    srv.start()
    check_points(srv.url, {i: x[i] for i in range(20)})
    assert upsert(srv.url, [99], x[:1]).status_code == 200  # the log accepts new writes
    srv.stop()
    srv.start()
    assert httpx.get(f"{srv.url}/collections/c").json()["count"] == 21
    srv.stop()
