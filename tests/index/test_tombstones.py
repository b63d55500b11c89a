"""Tombstones (sorted dead rows, or a bitmap once dense) against a plain bool column, through
random removals interleaved with growth; their memory; the index-level RAM report."""

from __future__ import annotations

import numpy as np
import pytest

from index import index_factory
from index.binary import BinaryIndex
from index.tombstones import DENSE, Tombstones


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tombstones_match_a_bool_column(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, dead = 3000, np.zeros(0, dtype=bool)
    t = Tombstones()
    for _ in range(40):
        n += int(rng.integers(0, 200))  # rows appended: live, past any bitmap
        dead = np.concatenate([dead, np.zeros(n - len(dead), dtype=bool)])
        rows = rng.integers(0, n, int(rng.integers(0, 60)))  # repeats and dead rows included
        before = t
        t, fresh = t.removing(rows, n)
        assert fresh == len(set(rows.tolist()) - set(np.flatnonzero(dead).tolist()))
        assert (t is before) == (fresh == 0)
        dead[rows] = True
        assert len(t) == dead.sum()
        np.testing.assert_array_equal(t.alive(n), ~dead)
        np.testing.assert_array_equal(t.sorted_rows(), np.flatnonzero(dead))
        probe = rng.integers(0, n, int(rng.choice([5, n])))  # binary search and mask paths
        np.testing.assert_array_equal(t.is_dead(probe, n), dead[probe])
        dense = len(t) * DENSE > n
        assert t.bits is not None or not dense  # the bitmap stays once taken
        assert t.nbytes <= max(8 * len(t), -(-n // 8))
    assert t.bits is not None  # ~1500 removals of ~7000 rows: dense by now
    assert Tombstones.of(t.sorted_rows(), n).sorted_rows().tolist() == t.sorted_rows().tolist()


def test_memory_is_the_smaller_form() -> None:
    n = 64_000
    sparse = Tombstones.of(np.arange(0, n, 100, dtype=np.int64), n)  # 640 dead
    assert sparse.bits is None and sparse.nbytes == 640 * 8
    dense = Tombstones.of(np.arange(0, n, 10, dtype=np.int64), n)  # 6400 dead
    assert dense.bits is not None and dense.nbytes == n // 8
    assert Tombstones().nbytes == 0 and len(Tombstones()) == 0


def test_index_ram_stays_within_d8_plus_16_and_an_eighth() -> None:
    """1-bit RaBitQ at d = 128, 32k rows (no block padding): codes + factors + id are the
    d/8 + 16 target with no removals, + 8 B per dead row while sparse, at most + 0.125 B."""
    d, n = 128, 32_768
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    index = index_factory(d, "Binary(bits=1)")
    assert isinstance(index, BinaryIndex)
    index.add(np.arange(n, dtype=np.int64), x)
    ram = [index.bytes_per_vector()["ram"] - index.bytes_per_vector()["store"]]
    for removed in (1, 100, n // 2):
        index.remove(np.arange(removed, dtype=np.int64))
        per = index.bytes_per_vector()
        ram.append(per["ram"] - per["store"])
    assert ram[0] == d / 8 + 16
    assert ram[1] == pytest.approx(d / 8 + 16 + 8 / n) and ram[2] == pytest.approx(ram[0] + 800 / n)
    assert ram[3] == d / 8 + 16 + 0.125
