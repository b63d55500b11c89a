"""IVF (faiss IndexIVFFlat, inner product): training, recall, filters, tombstones, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import brute_force

from index import IdSelector, SearchResult, SpecError, index_factory
from index.ivf import MIN_POINTS_PER_LIST, IVFIndex

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
    rng = np.random.default_rng(11)
    xb = rng.standard_normal((N, D)).astype(np.float32)
    xb *= rng.uniform(0.2, 3.0, size=(N, 1)).astype(np.float32)  # MIPS: varying norms
    ids = rng.choice(10**12, size=N, replace=False).astype(np.int64)
    xq = rng.standard_normal((NQ, D)).astype(np.float32)
    return xb, ids, xq


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, ...]) -> IVFIndex:
    xb, ids, _ = data
    index = index_factory(D, "IVF")
    assert isinstance(index, IVFIndex)
    index.add(ids, xb)
    return index


def test_recall_at_10(built: IVFIndex, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    assert built.nlist == N // MIN_POINTS_PER_LIST  # 19 < 1024: the spec's nlist is a bound
    res = built.search(xq, 10)
    assert recall(res.ids, brute_force(xb, ids, xq, 10)[1]) >= 0.95
    assert_well_formed(res, xb, ids, xq)


def test_effective_nlist(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    small = index_factory(D, "IVF")
    assert isinstance(small, IVFIndex) and small.nlist == 0
    small.add(ids[:100], xb[:100])  # too few for k-means: one list, an exhaustive scan
    assert small.nlist == 1 and small.spec == "IVF(nlist=1024,nprobe=16,seed=1234)"
    small.add(ids[100:3000], xb[100:3000])  # later adds keep the first centroids
    assert small.nlist == 1 and len(small) == 3000
    exact = brute_force(xb[:3000], ids[:3000], xq, 10)
    np.testing.assert_array_equal(small.search(xq, 10).ids, exact[1])
    capped = index_factory(D, "IVF(nlist=8,nprobe=1)")
    assert isinstance(capped, IVFIndex)
    capped.add(ids, xb)
    assert capped.nlist == 8  # enough data: the spec's value
    res = capped.search(xq[:5], 1000)  # one list of ~625 is short: re-run over every list
    assert recall(res.ids, brute_force(xb, ids, xq[:5], 1000)[1]) == 1.0


def test_explicit_training(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, "IVF(nlist=64,nprobe=16)")
    assert isinstance(index, IVFIndex)
    index.train(xb[::5])  # 1,000 vectors taken to be the data: 1000 // 256 lists
    assert index.nlist == 3
    index.train(xb[::5], n_total=50_000)  # a sample: only the k-means floor, 1000 // 39
    assert index.nlist == 25
    index.add(ids[:1000], xb[:1000])
    index.add(ids[1000:], xb[1000:])
    assert index.nlist == 25 and len(index) == N
    assert recall(index.search(xq, 10).ids, brute_force(xb, ids, xq, 10)[1]) >= 0.8
    with pytest.raises(ValueError, match="after add"):
        index.train(xb)


def test_one_percent_selector_is_exact(built: IVFIndex, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    rows = np.arange(0, N, 100)
    res = built.search(xq, 10, IdSelector(ids[rows]))
    truth_s, truth_i = brute_force(xb[rows], ids[rows], xq, 10)
    np.testing.assert_array_equal(res.ids, truth_i)
    np.testing.assert_allclose(res.scores, truth_s, rtol=1e-4, atol=1e-4)


def test_loose_selector(built: IVFIndex, data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    res = built.search(xq, 10, IdSelector(ids[::2]))
    assert np.isin(res.ids, ids[::2]).all()
    assert recall(res.ids, brute_force(xb[::2], ids[::2], xq, 10)[1]) >= 0.9


def test_remove_hides_ids(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, "IVF")
    index.add(ids, xb)
    gone = ids[1::2]
    assert index.remove(gone) == len(gone) and index.remove(gone) == 0
    assert len(index) == N - len(gone)
    res = index.search(xq, 10)
    assert not np.isin(res.ids, gone).any()
    assert recall(res.ids, brute_force(xb[::2], ids[::2], xq, 10)[1]) >= 0.9
    index.remove(ids[: N - 6])
    res = index.search(xq, 10)  # 3 live vectors left
    assert (np.sort(res.ids[:, :3], axis=1) == np.sort(ids[N - 6 :: 2])).all()
    assert (res.ids[:, 3:] == -1).all() and np.isneginf(res.scores[:, 3:]).all()


def test_save_load_identical(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    xb, ids, xq = data
    index = index_factory(D, "IVF(nlist=64,nprobe=4,seed=3)")
    index.add(ids, xb)
    index.remove(ids[::9])
    index.save(tmp_path / "ix")
    loaded = IVFIndex.load(tmp_path / "ix")
    assert loaded.spec == index.spec and len(loaded) == len(index) and loaded.nlist == 19
    for sel in (None, IdSelector(ids[::3]), IdSelector(ids[::100])):
        a, b = index.search(xq, 10, sel), loaded.search(xq, 10, sel)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    empty = index_factory(D, "IVF")
    empty.save(tmp_path / "empty")  # untrained: no faiss file, still loads
    again = IVFIndex.load(tmp_path / "empty")
    assert len(again) == 0 and again.nlist == 0
    assert (again.search(xq[:2], 3).ids == -1).all()
    again.add(ids[:600], xb[:600])
    assert again.nlist == 2


def test_same_seed_same_index(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    spec = "IVF(nlist=16,nprobe=2,seed=5)"
    a, b, c = (index_factory(D, s) for s in (spec, spec, spec.replace("seed=5", "seed=6")))
    for ix in (a, b, c):
        ix.add(ids, xb)
    ra, rb, rc = a.search(xq, 10), b.search(xq, 10), c.search(xq, 10)
    np.testing.assert_array_equal(ra.ids, rb.ids)
    np.testing.assert_array_equal(ra.scores, rb.scores)
    assert not np.array_equal(ra.ids, rc.ids)  # another seed, other centroids


def test_spec_round_trip() -> None:
    assert index_factory(D, "IVF").spec == "IVF(nlist=1024,nprobe=16,seed=1234)"
    canonical = "IVF(nlist=256,nprobe=8,seed=1234)"
    assert index_factory(D, "IVF(nprobe=8, nlist=256)").spec == canonical
    assert index_factory(D, canonical).spec == canonical
    with pytest.raises(SpecError, match="nlist and nprobe"):
        index_factory(D, "IVF(nprobe=0)")
    with pytest.raises(SpecError, match="seed"):
        index_factory(D, "IVF(seed=-1)")


def test_nbytes(built: IVFIndex) -> None:
    assert N * (D * 4 + 8) <= built.nbytes() <= N * (D * 4 + 8 + 32) + built.nlist * D * 4
