"""``bench.load``: a bounded run in the default test run (4 clients, 3 s, 2k x 32) and the full
32 clients x 60 s under ``-m slow``. Both need zero errors and every acknowledged write read
back; the full run also the server-memory bound (see :mod:`bench.load_report`). Latency and
throughput are measured, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_load(tmp_path: Path, *args: str, timeout: float) -> tuple[dict[str, Any], str]:
    out = tmp_path / "load.json"
    cmd = [sys.executable, "-m", "bench.load", *args, "--out", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.exists(), r.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["errors"] == 0, result["error_samples"]
    check = result["correctness"]
    assert check["ok"], check
    assert r.returncode == 0, r.stderr[-3000:]
    return result, r.stdout


def check_figures(result: dict[str, Any], clients: int, seconds: float) -> None:
    assert result["config"]["clients"] == clients
    assert seconds <= result["elapsed_s"] < seconds + 30  # bounded: every client stops
    for op in ("search", "search_filtered", "upsert"):
        o = result["ops"][op]
        assert o["requests"] > 0 and o["errors"] == 0
        assert 0 < o["p50_ms"] <= o["p99_ms"] <= o["max_ms"]
    check = result["correctness"]
    assert check["unknown"] == 0 and check["read_back"] == check["count"] == check["points"]
    assert check["missing"] == check["extra"] == check["wrong_vector"] == 0
    assert check["wrong_payload"] == check["mismatch"] == 0
    assert check["same"] + check["near_tie"] == check["queries"] > 0
    rss = result["rss"]
    assert 0 < rss["start_bytes"] <= rss["peak_bytes"] and rss["end_bytes"] <= rss["peak_bytes"]
    assert len(rss["samples"]) >= 0.8 * seconds  # about one a second (a busy loop may lag)


def test_load_smoke(tmp_path: Path) -> None:
    before = (ROOT / "BENCHMARKS.md").read_text()
    result, stdout = run_load(tmp_path, "--tiny", timeout=180)
    check_figures(result, clients=4, seconds=3)
    assert result["correctness"]["points"] > 2000  # upserts added new points
    assert "## Sustained load (4 clients, 3 s)" in stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # tiny runs never overwrite results


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_load_32_clients_60_s(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    args = ("--clients", "32", "--seconds", "60", "--markdown", str(md))
    result, _ = run_load(tmp_path, *args, timeout=600)
    check_figures(result, clients=32, seconds=60)
    rss = result["rss"]
    assert rss["stable"], rss["second_half_growth_bytes"] - rss["bound_bytes"]
    assert rss["second_half_growth_bytes"] <= rss["bound_bytes"]
    assert "<!-- load:begin -->" in md.read_text() and "**stable**" in md.read_text()
