"""``Binary(backend=flat|hnsw|ivf, centroids=K)``: candidate generators other than the single-centre
flat scan, each checked against brute force on seeded data: exact at full coverage, filters,
tombstones, k > N, per-search knobs and bit-identical persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import assert_full_coverage_exact, assert_save_load_identical, brute_force

from index import IdSelector, SpecError, index_factory
from index.binary import BinaryIndex
from index.codes import (
    augment,
    augmented_codes,
    fit_itq,
    hamming,
    hamming_to_ip,
    sign_codes,
    unit_queries,
)
from index.itq import ITQ_ITERS, HammingCodec

N, D, NQ = 6000, 64, 40

#: name -> spec; every generator other than the single-centre flat scan.
BACKENDS = {
    "rabitq-centroids": "Binary(bits=1,centroids=16)",
    "rabitq-ivf": "Binary(bits=1,backend=ivf,centroids=32,nprobe=8)",
    "rabitq2-ivf": "Binary(bits=2,backend=ivf,centroids=32,nprobe=8)",
    "sign-ivf": "Binary(encoding=sign,backend=ivf,centroids=32,nprobe=8)",
    "sign-hnsw": "Binary(encoding=sign,backend=hnsw,m=16)",
    "itq-hnsw": "Binary(encoding=itq,backend=hnsw,m=16,ef_search=32)",
}


#: recall@10 floors at oversample 4 on :func:`data`, ~0.03-0.05 under the measured values (in
#: the comments; sign codes of 64 dims are coarse, flat sign scores about the same).
FLOORS = {
    "rabitq-centroids": 0.95,  # 0.985
    "rabitq-ivf": 0.94,  # 0.980
    "rabitq2-ivf": 0.96,  # 0.993
    "sign-ivf": 0.70,  # 0.753
    "sign-hnsw": 0.68,  # 0.730
    "itq-hnsw": 0.75,  # 0.798
}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered MIPS data (16 clusters in an 8-dim subspace, noise, norms 0.5-1.5), random ids."""
    rng = np.random.default_rng(21)
    basis = np.linalg.qr(rng.standard_normal((D, 8)))[0]
    centres = rng.standard_normal((16, 8)) * 3
    z = centres[rng.integers(0, 16, N + NQ)] + rng.standard_normal((N + NQ, 8))
    x = (z @ basis.T + 0.3 * rng.standard_normal((N + NQ, D))) * rng.uniform(0.5, 1.5, (N + NQ, 1))
    x = x.astype(np.float32)
    ids = rng.choice(10**12, size=N, replace=False).astype(np.int64)
    return x[:N], ids, x[N:]


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, ...]) -> dict[str, BinaryIndex]:
    xb, ids, _ = data
    out = {}
    for name, spec in {**BACKENDS, "rabitq-flat": "Binary(bits=1)"}.items():
        index = index_factory(D, spec)
        assert isinstance(index, BinaryIndex)
        index.add(ids, xb)
        out[name] = index
    return out


def test_specs() -> None:
    index = index_factory(D, "Binary(bits=1,backend=ivf)")
    assert "backend=ivf,centroids=1024,nprobe=128," in index.spec  # the default cells, printed
    assert index_factory(D, index.spec).spec == index.spec
    assert "centroids=1," in index_factory(D, "Binary(encoding=sign,backend=hnsw)").spec
    for bad in (
        "Binary(backend=btree)",
        "Binary(backend=hnsw)",  # rabitq has no Hamming graph
        "Binary(encoding=sign,centroids=4)",  # cells only for rabitq or ivf
        "Binary(encoding=sign,backend=hnsw,centroids=4)",
        "Binary(backend=ivf,nprobe=0)",
        "Binary(centroids=-1)",
        "Binary(encoding=sign,backend=hnsw,m=1)",
    ):
        with pytest.raises(SpecError):
            index_factory(D, bad)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_recall_and_monotone_in_oversample(built: dict[str, BinaryIndex], data, name: str):
    xb, ids, xq = data
    truth = brute_force(xb, ids, xq, 10)[1]
    got = [recall(built[name].search(xq, 10, oversample=f).ids, truth) for f in (1, 2, 4, 8)]
    assert got == sorted(got), got
    assert got[2] >= FLOORS[name], got  # oversample 4


@pytest.mark.parametrize("name", list(BACKENDS))
def test_full_coverage_equals_brute_force(data: tuple[np.ndarray, ...], name: str) -> None:
    xb, ids, xq = data
    assert_full_coverage_exact(BACKENDS[name], xb, ids, xq, n=2000, every=5, k=20)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_filters_deletes_and_small_k(data: tuple[np.ndarray, ...], name: str) -> None:
    xb, ids, xq = data
    index = index_factory(D, BACKENDS[name])
    index.add(ids, xb)
    gone = ids[np.random.default_rng(1).random(N) < 0.3]
    assert index.remove(gone) == len(gone)
    live = ~np.isin(ids, gone)
    for rows in (np.arange(0, N, 3), np.arange(0, N, 97)):  # filtered scan / exact
        rows = rows[live[rows]]
        res = index.search(xq, 10, IdSelector(ids[rows]))
        assert np.isin(res.ids, ids[rows]).all() and (res.ids >= 0).all()
        assert recall(res.ids, brute_force(xb[rows], ids[rows], xq, 10)[1]) >= 0.75
    res = index.search(xq, 15)
    assert not np.isin(res.ids, gone).any() and (res.ids >= 0).all()
    both = index.search(xq[:3], 5, IdSelector(ids[[2, 3]]))  # fewer allowed than k
    want = sorted(set(ids[[2, 3]].tolist()) - set(gone.tolist()))
    assert [sorted(r[r >= 0].tolist()) for r in both.ids] == [want] * 3


@pytest.mark.parametrize("name", list(BACKENDS))
def test_k_larger_than_n(name: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, D)).astype(np.float32)
    index = index_factory(D, BACKENDS[name])
    index.add(np.arange(100, 107), x)
    res = index.search(x[:2], 10)
    assert sorted(res.ids[0, :7].tolist()) == list(range(100, 107))
    assert (res.ids[:, 7:] == -1).all() and np.isneginf(res.scores[:, 7:]).all()


def test_ivf_probing_every_cell_equals_the_full_scan(built: dict[str, BinaryIndex], data):
    """Same seed, same k-means, same codes: ivf at nprobe = cells is the flat scan of cells."""
    xq = data[2]
    flat = built["rabitq-centroids"]
    ivf = index_factory(D, "Binary(bits=1,backend=ivf,centroids=16,nprobe=2)")
    ivf.add(data[1], data[0])
    for kw in ({}, {"rescore": False}):
        a, b = flat.search(xq, 10, **kw), ivf.search(xq, 10, nprobe=16, **kw)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    few = ivf.search(xq, 10, nprobe=1, rescore=False)
    assert not np.array_equal(few.ids, ivf.search(xq, 10, nprobe=16, rescore=False).ids)


def test_sign_ivf_estimates_are_numpy_hamming(built: dict[str, BinaryIndex], data) -> None:
    xb, ids, xq = data
    index = built["sign-ivf"]
    codec = index._codec
    ref = hamming(sign_codes(unit_queries(xq[:5]), codec.projection), codec.encode(xb))
    est = hamming_to_ip(ref, codec.code_bits, xq[:5], codec.mean, codec.max_norm)
    res = index.search(xq[:5], 50, nprobe=codec.lists, rescore=False)  # every cell
    row_of = {int(j): r for r, j in enumerate(ids)}
    for q in range(5):
        rows = [row_of[int(j)] for j in res.ids[q]]
        np.testing.assert_allclose(res.scores[q], est[q, rows], rtol=1e-6)
        assert res.scores[q].min() >= np.sort(est[q])[-50] - 1e-6  # and they are the best 50


def test_centroids_tighten_the_estimate(built: dict[str, BinaryIndex], data) -> None:
    """Residuals against 16 cells are shorter than against one centre: candidates by estimate
    alone (no re-scoring) hold more of the true top 10."""
    xb, ids, xq = data
    truth = brute_force(xb, ids, xq, 10)[1]
    one = recall(built["rabitq-flat"].search(xq, 10, rescore=False).ids, truth)
    cells = recall(built["rabitq-centroids"].search(xq, 10, rescore=False).ids, truth)
    assert cells > one, (one, cells)


def test_knobs(built: dict[str, BinaryIndex], data: tuple[np.ndarray, ...]) -> None:
    xq = data[2]
    index = built["rabitq-ivf"]
    assert index.KNOBS == ("oversample", "rescore", "nprobe", "ef_search")
    for name, bad in (("nprobe", 0), ("nprobe", "3"), ("ef_search", True), ("ef_search", 1.5)):
        with pytest.raises(ValueError, match=name):
            index.search(xq, 3, **{name: bad})
    truth = brute_force(data[0], data[1], xq, 10)[1]
    low, high = (recall(index.search(xq, 10, nprobe=p).ids, truth) for p in (1, 32))
    assert high > low
    graph = built["sign-hnsw"]
    low, high = (recall(graph.search(xq, 10, ef_search=e).ids, truth) for e in (1, 400))
    assert high >= low


def test_bytes_per_vector(built: dict[str, BinaryIndex]) -> None:
    flat = built["rabitq-flat"].bytes_per_vector()
    assert flat["codes"] == pytest.approx(D / 8 + 8, abs=0.2)
    assert flat["ram"] == flat["codes"] + 8 + flat["store"]  # no tombstone flags allocated
    ivf = built["rabitq-ivf"].bytes_per_vector()["codes"]
    assert D / 8 + 16 <= ivf <= D / 8 + 16 + 32 * 31 / N * (D / 8 + 8)  # + ids, padding
    graph = built["sign-hnsw"].bytes_per_vector()["codes"]
    assert graph >= D / 8 + 2 * 16 * 4  # 2m level-0 links of 4 bytes


@pytest.mark.parametrize("name", list(BACKENDS))
def test_save_load_bit_identical(data: tuple[np.ndarray, ...], tmp_path: Path, name: str) -> None:
    xb, ids, xq = data
    index = index_factory(D, BACKENDS[name])
    assert isinstance(index, BinaryIndex)
    index.add(ids[:3000], xb[:3000])
    index.remove(ids[:30])
    loaded = assert_save_load_identical(index, tmp_path, xq, (None, IdSelector(ids[:3000:3])))
    loaded.add(ids[3000:3100], xb[3000:3100])  # upserts after a load keep rows aligned
    assert len(loaded) == len(index) + 100
    res = loaded.search(xq, 5, IdSelector(ids[2990:3100]))  # new rows and old ones, exactly
    np.testing.assert_array_equal(res.ids, brute_force(xb[2990:3100], ids[2990:3100], xq, 5)[1])


# -- encode path ----------------------------------------------------------------------------------


def test_float32_augmented_codes_match_the_float64_path() -> None:
    """The encode path's one-pass float32 codes equal ``sign_codes(augment(...))`` but for bits
    of rows lying on a hyperplane (float32 rounding): at most 1 in 10^4 here."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4000, D)) * rng.uniform(0.1, 3, (4000, 1))).astype(np.float32)
    mean = x.mean(axis=0)
    max_norm = float(np.linalg.norm(x[:3000] - mean, axis=1).max())  # later rows may exceed M
    proj = rng.standard_normal((D + 1, 2 * D)).astype(np.float32)
    fast = augmented_codes(x, mean, max_norm, proj)
    ref = sign_codes(augment(x, mean, max_norm), proj)
    assert fast.shape == ref.shape == (4000, 2 * D // 8)
    assert int(np.bitwise_count(fast ^ ref).sum()) <= 4000 * 2 * D // 10_000


def test_itq_stops_once_the_loss_settles() -> None:
    rng = np.random.default_rng(5)
    v = rng.standard_normal((3000, 24)) * np.linspace(3, 0.1, 24)
    v -= v.mean(axis=0)
    _, full = fit_itq(v, np.random.default_rng(1), 40)
    rot, early = fit_itq(v, np.random.default_rng(1), 40, tol=1e-3)
    assert len(full) == 40 and 1 < len(early) < 40
    assert early == full[: len(early)]  # the same iterations, cut short
    assert early[-2] - early[-1] < 1e-3 * early[-2]
    np.testing.assert_allclose(rot @ rot.T, np.eye(24), atol=1e-6)


def test_itq_stops_once_the_bits_settle() -> None:
    """``min_flips``: training stops at the first iteration that flips fewer than that fraction
    of the sample's bits, after the same iterations as an unbounded run."""
    rng = np.random.default_rng(5)
    v = rng.standard_normal((3000, 24)) * np.linspace(3, 0.1, 24)
    v -= v.mean(axis=0)
    _, full = fit_itq(v, np.random.default_rng(1), 40)
    rot, early = fit_itq(v, np.random.default_rng(1), 40, min_flips=0.005)
    assert 1 < len(early) < 40 and early == full[: len(early)]
    np.testing.assert_allclose(rot @ rot.T, np.eye(24), atol=1e-6)
    # the rotation after the last iteration flips < 0.5% of the bits the one before it gave
    rot_prev, _ = fit_itq(v, np.random.default_rng(1), len(early) - 1)
    flipped = np.mean(((v @ rot) >= 0) != ((v @ rot_prev) >= 0))
    assert flipped < 0.005


def test_itq_training_matches_the_float64_reference() -> None:
    """Training takes the mean and the largest residual norm without an ``(m, d)`` float64
    copy; both equal the float64 computation."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((5000, D)) * rng.uniform(0.2, 2, (5000, 1))).astype(np.float32)
    codec = HammingCodec(D, "itq", 1, 42)
    codec.train(x)
    r = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    assert codec.mean.tolist() == x.astype(np.float64).mean(axis=0).astype(np.float32).tolist()
    assert codec.max_norm == pytest.approx(float(np.sqrt((r * r).sum(axis=1).max())), rel=1e-12)
    assert 1 <= len(codec.itq_loss) <= ITQ_ITERS


def test_one_add_sizes_the_float_store_once(data: tuple[np.ndarray, ...]) -> None:
    """``add`` reserves the store for all its rows up front (growing it per 32k-row chunk
    copied the rows ~3 times: half of a 1M-row add), and a later add grows it geometrically."""
    xb, ids, _ = data
    index = index_factory(D, "Binary(bits=1)")
    assert isinstance(index, BinaryIndex)
    index.add(ids[:5000], xb[:5000])
    assert index._store._x.shape[0] == 5000
    index.add(ids[5000:5010], xb[5000:5010])
    assert index._store._x.shape[0] >= 5000 * 1.5
    np.testing.assert_array_equal(index._store.gather(), xb[:5010])
