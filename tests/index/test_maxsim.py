"""Exact MaxSim: the vectorised kernels against a naive double loop, the token store, re-ranking."""

from __future__ import annotations

import numpy as np
import pytest

from index.base import IdSelector
from index.maxsim import (
    MaxSimParams,
    MaxSimReranker,
    TokenStore,
    carve,
    chamfer,
    maxsim_scores,
    pack,
)


def naive_maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Sum over query tokens of the best dot product with any document token, one at a time."""
    total = 0.0
    for q in query.astype(np.float64):
        total += max(float(q @ p) for p in doc.astype(np.float64))
    return total


def sets(rng: np.random.Generator, n: int, dim: int, lo: int = 1, hi: int = 12) -> list[np.ndarray]:
    return [
        rng.standard_normal((int(rng.integers(lo, hi + 1)), dim)).astype(np.float32)
        for _ in range(n)
    ]


def naive_top(
    query: np.ndarray, docs: list[np.ndarray], ids: np.ndarray, k: int
) -> tuple[list[int], list[float]]:
    scores = np.array([naive_maxsim(query, d) for d in docs])
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].tolist(), scores[order].tolist()


@pytest.fixture
def store_and_docs(
    rng: np.random.Generator,
) -> tuple[TokenStore, list[np.ndarray], np.ndarray]:
    docs = sets(rng, 60, 16)
    ids = rng.choice(10**6, size=60, replace=False).astype(np.int64)
    store = TokenStore(16)
    for part in (slice(0, 25), slice(25, 60)):  # two appends
        store.add(ids[part], *pack(docs[part], 16))
    return store, docs, ids


def test_scores_equal_the_naive_double_loop(rng: np.random.Generator) -> None:
    docs, query = sets(rng, 30, 8), rng.standard_normal((5, 8)).astype(np.float32)
    tokens, offsets = pack(docs, 8)
    want = [naive_maxsim(query, d) for d in docs]
    np.testing.assert_allclose(maxsim_scores(query, tokens, offsets), want, rtol=1e-5, atol=1e-5)
    pick = np.array([7, 0, 29, 7], dtype=np.int64)
    got = maxsim_scores(query, tokens, offsets, pick)
    np.testing.assert_allclose(got, [want[i] for i in pick], rtol=1e-5, atol=1e-5)
    half = maxsim_scores(query, tokens.astype(np.float16), offsets)
    np.testing.assert_allclose(half, want, rtol=1e-2, atol=2e-2)
    assert chamfer(query, docs[3]) == pytest.approx(want[3])


def test_rerank_orders_candidates_by_maxsim(
    store_and_docs: tuple[TokenStore, list[np.ndarray], np.ndarray], rng: np.random.Generator
) -> None:
    store, docs, ids = store_and_docs
    query = rng.standard_normal((4, 16)).astype(np.float32)
    pick = rng.choice(60, 20, replace=False)
    res = MaxSimReranker(store).rerank(query, ids[pick], 5)
    want_ids, want_scores = naive_top(query, [docs[i] for i in pick], ids[pick], 5)
    assert res.ids[0].tolist() == want_ids
    np.testing.assert_allclose(res.scores[0], want_scores, rtol=1e-5, atol=1e-5)
    # unknown, duplicate and -1 candidates are skipped; fewer than k pad with -1 / -inf
    res = MaxSimReranker(store).rerank(query, np.array([ids[3], -1, 12345678, ids[3]]), 3)
    assert res.ids[0].tolist() == [ids[3], -1, -1] and np.isneginf(res.scores[0, 1:]).all()


def test_ties_break_by_ascending_id() -> None:
    store = TokenStore(2)
    store.add(np.array([9, 4, 6]), *pack([np.ones((1, 2))] * 3, 2))
    res = MaxSimReranker(store).rerank(np.ones((2, 2), np.float32), np.array([9, 6, 4]), 3)
    assert res.ids[0].tolist() == [4, 6, 9]


def test_brute_force_search(
    store_and_docs: tuple[TokenStore, list[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import index.maxsim

    monkeypatch.setattr(index.maxsim, "SCAN_ROWS", 50)  # many blocks cut at document bounds
    store, docs, ids = store_and_docs
    queries = sets(rng, 6, 16, 1, 6)
    tokens, offsets = pack(queries, 16)
    res = MaxSimReranker(store).search(tokens, offsets, 7)
    for i, q in enumerate(queries):
        want_ids, want_scores = naive_top(q, docs, ids, 7)
        assert res.ids[i].tolist() == want_ids
        np.testing.assert_allclose(res.scores[i], want_scores, rtol=1e-5, atol=1e-5)
    allowed = ids[::4]
    assert store.remove(ids[::8]) == len(ids[::8])
    res = MaxSimReranker(store).search(tokens, offsets, 5, IdSelector(allowed))
    keep = [j for j in range(60) if j % 4 == 0 and j % 8 != 0]
    for i, q in enumerate(queries):
        want_ids, _ = naive_top(q, [docs[j] for j in keep], ids[keep], 5)
        assert res.ids[i].tolist() == want_ids


def test_store_bookkeeping(store_and_docs: tuple[TokenStore, list[np.ndarray], np.ndarray]) -> None:
    store, docs, ids = store_and_docs
    assert len(store) == 60 and store.tokens.shape == (sum(len(d) for d in docs), 16)
    np.testing.assert_array_equal(store.tokens[store.offsets[10] : store.offsets[11]], docs[10])
    assert store.rows_of(ids[[5, 2]]).tolist() == [5, 2]
    assert store.remove(ids[[5, 2]]) == 2 and store.remove(ids[[5]]) == 0
    assert len(store) == 58 and store.rows_of(ids[[5, 2, 3]]).tolist() == [3]
    with pytest.raises(ValueError, match="already stored"):
        store.add(ids[[3]], *pack([docs[3]], 16))
    with pytest.raises(ValueError, match="unique"):
        store.add(np.array([1, 1]), *pack(docs[:2], 16))
    store.add(ids[[5]], *pack([docs[0]], 16))  # a removed id may come back
    assert store.rows_of(ids[[5]]).tolist() == [60]
    copy = TokenStore.from_arrays(16, "float32", store.arrays())
    assert len(copy) == len(store) and copy.rows_of(ids[[5]]).tolist() == [60]
    half = TokenStore(16, "float16")
    half.add(ids, *pack(docs, 16))
    assert half.tokens.dtype == np.float16 and half.nbytes() < store.nbytes()


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([np.ones((2, 4)), np.ones((0, 4))], "document 1 has no token vectors"),
        ([np.ones((2, 4)), np.ones((2, 3))], r"document 1: expected \(t, 4\)"),
        ([np.ones(4)], r"document 0: expected \(t, 4\)"),
        ([np.ones((1, 4)), [[1, 2, 3, 4], [1, 2]]], "document 1: token vectors are ragged"),
        ([np.array([[np.nan, 0, 0, 0]])], "document 0: token vectors must be finite"),
    ],
)
def test_pack_names_the_bad_document(docs: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack(docs, 4)


def test_params_validate() -> None:
    assert MaxSimParams().candidates == 100
    with pytest.raises(ValueError, match="candidates"):
        MaxSimParams(candidates=0)


def naive_carve(query: np.ndarray, tau: float) -> list[np.ndarray]:
    """Greedy balls, one token at a time: a free token opens a ball of the free tokens whose
    cosine with it is >= tau."""
    unit = [q / np.linalg.norm(q) for q in query.astype(np.float64)]
    free = list(range(len(query)))
    balls = []
    while free:
        c = free[0]
        members = [j for j in free if j == c or float(unit[c] @ unit[j]) >= tau]
        free = [j for j in free if j not in members]
        balls.append(query[members].astype(np.float64).sum(axis=0))
    return balls


def test_carve_merges_tokens_within_tau_and_sums_them(rng: np.random.Generator) -> None:
    base = rng.standard_normal((4, 16))
    # three near copies of token 0, two of token 2, in shuffled order, plus distinct tokens
    query = np.concatenate([base, base[[0, 0, 2, 0, 2]] + 0.01 * rng.standard_normal((5, 16))])
    query = query[rng.permutation(len(query))].astype(np.float32)
    balls = carve(query, 0.99)
    assert balls.shape == (4, 16) and balls.dtype == np.float32
    np.testing.assert_allclose(balls.sum(axis=0), query.sum(axis=0), rtol=1e-5, atol=1e-5)
    for tau in (0.99, 0.5, 0.2):
        np.testing.assert_allclose(carve(query, tau), naive_carve(query, tau), rtol=1e-5, atol=1e-5)
    assert len(carve(query, 0.2)) < 4
    np.testing.assert_array_equal(carve(base.astype(np.float32), 1.0), base.astype(np.float32))
    one = np.ones((1, 16), np.float32)
    np.testing.assert_array_equal(carve(one, 0.5), one)
    zero = np.zeros((2, 16), np.float32)  # a zero token is near nothing
    assert carve(np.concatenate([one, zero[:1], one]), 0.9).shape == (2, 16)


def test_carved_maxsim_is_a_lower_bound(
    store_and_docs: tuple[TokenStore, list[np.ndarray], np.ndarray], rng: np.random.Generator
) -> None:
    store, docs, ids = store_and_docs
    base = rng.standard_normal((3, 16)).astype(np.float32)
    query = np.concatenate([base, base + 0.05 * rng.standard_normal((3, 16)).astype(np.float32)])
    carved = carve(query, 0.9)
    assert len(carved) == 3
    exact = np.array([naive_maxsim(query, d) for d in docs])
    approx = np.array([naive_maxsim(carved, d) for d in docs])
    assert (approx <= exact + 1e-4).all()
    res = MaxSimReranker(store).rerank(query, ids, 5, tau=0.9)
    want_ids, want_scores = naive_top(carved, docs, ids, 5)
    assert res.ids[0].tolist() == want_ids
    np.testing.assert_allclose(res.scores[0], want_scores, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("tau", [0.0, -0.5, 1.5])
def test_carve_rejects_tau_out_of_range(tau: float) -> None:
    with pytest.raises(ValueError, match="tau must be in"):
        carve(np.ones((2, 4), np.float32), tau)
