"""Structured JSON logs with request ids; ``X-Request-Id`` on every response."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import Server, wait_ready

from app.api.app import create_app
from app.config import Settings
from app.logs import JsonFormatter, RequestIdFilter, request_id


def test_json_formatter_carries_the_request_id() -> None:
    record = logging.LogRecord("x.y", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    token = request_id.set("abc123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    record.status = 201  # an ``extra=`` field
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == "hello you" and out["level"] == "warning" and out["logger"] == "x.y"
    assert out["request_id"] == "abc123" and out["status"] == 201 and out["ts"].endswith("+00:00")


def test_responses_carry_request_ids(client: TestClient) -> None:
    a, b = client.get("/healthz"), client.get("/collections/nope")
    assert (
        len(a.headers["x-request-id"]) == 32
        and a.headers["x-request-id"] != b.headers["x-request-id"]
    )
    assert b.status_code == 404 and "x-request-id" in b.headers
    r = client.get("/healthz", headers={"x-request-id": "trace-42.a"})
    assert r.headers["x-request-id"] == "trace-42.a"
    r = client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
    r = client.post("/collections", content=b"x" * 10, headers={"content-length": "99999999999"})
    assert r.status_code == 413 and "x-request-id" in r.headers


def test_server_writes_json_logs_with_request_ids(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_LOG_LEVEL="info").start()
    try:
        r = httpx.post(
            f"{srv.url}/collections",
            json={"name": "c", "dim": 2},
            headers={"x-request-id": "req-create-1"},
        )
        assert r.status_code == 201 and r.headers["x-request-id"] == "req-create-1"
        r = httpx.get(f"{srv.url}/collections/zz")
        missing = r.headers["x-request-id"]
    finally:
        srv.stop()
    deadline = time.monotonic() + 5
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        lines = (tmp_path / f"server-{srv.port}.log").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        if any(r.get("request_id") == missing for r in records):
            break
        time.sleep(0.05)
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    by_id = {r.get("request_id"): r for r in records if r.get("msg") == "request"}
    create = by_id["req-create-1"]
    assert create["status"] == 201 and create["route"] == "/collections"
    assert create["method"] == "POST" and float(create["duration_ms"]) >= 0  # type: ignore[arg-type]
    assert by_id[missing]["status"] == 404 and by_id[missing]["path"] == "/collections/zz"
    # uvicorn's own records go through the same JSON handler
    assert any(str(r["logger"]).startswith("uvicorn") for r in records)


def test_access_records_name_the_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth="on", admin_key="root")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        key = c.post("/keys", json={"role": "read"}, headers={"api-key": "root"}).json()
        with caplog.at_level(logging.INFO, logger="innerspace.access"):
            r = c.get("/collections", headers={"api-key": key["key"]})
            c.get("/collections")
    records = [x for x in caplog.records if x.name == "innerspace.access"]
    ok = next(x for x in records if getattr(x, "request_id", None) == r.headers["x-request-id"])
    assert ok.key_id == key["id"] and ok.status == 200  # type: ignore[attr-defined]
    assert any(getattr(x, "status", None) == 401 and x.key_id is None for x in records)  # type: ignore[attr-defined]
