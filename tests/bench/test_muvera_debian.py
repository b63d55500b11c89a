"""The Debian MUVERA scale benchmark on a tiny fake token cache (no encoder, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.muvera_debian import KEYS, TOKENS, main, split
from bench.muvera_debian_run import BEGIN, END, with_block


def _sets(rng: np.random.Generator, n: int, dim: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(rng.integers(1, hi, n), out=offsets[1:])
    tokens = rng.standard_normal((offsets[-1], dim)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    return tokens.astype(np.float16), offsets


def test_split_holds_out_seeded_synopses() -> None:
    rng = np.random.default_rng(0)
    desc, syn = _sets(rng, 7, 4, 5), _sets(rng, 9, 4, 5)
    data = split(desc, syn, 3, seed=0)
    pick = np.sort(np.random.default_rng(0).choice(9, 3, replace=False))
    assert data.n_docs == 7 + 6 and data.n_queries == 3
    s_t, s_o = syn
    for i, row in enumerate(pick):
        np.testing.assert_array_equal(data.queries()[i], s_t[s_o[row] : s_o[row + 1]])
    kept = [r for r in range(9) if r not in set(pick)]
    docs = data.docs()
    np.testing.assert_array_equal(docs[0], desc[0][: desc[1][1]])
    for j, row in enumerate(kept):
        np.testing.assert_array_equal(docs[7 + j], s_t[s_o[row] : s_o[row + 1]])


def test_bench_muvera_debian_tiny(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (d_t, d_o), (s_t, s_o) = _sets(rng, 200, 64, 12), _sets(rng, 150, 64, 6)
    arrays = dict(zip(KEYS, (d_t, d_o, s_t, s_o), strict=True))
    np.savez(tmp_path / TOKENS, **arrays)  # type: ignore[arg-type]
    out = tmp_path / "muvera_debian.json"
    main(["--tiny", "--nq", "20", "--cache", str(tmp_path), "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["docs"] == 200 + 130 and result["queries"] == 10
    assert [r["preset"] for r in result["rows"]] == ["wide", "compact"]
    for row in result["rows"]:
        for c in (50, 100):
            assert 0.0 <= row[f"c{c}"]["recall"] <= 1.0
    assert {"gap_1", "within_1pct"} <= set(result["margins"])
    assert list(tmp_path.glob("debian-maxsim-top200-*.npz"))  # ground truth cached
    again = ["--tiny", "--nq", "20", "--cache", str(tmp_path), "--out", str(out), "--update"]
    main([*again, "--configs", "wide:HNSW(m=8,ef_construction=20,ef_search=64)"])
    merged = json.loads(out.read_text())
    assert [r["inner"].split("(")[0] for r in merged["rows"]] == ["Flat", "HNSW", "HNSW"]
    assert len(merged["commands"]) == 2


def test_block_replaces_in_place() -> None:
    section = "\nintro\n\n### Inner PQ vs Flat: x\n\nRaw figures: `bench/results/muvera.json`.\n"
    once = with_block(section, f"{BEGIN}\nA\n{END}")
    assert once.index("A") < once.index("### Inner PQ")
    twice = with_block(once, f"{BEGIN}\nB\n{END}")
    assert "\nA\n" not in twice and twice.count(BEGIN) == 1
    assert twice.replace("B", "A") == once
