"""The peer benchmark in its tiny configuration, with whichever peers are installed, so it cannot
rot (figures are not checked: the benchmark measures speed, tests never do). Peers that are not
importable are skipped and named with the reason; the default test environment has none but
faiss, the ``bench`` extra (or ``/root/.venvs/peers``) has them all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.peers_report import section
from bench.peers_service import DURABLE
from bench.peers_systems import REGISTRY, available, make

ROOT = Path(__file__).resolve().parents[2]


def test_peers_tiny() -> None:
    names, missing = available()
    if all(REGISTRY[n].side == "ours" for n in names):
        pytest.skip(f"no peer installed: {missing}")
    before = (ROOT / "BENCHMARKS.md").read_text()
    r = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout[r.stdout.index("{") :])
    groups = result["datasets"]["synth"]["groups"]
    assert groups and all(g["search"] for g in groups.values())
    ran = {name for g in groups.values() for name in g["systems"]}
    assert ran <= set(names) and ran - {n for n in names if REGISTRY[n].side == "ours"}
    assert result["skipped"] == missing and all(missing.values())  # each absent peer, and why
    http = result["http"]
    assert http["hnsw"]["1"]["ours"]["recall"] > 0
    servers = set(http["hnsw"]["1"]) - {"ours"}
    assert servers | set(http.get("skipped", {})) == {"chroma", "milvus"}
    durable = result["datasets"]["synth"].get("durable_ingest")
    if any(n in DURABLE[1:] for n in names):  # a durable peer ran: our service met it
        assert durable is not None and "ours-service" in durable["ingest"]
        assert all(v["searchable_s"] > 0 for v in durable["ingest"].values())
        assert "**Durable ingest" in section(result)
    assert "## Peers" in section(result)  # the report renders from this JSON
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # tiny runs never overwrite results


def test_unknown_system_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: ours-flat"):
        available(["nope"])


def test_ours_service_is_durable_and_exact(tmp_path: Path) -> None:
    """The embedded-service adapter writes a WAL and answers with the exact top-k."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((4, 16)).astype(np.float32)
    s = make("ours-service", 16, 300, tmp_path)
    try:
        for start in (0, 150):
            s.add(np.arange(start, start + 150, dtype=np.int64), x[start : start + 150])
        assert s.disk_bytes() > x.nbytes  # the WAL holds every vector
        assert s.search(q, 5).tolist() == np.argsort(-(q @ x.T), axis=1)[:, :5].tolist()
    finally:
        s.close()
