"""Per-key rate limits: token buckets, 429 with Retry-After."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings
from app.errors import TooManyRequests
from app.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_bursts_then_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(read_per_minute=60, write_per_minute=None, clock=clock)
    for _ in range(60):  # a minute's worth at once
        limiter.hit("a", "read")
    with pytest.raises(TooManyRequests) as exc:
        limiter.hit("a", "read")
    assert exc.value.status == 429 and exc.value.headers() == {"Retry-After": "1"}
    limiter.hit("b", "read")  # another key has its own bucket
    for _ in range(100):
        limiter.hit("a", "write")  # no write limit
    clock.t += 1.0  # one request per second refills
    limiter.hit("a", "read")
    with pytest.raises(TooManyRequests):
        limiter.hit("a", "read")


def test_retry_after_rounds_up() -> None:
    clock = Clock()
    limiter = RateLimiter(None, write_per_minute=2, clock=clock)
    limiter.hit("k", "write")
    limiter.hit("k", "write")
    with pytest.raises(TooManyRequests) as exc:
        limiter.hit("k", "write")
    assert exc.value.retry_after == 30
    clock.t += 29.5
    with pytest.raises(TooManyRequests) as exc:
        limiter.hit("k", "write")
    assert exc.value.retry_after == 1


def test_http_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", auth="on", admin_key="root", read_rate_limit=3,
        write_rate_limit=2,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        root = {"api-key": "root"}
        assert c.post("/collections", json={"name": "c", "dim": 2}, headers=root).status_code == 201
        assert c.post("/keys", json={"role": "read"}, headers=root).status_code == 201
        # root spent both writes: the next one waits, reads are counted apart
        r = c.post("/collections", json={"name": "d", "dim": 2}, headers=root)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        statuses = [c.get("/collections/c", headers=root).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        r = c.get("/collections/c", headers=root)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 20
        assert r.json()["details"] == {"limit_per_minute": 3, "kind": "read"}
        # 401s cost nothing and health checks are never limited
        assert c.get("/collections/c").status_code == 401
        assert all(c.get("/healthz").status_code == 200 for _ in range(10))


def test_without_auth_the_limit_is_per_client(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", read_rate_limit=2)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert [c.get("/collections").status_code for _ in range(3)] == [200, 200, 429]
