"""One contract, every registered index spec: results against brute force on seeded data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import brute_force

from index import IdSelector, Index, SearchResult, index_factory
from index.spec import available, canonical, lookup

#: Every registered dense index, default parameters (multi-vector indexes have their own suite).
SPECS = [canonical(n) for n in available() if not getattr(lookup(n), "multivector", False)]
#: ... and the binary index's other candidate generators (``index.binary`` backends).
SPECS += [
    canonical(s)
    for s in (
        "Binary(bits=2,centroids=8)",
        # isotropic rows of norms 0.2-3: the top 10 by inner product lie in every cell, and
        # Hamming codes of 24 dims rank them coarsely, so these probe every cell / re-score
        # deeply to clear the 0.9 floor; the code paths are the ones any setting runs. The
        # Hamming graph (backend=hnsw) reaches 0.8 here even so: its contract checks are in
        # tests/index/test_binary_backends.py, on clustered data
        "Binary(bits=2,backend=ivf,centroids=8,nprobe=8)",
        "Binary(encoding=sign,bits=8,backend=ivf,centroids=8,nprobe=8),Rescore(oversample=32)",
    )
]
D = 24


@pytest.fixture(params=SPECS)
def spec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xb = rng.standard_normal((3000, D)).astype(np.float32)
    xb *= rng.uniform(0.2, 3.0, size=(3000, 1)).astype(np.float32)  # MIPS: varying norms
    ids = rng.choice(10**9, size=3000, replace=False).astype(np.int64)
    xq = rng.standard_normal((17, D)).astype(np.float32)
    return xb, ids, xq


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


def check(index: Index, res: SearchResult, truth_s: np.ndarray, truth_i: np.ndarray) -> None:
    assert res.ids.dtype == np.int64 and res.scores.dtype == np.float32
    assert res.ids.shape == truth_i.shape
    if type(index).exact:
        np.testing.assert_array_equal(res.ids, truth_i)
        np.testing.assert_allclose(res.scores, truth_s, rtol=1e-4, atol=1e-4)
    else:
        assert recall(res.ids, truth_i) >= 0.9


def test_satisfies_protocol(spec: str) -> None:
    index = index_factory(D, spec)
    assert isinstance(index, Index)
    assert index.dim == D and len(index) == 0


def test_spec_round_trips(spec: str) -> None:
    index = index_factory(D, spec)
    assert index.spec == spec
    assert index_factory(D, index.spec).spec == index.spec


def test_search_matches_brute_force(spec: str, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    index.add(ids[:1000], xb[:1000])
    index.add(ids[1000:], xb[1000:])  # appends accumulate
    assert len(index) == len(ids)
    for nq in (1, len(xq)):
        for k in (1, 10, 100):
            check(index, index.search(xq[:nq], k), *brute_force(xb, ids, xq[:nq], k))


def test_k_larger_than_n_pads(spec: str, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    index.add(ids[:5], xb[:5])
    res = index.search(xq[:3], 8)
    assert (res.ids[:, 5:] == -1).all() and np.isneginf(res.scores[:, 5:]).all()
    assert sorted(res.ids[0, :5]) == sorted(ids[:5])


def test_empty_index_returns_padding(spec: str) -> None:
    res = index_factory(D, spec).search(np.ones((2, D), np.float32), 4)
    assert (res.ids == -1).all()


def test_remove_hides_vectors(spec: str, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    index.add(ids, xb)
    gone = ids[::3]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0  # idempotent
    assert len(index) == len(ids) - len(gone)
    keep = np.ones(len(ids), bool)
    keep[::3] = False
    check(index, index.search(xq, 10), *brute_force(xb[keep], ids[keep], xq, 10))


def test_selector_restricts_results(spec: str, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    index.add(ids, xb)
    for step in (2, 50):  # dense and sparse selections
        allowed = ids[::step]
        res = index.search(xq, 10, IdSelector(allowed))
        assert np.isin(res.ids[res.ids >= 0], allowed).all()
        check(index, res, *brute_force(xb[::step], ids[::step], xq, 10))


def test_ties_break_by_ascending_id(spec: str) -> None:
    index = index_factory(D, spec)
    ids = np.array([50, 7, 31, 2, 9], dtype=np.int64)
    index.add(ids, np.ones((5, D), np.float32))
    res = index.search(np.ones((2, D), np.float32), 3)
    if type(index).exact:
        assert res.ids.tolist() == [[2, 7, 9], [2, 7, 9]]


def test_save_load_round_trip(spec: str, data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    index.add(ids, xb)
    index.remove(ids[:10])
    index.save(tmp_path / "ix")
    loaded = type(index).load(tmp_path / "ix")
    assert loaded.spec == index.spec and len(loaded) == len(index)
    before, after = index.search(xq, 10), loaded.search(xq, 10)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-6)


def test_rejects_bad_shapes(spec: str) -> None:
    index = index_factory(D, spec)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.arange(3), np.ones((3, D + 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        index.add(np.arange(2), np.ones((3, D), np.float32))
    with pytest.raises(ValueError, match="shape"):
        index.search(np.ones(D, np.float32), 3)
    with pytest.raises(ValueError, match="k must be positive"):
        index.search(np.ones((1, D), np.float32), 0)
