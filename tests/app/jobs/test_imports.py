"""Import jobs: every format round-trips exactly; bad lines are reported by number."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

N, D = 100_000, 16


def wait_job(client: TestClient, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise TimeoutError(job_id)


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(99)
    return rng.choice(10**12, size=N, replace=False).astype(np.int64), rng.standard_normal(
        (N, D), dtype=np.float32
    )


def write(fmt: str, tmp: Path, ids: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    if fmt == "ndjson":
        p = tmp / "data.ndjson"
        with open(p, "w") as fh:
            for i, v in zip(ids.tolist(), x.tolist(), strict=True):
                fh.write(json.dumps({"id": i, "vector": v, "payload": {"k": i % 7}}) + "\n")
        return {"path": str(p)}
    if fmt == "npy":
        np.save(tmp / "x.npy", x)
        np.save(tmp / "ids.npy", ids)
        with open(tmp / "p.ndjson", "w") as fh:
            fh.writelines(json.dumps({"k": i % 7}) + "\n" for i in ids.tolist())
        return {
            "path": str(tmp / "x.npy"),
            "ids_path": str(tmp / "ids.npy"),
            "payloads_path": str(tmp / "p.ndjson"),
        }
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": pa.array(ids),
            "vector": pa.array(list(x), type=pa.list_(pa.float32())),
            "payload": pa.array([json.dumps({"k": i % 7}) for i in ids.tolist()]),
        }
    )
    pq.write_table(table, tmp / "data.parquet")
    return {"path": str(tmp / "data.parquet")}


@pytest.mark.parametrize("fmt", ["ndjson", "npy", "parquet"])
def test_import_matches_source_exactly(
    client: TestClient, tmp_path: Path, fmt: str, source: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, x = source
    client.post("/collections", json={"name": "c", "dim": D})
    body = write(fmt, tmp_path, ids, x)
    r = client.post("/collections/c/import", json=body)
    assert r.status_code == 202 and r.json()["kind"] == "import"
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["imported"] == N and job["result"]["failed"] == 0
    assert job["done"] == job["total"] == N
    assert client.get("/collections/c").json()["count"] == N
    for j in np.random.default_rng(1).choice(N, 25, replace=False):
        got = client.get(f"/collections/c/points/{ids[j]}", params={"with_vector": True}).json()
        np.testing.assert_array_equal(np.asarray(got["vector"], np.float32), x[j])
        assert got["payload"] == {"k": int(ids[j]) % 7}
    q = x[123]
    hits = client.post("/collections/c/search", json={"vector": q.tolist(), "k": 5}).json()
    assert [h["id"] for h in hits["hits"]] == ids[np.argsort(-(x @ q))[:5]].tolist()


def test_malformed_lines_reported_with_numbers(client: TestClient, tmp_path: Path) -> None:
    client.post("/collections", json={"name": "c", "dim": 2})
    lines = [
        '{"id": 1, "vector": [1, 2]}',
        "{not json",
        '{"id": 2, "vector": [1]}',
        "",
        '{"id": 3, "vector": [1, NaN]}',
        '{"id": true, "vector": [1, 2]}',
        '{"vector": [1, 2]}',
        '{"id": "x", "vector": [1, 2], "payload": 5}',
        '{"id": 4, "vector": [3, 4], "payload": {"a": 1}}',
        '{"id": 1, "vector": [5, 6]}',
    ]
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n")
    r = client.post("/collections/c/import", json={"path": str(tmp_path / "f.jsonl")})
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded"
    res = job["result"]
    assert res["imported"] == 3 and res["failed"] == 6
    assert [e["line"] for e in res["errors"]] == [2, 3, 5, 6, 7, 8]
    assert "invalid JSON" in res["errors"][0]["error"]
    assert "2 numbers" in res["errors"][1]["error"]
    # a repeated id: the later line wins
    got = client.get("/collections/c/points/1", params={"with_vector": True}).json()
    assert got["vector"] == [5, 6]


def test_upload_route_and_errors(client: TestClient, tmp_path: Path) -> None:
    client.post("/collections", json={"name": "c", "dim": 2})
    body = b'{"id": 1, "vector": [1, 2]}\n{"id": 2, "vector": [3, 4]}\n'
    r = client.post("/collections/c/import/upload", params={"format": "ndjson"}, content=body)
    assert r.status_code == 202
    job = wait_job(client, r.json()["id"])
    assert job["result"]["imported"] == 2
    assert not Path(job["params"]["path"]).exists()  # the spooled upload is removed
    r = client.post("/collections/c/import", json={"path": str(tmp_path / "missing.npy")})
    assert r.status_code == 422 and "not a readable file" in r.json()["message"]
    (tmp_path / "f.txt").write_text("x")
    r = client.post("/collections/c/import", json={"path": str(tmp_path / "f.txt")})
    assert r.status_code == 422 and "format" in r.json()["message"]
    r = client.post("/collections/zz/import", json={"path": str(tmp_path / "f.txt")})
    assert r.status_code == 404


def test_text_lines_are_encoded(client: TestClient, tmp_path: Path) -> None:
    client.post("/collections", json={"name": "t", "encoder": "test-hash(dim=16,max_tokens=3)"})
    lines = [
        json.dumps({"id": 1, "text": "red apples", "payload": {"k": 1}}),
        json.dumps({"id": 2, "text": "one two three four five"}),
        json.dumps({"id": 3, "vector": [0.25] * 16}),
        json.dumps({"id": 4, "text": 7}),
    ]
    (tmp_path / "t.ndjson").write_text("\n".join(lines) + "\n")
    job = wait_job(
        client,
        client.post("/collections/t/import", json={"path": str(tmp_path / "t.ndjson")}).json()[
            "id"
        ],
    )
    assert job["state"] == "succeeded", job
    res = job["result"]
    assert res["imported"] == 3 and res["failed"] == 1 and res["truncated"] == 1
    assert res["errors"][0]["line"] == 4
    got = client.get("/collections/t/points/1").json()
    assert got["payload"] == {"k": 1, "text": "red apples"}
    hits = client.post("/collections/t/search", json={"text": "red apples", "k": 1}).json()
    assert hits["hits"][0]["id"] == 1


def test_ndjson_token_vectors_into_a_multivector_collection(
    client: TestClient, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    docs = [rng.standard_normal((int(t), D)).astype(np.float32) for t in rng.integers(1, 6, 50)]
    lines = [json.dumps({"id": i, "vectors": d.tolist()}) for i, d in enumerate(docs)]
    lines[7] = json.dumps({"id": 7, "vectors": []})
    lines[8] = json.dumps({"id": 8, "vector": [0.0] * D})
    lines[9] = json.dumps({"id": 9, "vectors": [[0.0] * D, [1.0] * 3]})
    (tmp_path / "m.ndjson").write_text("\n".join(lines) + "\n")
    client.post("/collections", json={"name": "m", "dim": D, "multivector": True})
    r = client.post("/collections/m/import", json={"path": str(tmp_path / "m.ndjson")})
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["imported"] == 47 and job["result"]["failed"] == 3
    errors = {e["line"]: e["error"] for e in job["result"]["errors"]}
    assert "empty" in errors[8] and "needs 'vectors'" in errors[9]
    assert "has 3 dimensions" in errors[10]
    got = client.get("/collections/m/points/4", params={"with_vector": True}).json()
    np.testing.assert_array_equal(np.asarray(got["vectors"], np.float32), docs[4])
