"""The memory guardrail: a build that would pass INNERSPACE_MEMORY_BUDGET_BYTES gets 507."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings
from app.errors import InsufficientStorage
from app.guard import check_budget, estimate_index_bytes
from index.spec import index_factory


def test_estimates_track_real_index_sizes() -> None:
    rng = np.random.default_rng(0)
    n, dim = 2000, 32
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ids = np.arange(n, dtype=np.int64)
    for spec in ("Flat", "HNSW(m=16)", "IVF(nlist=16)"):
        index = index_factory(dim, spec)
        index.add(ids, x)
        real, est = index.nbytes(), estimate_index_bytes(spec, dim, n)
        assert 0.9 * real <= est <= 1.2 * real, (spec, real, est)
    assert estimate_index_bytes("HNSW(m=64)", dim, n) > estimate_index_bytes("HNSW(m=8)", dim, n)
    assert estimate_index_bytes("not a spec((", dim, n) == n * (dim * 4 + 9)


def test_check_budget() -> None:
    check_budget(None, 10**12, 10**12, "anything")
    check_budget(100, 60, 40, "fits exactly")
    with pytest.raises(InsufficientStorage) as exc:
        check_budget(100, 60, 41, "one byte over")
    assert exc.value.status == 507
    assert exc.value.details == {"needed_bytes": 41, "in_use_bytes": 60, "budget_bytes": 100}


def _app(tmp_path: Path, budget: str | None) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", seal_threshold=64, memory_budget_bytes=budget)
    return TestClient(create_app(settings))


@pytest.mark.parametrize(("budget", "status"), [("16KiB", 507), ("1MiB", 202), (None, 202)])
def test_build_over_budget_is_refused(tmp_path: Path, budget: str | None, status: int) -> None:
    with _app(tmp_path, budget) as c:
        wait_ready(c)
        assert c.post("/collections", json={"name": "c", "dim": 16}).status_code == 201
        pts = [{"id": i, "vector": [float(i % 7)] * 16} for i in range(200)]
        assert c.put("/collections/c/points", json={"points": pts}).status_code == 200
        # vectors in memory: 200 x 16 x 4 = 12.8 kB; a second copy for the build does not fit 16 KiB
        r = c.post("/collections/c/index", json={"spec": "HNSW(m=16)"})
        assert r.status_code == status, r.text
        if status == 507:
            body = r.json()
            assert body["error"] == "insufficient_storage"
            assert "INNERSPACE_MEMORY_BUDGET_BYTES" in body["message"]
            assert body["details"]["budget_bytes"] == 16 * 1024
            assert body["details"]["needed_bytes"] > 0
            assert c.get("/jobs").json()["jobs"] == []  # nothing was queued


def test_muvera_estimate_counts_fdes_and_tokens() -> None:
    spec = "Muvera(k_sim=3,d_proj=8,r_reps=4),Flat,MaxSim(candidates=10)"
    fde_bytes = 1000 * 4 * 8 * 8 * 4  # n * r_reps * 2^k_sim * d_proj * float32
    token_bytes = 5000 * 16 * 4
    est = estimate_index_bytes(spec, 16, 1000, tokens=5000)
    assert fde_bytes + token_bytes < est < 1.1 * (fde_bytes + token_bytes)
    half_spec = spec.replace("r_reps=4", "r_reps=4,store_dtype=float16")
    half = estimate_index_bytes(half_spec, 16, 1000, tokens=5000)
    assert half == est - token_bytes // 2
