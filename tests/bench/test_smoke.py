"""Every benchmark runs in its tiny configuration, so none can rot (figures are not checked:
speed is measured by the benchmarks themselves, never by tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("name", ["http", "jobs"])
def test_bench_tiny(name: str) -> None:
    before = (ROOT / "BENCHMARKS.md").read_text()
    r = run_bench(f"bench.{name}", "--tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"commit"' in r.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # tiny runs never overwrite results


def test_bench_text_tiny() -> None:
    if not SCIFACT.exists():
        pytest.skip(f"SciFact data not found at {SCIFACT}")
    r = run_bench("bench.text", "--tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"service_ndcg10"' in r.stdout


def test_cli_bench_needs_a_checkout(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "app", "bench", "http", "--tiny"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "source checkout" in r.stderr
