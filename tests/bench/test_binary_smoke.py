"""``bench.binary`` in its tiny configuration, so the benchmark cannot rot (its figures are not
checked here: the benchmark measures them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_binary_tiny(tmp_path: Path) -> None:
    before = (ROOT / "BENCHMARKS.md").read_text()
    out = tmp_path / "binary.json"
    r = subprocess.run(
        [sys.executable, "-m", "bench.binary", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "## Binary codes + exact re-scoring" in r.stdout and "Targets (issue 5)" in r.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # tiny runs never overwrite results
    result = json.loads(out.read_text())
    assert result["commit"] and [s["data"] for s in result["sets"]] == ["real", "synthetic"]
    for s in result["sets"]:
        assert set(s["contenders"]) >= {"rabitq-1", "rabitq-2", "sign", "itq", "faiss-rabitq-1"}
        for c in s["contenders"].values():
            assert len(c["recall"]) == 5 and all(0 <= v <= 1 for v in c["recall"].values())
        assert s["speed"]["p50_s"]["flat"] > 0
