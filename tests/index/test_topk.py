"""Exact top-k selection: ``topk_1d``, ``fold_block``/``merge_topk`` and the flat ``scan`` that
uses them, against a float64 brute force with the (score desc, id asc) order.

Integer-valued vectors keep every dot product exact in float32 whatever the summation order, so
ties are plentiful and ids and scores must match exactly.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import index.flat as flat
from index.base import F32, I64, Bool
from index.topk import fold_block, merge_candidates, merge_topk, topk_1d


def brute(q: F32, x: F32, ids: I64, k: int, excluded: Bool | None = None) -> tuple[F32, I64]:
    s = q.astype(np.float64) @ x.astype(np.float64).T
    out_s = np.full((len(q), k), -np.inf, np.float32)
    out_i = np.full((len(q), k), -1, np.int64)
    ok = np.ones(len(x), bool) if excluded is None else ~excluded
    for j in range(len(q)):
        o = np.lexsort((ids[ok], -s[j, ok]))[:k]
        out_s[j, : len(o)] = s[j, ok][o]
        out_i[j, : len(o)] = ids[ok][o]
    return out_s, out_i


def data(
    rng: np.random.Generator, n: int, d: int, nq: int, levels: int = 2
) -> tuple[F32, F32, I64]:
    x = rng.integers(-levels, levels + 1, (n, d)).astype(np.float32)
    q = rng.integers(-levels, levels + 1, (nq, d)).astype(np.float32)
    ids = rng.permutation(3 * n)[:n].astype(np.int64)
    return q, x, ids


@pytest.fixture(params=[None, 300])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The default block sizes, and small ones so many (threaded) blocks run on small data."""
    size = request.param or flat.BLOCK
    if request.param:
        monkeypatch.setattr(flat, "BLOCK", size)
        monkeypatch.setattr(flat, "MAX_BLOCK", 4 * size)
        monkeypatch.setattr(flat, "MIN_BLOCK", size)
    return int(size)


@pytest.mark.parametrize("nq", [1, 2, 17])
@pytest.mark.parametrize("k", [1, 10, 300, 5000])
@pytest.mark.parametrize("excl", ["none", "some", "most", "prefix"])
def test_scan_matches_brute_force(block: int, nq: int, k: int, excl: str) -> None:
    rng = np.random.default_rng(k * 100 + nq)
    q, x, ids = data(rng, 4000, 12, nq)
    excluded = {
        "none": None,
        "some": rng.random(len(x)) < 0.3,
        "most": rng.random(len(x)) < 0.98,
        "prefix": np.arange(len(x)) < 2500,  # an unrepresentative head for threshold sampling
    }[excl]
    got = flat.scan(q, x, ids, k, excluded)
    want_s, want_i = brute(q, x, ids, k, excluded)
    np.testing.assert_array_equal(got.ids, want_i)
    np.testing.assert_array_equal(got.scores, want_s)


@pytest.mark.parametrize("nq", [1, 5])
def test_scan_all_ties_orders_by_id(block: int, nq: int) -> None:
    rng = np.random.default_rng(3)
    ids = rng.permutation(3000).astype(np.int64)
    got = flat.scan(np.ones((nq, 4), np.float32), np.ones((3000, 4), np.float32), ids, 25)
    assert (got.ids == np.sort(ids)[:25]).all()
    assert (got.scores == 4.0).all()


@pytest.mark.parametrize("nq", [1, 3])
def test_scan_pads_when_k_exceeds_rows(nq: int) -> None:
    rng = np.random.default_rng(4)
    q, x, ids = data(rng, 7, 5, nq)
    excluded = np.zeros(7, bool)
    excluded[[1, 4]] = True
    got = flat.scan(q, x, ids, 9, excluded)
    want_s, want_i = brute(q, x, ids, 9, excluded)
    np.testing.assert_array_equal(got.ids, want_i)
    np.testing.assert_array_equal(got.scores, want_s)
    assert (got.ids[:, 5:] == -1).all() and np.isneginf(got.scores[:, 5:]).all()


def test_scan_sorted_rows_adversarial_order(block: int) -> None:
    """Ascending rows make every block beat the last: thresholds must keep up, still exact."""
    x = np.repeat(np.arange(6000, dtype=np.float32)[:, None] / 7, 3, axis=1)
    q = np.array([[1, 1, 1], [1, 0, 0], [-1, 0, 0]], np.float32)
    ids = np.arange(6000, dtype=np.int64)
    got = flat.scan(q, x, ids, 12)
    want_s, want_i = brute(q, x, ids, 12)
    np.testing.assert_array_equal(got.ids, want_i)


def test_gaussian_matches_brute_force_up_to_rounding(block: int) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5000, 32), dtype=np.float32)
    q = rng.standard_normal((9, 32), dtype=np.float32)
    ids = np.arange(5000, dtype=np.int64)
    got = flat.scan(q, x, ids, 10)
    want_s, want_i = brute(q, x, ids, 10)
    np.testing.assert_allclose(got.scores, want_s, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got.ids, want_i)


def test_concurrent_scans_are_exact_and_restore_blas_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flat, "MIN_BLOCK", 100)
    before = flat._blas.threads()
    rng = np.random.default_rng(6)
    q, x, ids = data(rng, 6000, 8, 6)
    want_s, want_i = brute(q, x, ids, 15)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                got = flat.scan(q, x, ids, 15)
                np.testing.assert_array_equal(got.ids, want_i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert flat._blas.threads() == before


def test_topk_1d_long_row_with_ties() -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 50, 200_000).astype(np.float32)
    scores[rng.random(len(scores)) < 0.1] = -np.inf
    ids = rng.permutation(len(scores)).astype(np.int64)
    s, i = topk_1d(scores, ids, 40)
    o = np.lexsort((ids, -scores))[:40]
    np.testing.assert_array_equal(i, ids[o])
    np.testing.assert_array_equal(s, scores[o])


@pytest.mark.parametrize("layout", ["fold_block", "merge_topk"])
def test_block_folding_matches_brute_force(layout: str) -> None:
    rng = np.random.default_rng(8)
    q, x, ids = data(rng, 3000, 6, 4, levels=3)
    k = 7
    out_s = np.full((4, k), -np.inf, np.float32)
    out_i = np.full((4, k), -1, np.int64)
    thr = np.full(4, -np.inf, np.float32)
    for start in range(0, 3000, 640):
        rows = slice(start, start + 640)
        if layout == "fold_block":
            fold_block(x[rows] @ q.T, ids[rows], out_s, out_i, thr)
        else:
            merge_topk(q @ x[rows].T, ids[rows], out_s, out_i, thr)
    want_s, want_i = brute(q, x, ids, k)
    np.testing.assert_array_equal(out_i, want_i)
    np.testing.assert_array_equal(out_s, want_s)
    np.testing.assert_array_equal(thr, want_s[:, -1])


def test_merge_candidates_touches_only_named_queries() -> None:
    out_s = np.array([[5, 3], [9, -np.inf]], np.float32)
    out_i = np.array([[1, 2], [7, -1]], np.int64)
    thr = np.array([3, -np.inf], np.float32)
    merge_candidates(
        np.array([1, 1]),
        np.array([9, 1], np.float32),
        np.array([4, 8]),
        out_s,
        out_i,
        thr,
    )
    assert out_i.tolist() == [[1, 2], [4, 7]]
    assert out_s.tolist() == [[5, 3], [9, 9]]
    assert thr.tolist() == [3, 9]
