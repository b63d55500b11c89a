"""The MUVERA benchmark in its tiny configuration, so it cannot rot (figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.muvera_data import clustered
from bench.muvera_report import markdown

ROOT = Path(__file__).resolve().parents[2]


def test_bench_muvera_tiny(tmp_path: Path) -> None:
    before = (ROOT / "BENCHMARKS.md").read_text()
    out = tmp_path / "muvera.json"
    r = subprocess.run(
        [sys.executable, "-m", "bench.muvera", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {"synthetic", "scale", "goals", "commit"} <= set(result)
    row = result["synthetic"]["rows"][0]
    assert 0.0 <= row["c100"]["recall"] <= 1.0 and row["fde_dim"] == 10240
    assert result["synthetic"]["carving"]["rows"][0]["tau"] is None
    assert result["scale"][0]["c100"]["ms_single"] > 0
    text = markdown(result, (50, 100, 200, 500))
    assert "## MUVERA" in text and "| MUVERA c=100 |" in text
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # tiny runs never overwrite results


def test_clustered_token_sets_are_seeded_unit_rows() -> None:
    a, b = clustered(3, 20, 4, dim=16), clustered(3, 20, 4, dim=16)
    np.testing.assert_array_equal(a.doc_tokens, b.doc_tokens)
    assert a.n_docs == 20 and a.n_queries == 4 and a.dim == 16
    np.testing.assert_allclose(np.linalg.norm(a.query_tokens, axis=1), 1.0, rtol=1e-5)
    sizes = np.diff(a.doc_offsets)
    assert sizes.min() >= 16 and sizes.max() <= 48 and len(a.docs()) == 20
    assert a.head(5).n_docs == 5 and len(a.head(5).doc_tokens) == a.doc_offsets[5]
