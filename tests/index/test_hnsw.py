"""HNSW (faiss IndexHNSWFlat, inner product): recall, filters, tombstones, persistence, spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import brute_force

from index import IdSelector, SearchResult, SpecError, index_factory
from index.hnsw import EXACT_ROWS, EXACT_SQRT, HNSWIndex

N, D, NQ = 5000, 32, 100


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


def assert_well_formed(res: SearchResult, xb: np.ndarray, ids: np.ndarray, xq: np.ndarray) -> None:
    """dtypes, (score desc, id asc) order, -1/-inf padding, scores equal to the true products."""
    assert res.ids.dtype == np.int64 and res.scores.dtype == np.float32
    pad = res.ids < 0
    assert np.isneginf(res.scores[pad]).all() and np.isfinite(res.scores[~pad]).all()
    row_of = {int(j): r for r, j in enumerate(ids)}
    for q in range(res.nq):
        hits = res.row(q)
        assert len(hits) == int((~pad[q]).sum()) and not pad[q, : len(hits)].any()
        assert hits == sorted(hits, key=lambda h: (-h[1], h[0]))
        assert len({j for j, _ in hits}) == len(hits)
        for j, s in hits:
            assert s == pytest.approx(float(xq[q] @ xb[row_of[j]]), rel=1e-4, abs=1e-4)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((N, D)).astype(np.float32)
    xb *= rng.uniform(0.2, 3.0, size=(N, 1)).astype(np.float32)  # MIPS: varying norms
    ids = rng.choice(10**12, size=N, replace=False).astype(np.int64)  # arbitrary, unsorted
    xq = rng.standard_normal((NQ, D)).astype(np.float32)
    return xb, ids, xq


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, ...]) -> HNSWIndex:
    xb, ids, _ = data
    index = index_factory(D, "HNSW")
    assert isinstance(index, HNSWIndex)
    index.add(ids, xb)
    return index


def test_recall_at_10(built: HNSWIndex, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    res = built.search(xq, 10)
    assert recall(res.ids, brute_force(xb, ids, xq, 10)[1]) >= 0.95
    assert_well_formed(res, xb, ids, xq)
    one = built.search(xq[:1], 10)  # single query: same answer as in the batch
    np.testing.assert_array_equal(one.ids[0], res.ids[0])


def test_k_above_ef_search_is_filled(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, "HNSW(m=16,ef_construction=64,ef_search=16)")
    index.add(ids[:2000], xb[:2000])
    res = index.search(xq[:5], 300)
    assert (res.ids >= 0).all()
    assert recall(res.ids, brute_force(xb[:2000], ids[:2000], xq[:5], 300)[1]) >= 0.9


def test_one_percent_selector_is_exact(built: HNSWIndex, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    rows = np.arange(0, N, 100)  # 50 allowed rows: the exact path
    res = built.search(xq, 10, IdSelector(ids[rows]))
    truth_s, truth_i = brute_force(xb[rows], ids[rows], xq, 10)
    np.testing.assert_array_equal(res.ids, truth_i)
    np.testing.assert_allclose(res.scores, truth_s, rtol=1e-4, atol=1e-4)
    few = built.search(xq, 10, IdSelector(ids[:3]))  # fewer allowed than k: padded
    assert (np.sort(few.ids[:, :3], axis=1) == np.sort(ids[:3])).all()
    assert (few.ids[:, 3:] == -1).all()


def test_loose_selector_filters_during_search(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    big = np.concatenate([xb] * 2)  # 10,000 rows: 2,500 allowed is past the exact bound
    big_ids = np.concatenate([ids, ids + 10**13])
    index = index_factory(D, "HNSW")
    index.add(big_ids, big)
    allowed = big_ids[::4]
    assert len(allowed) > max(EXACT_ROWS, EXACT_SQRT * np.sqrt(len(big)))
    res = index.search(xq, 10, IdSelector(allowed))
    assert np.isin(res.ids, allowed).all()  # k hits, every one allowed
    assert recall(res.ids, brute_force(big[::4], allowed, xq, 10)[1]) >= 0.95


def test_remove_hides_ids(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, "HNSW")
    index.add(ids, xb)
    gone = ids[::3]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0 and index.remove(np.array([-5], np.int64)) == 0
    assert len(index) == N - len(gone)
    keep = np.ones(N, bool)
    keep[::3] = False
    res = index.search(xq, 10)
    assert not np.isin(res.ids, gone).any()
    assert recall(res.ids, brute_force(xb[keep], ids[keep], xq, 10)[1]) >= 0.95
    sel = index.search(xq, 10, IdSelector(ids[:600]))  # removed rows stay out of filters too
    assert np.isin(sel.ids, ids[:600][keep[:600]]).all()
    # Almost everything removed: the graph search under-fills, the exact re-run fills it.
    assert index.remove(ids[: N - 12]) == int(keep[: N - 12].sum())
    res = index.search(xq, 10)
    truth = brute_force(xb[N - 12 :][keep[N - 12 :]], ids[N - 12 :][keep[N - 12 :]], xq, 10)[1]
    np.testing.assert_array_equal(res.ids, truth)


def test_save_load_identical(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    xb, ids, xq = data
    index = index_factory(D, "HNSW(m=16,ef_search=40)")
    index.add(ids, xb)
    index.remove(ids[::7])
    index.save(tmp_path / "ix")
    loaded = HNSWIndex.load(tmp_path / "ix")
    assert loaded.spec == index.spec and len(loaded) == len(index)
    for sel in (None, IdSelector(ids[::2]), IdSelector(ids[::100])):
        a, b = index.search(xq, 10, sel), loaded.search(xq, 10, sel)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert loaded.remove(ids[::7]) == 0 and loaded.remove(ids[1:2]) == 1


def test_sorted_ids_and_ties() -> None:
    index = index_factory(8, "HNSW")
    index.add(np.arange(100, 200, dtype=np.int64), np.ones((100, 8), np.float32))
    res = index.search(np.ones((2, 8), np.float32), 5, IdSelector([150, 120, 180, 7]))
    assert res.ids.tolist() == [[120, 150, 180, -1, -1]] * 2
    top = index.search(np.ones((1, 8), np.float32), 10)
    assert (np.diff(top.ids[0]) > 0).all()  # equal scores: ascending ids


def test_spec_round_trip() -> None:
    canonical = "HNSW(m=16,ef_construction=200,ef_search=64)"
    assert index_factory(D, "HNSW(ef_search=64, m=16)").spec == canonical
    assert index_factory(D, canonical).spec == canonical
    assert index_factory(D, "HNSW").spec == "HNSW(m=32,ef_construction=200,ef_search=128)"
    with pytest.raises(SpecError, match="m must be"):
        index_factory(D, "HNSW(m=1)")
    with pytest.raises(SpecError, match="int"):
        index_factory(D, "HNSW(ef_search=lots)")


def test_nbytes(built: HNSWIndex) -> None:
    raw = N * D * 4
    assert raw + N * 2 * 32 * 4 <= built.nbytes() <= raw + N * (2 * 32 * 4 * 2 + 64)
