"""Binary codes (RaBitQ, sign, ITQ) with exact re-scoring: estimators, recall, filters,
tombstones, stores and persistence."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from support import assert_full_coverage_exact, assert_save_load_identical, brute_force

from index import IdSelector, SearchResult, SpecError, index_factory
from index.binary import MIN_DEPTH, BinaryIndex
from index.codes import fit_itq, hamming, random_orthogonal, sign_codes, to_int8, unit_queries
from index.rabitq import encode_reference, estimate
from index.spec import canonical

N, D, NQ = 20_000, 128, 100


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


def clustered(seed: int, n: int, nq: int, d: int = D) -> tuple[np.ndarray, np.ndarray]:
    """Embedding-like MIPS data: 32 clusters in a 16-dim subspace, isotropic noise, norms 0.5-1.5
    (queries drawn the same way, not indexed)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, 16)))[0]
    centres = rng.standard_normal((32, 16)) * 3
    z = centres[rng.integers(0, 32, n + nq)] + rng.standard_normal((n + nq, 16))
    x = (z @ basis.T + 0.3 * rng.standard_normal((n + nq, d))) * rng.uniform(0.5, 1.5, (n + nq, 1))
    x = x.astype(np.float32)
    return x[:n], x[n:]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xb, xq = clustered(7, N, NQ)
    ids = np.random.default_rng(7).choice(10**12, size=N, replace=False).astype(np.int64)
    return xb, ids, xq


@pytest.fixture(scope="module")
def truth(data: tuple[np.ndarray, ...]) -> np.ndarray:
    xb, ids, xq = data
    return brute_force(xb, ids, xq, 10)[1]


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, ...]) -> dict[str, BinaryIndex]:
    xb, ids, _ = data
    out = {}
    for name, spec in {
        "rabitq1": "Binary(bits=1)",
        "sign": "Binary(encoding=sign)",
        "itq": "Binary(encoding=itq)",
    }.items():
        index = index_factory(D, spec)
        assert isinstance(index, BinaryIndex)
        index.add(ids, xb)
        out[name] = index
    return out


def assert_exact_scores(res: SearchResult, xb: np.ndarray, ids: np.ndarray, xq: np.ndarray) -> None:
    """(score desc, id asc) order, -1/-inf pads, every score the true product."""
    row_of = {int(j): r for r, j in enumerate(ids)}
    for q in range(res.nq):
        hits = res.row(q)
        assert hits == sorted(hits, key=lambda h: (-h[1], h[0]))
        assert len({j for j, _ in hits}) == len(hits)
        for j, s in hits:
            assert s == pytest.approx(float(xq[q] @ xb[row_of[j]]), rel=1e-4, abs=1e-4)
    pad = res.ids < 0
    assert np.isneginf(res.scores[pad]).all()


# -- spec -----------------------------------------------------------------------------------------


def test_spec_defaults_and_composition() -> None:
    default = canonical("Binary")
    assert default == (
        "Binary(encoding=rabitq,bits=2,seed=42,backend=flat,centroids=1,nprobe=128,m=32,"
        "ef_search=64,rescore_store=ram,store_dtype=float32),Rescore(oversample=4.0)"
    )
    assert canonical("Binary(encoding=itq),Rescore(oversample=8)").startswith(
        "Binary(encoding=itq,bits=1,"
    )
    assert canonical("Binary(bits=1),Rescore(oversample=2)").endswith("Rescore(oversample=2.0)")
    for bad in (
        "Binary,Rescore,Rescore",
        "Binary,MaxSim",
        "Binary,Rescore(oversample=0.5)",
        "Binary(encoding=itq,bits=2)",
        "Binary(bits=9)",
        "Binary(backend=hnsw)",
        "Binary(store_dtype=bf16)",
    ):
        with pytest.raises(SpecError):
            index_factory(D, bad)


# -- estimators -----------------------------------------------------------------------------------


def test_rabitq_estimator_is_unbiased() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 32)) * np.array([[0.3], [1.0], [2.0], [5.0]])
    q = rng.standard_normal((2, 32))
    centre = rng.standard_normal(32) * 0.2
    true = q @ x.T
    runs = []
    for seed in range(400):  # the estimate is unbiased over the random rotation
        p = random_orthogonal(np.random.default_rng(seed), 32)
        xr, qr, cr = x @ p.T, q @ p.T, centre @ p.T
        runs.append(estimate(qr, cr, *encode_reference(xr, cr)))
    est = np.array(runs)
    err = est.mean(axis=0) - true
    stderr = est.std(axis=0) / np.sqrt(len(runs))
    assert (np.abs(err) < 4 * stderr + 1e-9).all()
    assert (est.std(axis=0) > 0).all()  # and it is an estimate, not the truth


def test_faiss_rabitq_matches_the_reference(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, "Binary(bits=1)")
    assert isinstance(index, BinaryIndex)
    index.add(ids[:2000], xb[:2000])
    res = index.search(xq[:5], 2000, rescore=False)  # every row, estimator scores
    codec = index._codec
    xr, qr = xb[:2000] @ codec.rotation.T, xq[:5] @ codec.rotation.T
    ref = estimate(qr, codec.center, *encode_reference(xr, codec.center))
    row_of = {int(j): r for r, j in enumerate(ids[:2000])}
    for q in range(5):
        rows = [row_of[int(j)] for j in res.ids[q]]
        spread = ref[q].std()
        # faiss quantizes the query to 8 bits: equal up to a small fraction of the spread
        assert np.abs(res.scores[q] - ref[q, rows]).max() < 0.05 * spread


def test_estimator_scores_track_the_inner_product(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    # Spearman correlation of estimate and truth over all rows, averaged over queries
    for spec, floor in (("Binary(bits=1)", 0.9), ("Binary(encoding=sign)", 0.75)):
        index = index_factory(D, spec)
        index.add(ids[:3000], xb[:3000])
        res = index.search(xq[:20], 3000, rescore=False)
        by_id = dict(zip(ids[:3000].tolist(), range(3000), strict=True))
        rhos = []
        for q in range(20):
            true = xb[[by_id[int(j)] for j in res.ids[q]]] @ xq[q]
            rank_true = np.argsort(np.argsort(true))
            rank_est = np.argsort(np.argsort(res.scores[q]))
            rhos.append(np.corrcoef(rank_true, rank_est)[0, 1])
        assert np.mean(rhos) > floor and min(rhos) > floor - 0.15, (spec, rhos)
        assert not np.allclose(res.scores[0], true)


def test_hamming_matches_popcount(built: dict[str, BinaryIndex], data: tuple) -> None:
    xb, ids, xq = data
    for name in ("sign", "itq"):
        codec = built[name]._codec
        codes = codec.encode(xb[:500])
        qcodes = sign_codes(unit_queries(xq[:7]), codec.projection)
        ref = hamming(qcodes, codes)  # numpy popcount of XOR
        small = type(codec.index)(codec.index.d)
        small.add(codes)
        dist, rows = small.search(qcodes, 500)  # faiss popcount, every row
        np.testing.assert_array_equal(np.take_along_axis(ref, rows, axis=1), dist)
        assert codes.shape == (500, codec.code_bits // 8)


def test_single_query_hamming_search_keeps_omp_threads(built: dict[str, BinaryIndex], data):
    # one query runs faiss on one OpenMP thread (index.itq); the setting must not leak
    xq = data[2][:8]
    before = faiss.omp_get_max_threads()
    for name in ("sign", "itq"):
        one, batch = built[name].search(xq[:1], 10), built[name].search(xq, 10)
        assert faiss.omp_get_max_threads() == before
        np.testing.assert_array_equal(one.ids[0], batch.ids[0])
        np.testing.assert_array_equal(one.scores[0], batch.scores[0])


def test_itq_rotation_orthogonal_and_loss_non_increasing() -> None:
    rng = np.random.default_rng(5)
    v = rng.standard_normal((3000, 24)) * np.linspace(3, 0.1, 24)
    rot, losses = fit_itq(v - v.mean(axis=0), np.random.default_rng(1), 30)
    np.testing.assert_allclose(rot @ rot.T, np.eye(24), atol=1e-6)
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < losses[0]


# -- recall ---------------------------------------------------------------------------------------


def test_recall(built: dict[str, BinaryIndex], data: tuple, truth: np.ndarray) -> None:
    xb, ids, xq = data
    res = built["rabitq1"].search(xq, 10)  # Rescore(oversample=4)
    assert recall(res.ids, truth) >= 0.95
    assert_exact_scores(res, xb, ids, xq)
    assert recall(built["sign"].search(xq, 10).ids, truth) >= 0.75  # measured 0.80
    assert recall(built["itq"].search(xq, 10).ids, truth) >= 0.85  # measured 0.90


def test_itq_beats_sign_on_clustered_data(built: dict[str, BinaryIndex], data: tuple) -> None:
    _, _, xq = data
    truth = brute_force(data[0], data[1], xq, 10)[1]
    for factor in (1.0, 2.0, 4.0):
        itq = recall(built["itq"].search(xq, 10, oversample=factor).ids, truth)
        sign = recall(built["sign"].search(xq, 10, oversample=factor).ids, truth)
        assert itq > sign + 0.02, (factor, itq, sign)


def test_recall_grows_with_oversample(built: dict[str, BinaryIndex], truth: np.ndarray, data):
    _, _, xq = data
    for index in built.values():
        got = [recall(index.search(xq, 10, oversample=f).ids, truth) for f in (1, 2, 4, 8, 16)]
        assert got == sorted(got), got


def test_full_coverage_is_exact(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    spec = "Binary(encoding=sign),Rescore(oversample=1)"
    assert_full_coverage_exact(spec, xb, ids, xq, n=3000, every=7, k=25)


def test_small_k_gets_min_depth(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    index = index_factory(D, "Binary(bits=1),Rescore(oversample=1)")
    index.add(ids[:5000], xb[:5000])
    # k=1 at oversample 1 still re-scores MIN_DEPTH candidates: better than the raw estimate
    top1 = brute_force(xb[:5000], ids[:5000], xq, 1)[1]
    rescored = recall(index.search(xq, 1).ids, top1)
    raw = recall(index.search(xq, 1, rescore=False).ids, top1)
    assert MIN_DEPTH > 1 and rescored >= raw and rescored >= 0.9


def test_search_knobs_are_validated(built: dict[str, BinaryIndex], data: tuple) -> None:
    xq = data[2][:2]
    index = built["rabitq1"]
    assert index.KNOBS == ("oversample", "rescore", "nprobe", "ef_search")
    for bad in (0.5, True, "4", float("nan")):
        with pytest.raises(ValueError, match="oversample"):
            index.search(xq, 3, oversample=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rescore"):
        index.search(xq, 3, rescore=1)  # type: ignore[arg-type]
    assert index.search(xq, 3, oversample=2).k == 3


# -- filters, tombstones, edge cases ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["rabitq1", "sign"])
def test_selectors(built: dict[str, BinaryIndex], data: tuple, name: str) -> None:
    xb, ids, xq = data
    index = built[name]
    # 1/4 of 20k is above the exact bound: filtered while scanning codes (faiss fast-scan has
    # no selector, so RaBitQ over-fetches); 1/100 is scored exactly.
    for step, floor in ((4, 0.75), (100, 1.0)):
        rows = np.arange(0, N, step)
        res = index.search(xq, 10, IdSelector(ids[rows]))
        assert np.isin(res.ids, ids[rows]).all() and (res.ids >= 0).all()
        assert recall(res.ids, brute_force(xb[rows], ids[rows], xq, 10)[1]) >= floor
        assert_exact_scores(res, xb, ids, xq)
    res = index.search(xq[:3], 5, IdSelector(ids[[4, 9]]))  # fewer allowed than k
    assert (np.sort(res.ids[:, :2], axis=1) == np.sort(ids[[4, 9]])).all()
    assert (res.ids[:, 2:] == -1).all()
    assert (index.search(xq[:3], 5, IdSelector([-5])).ids == -1).all()


@pytest.mark.parametrize("spec", ["Binary(bits=1)", "Binary(encoding=itq)"])
def test_remove_never_returns_deleted(data: tuple[np.ndarray, ...], spec: str) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    index.add(ids[:6000], xb[:6000])
    gone = ids[:6000][np.random.default_rng(0).random(6000) < 0.6]
    assert index.remove(gone) == len(gone) and index.remove(gone) == 0
    for sel in (None, IdSelector(ids[:6000:2])):
        res = index.search(xq, 20, sel)
        assert not np.isin(res.ids, gone).any() and (res.ids >= 0).all()
    index.remove(ids[: 6000 - 3])
    left = sorted(set(ids[5997:6000].tolist()) - set(gone.tolist()))
    res = index.search(xq, 10)
    assert sorted(res.ids[0, : len(left)]) == left and (res.ids[:, len(left) :] == -1).all()


def test_edge_cases() -> None:
    index = index_factory(8, "Binary(bits=1)")
    assert (index.search(np.ones((2, 8), np.float32), 3).ids == -1).all()  # untrained, empty
    x = np.zeros((6, 8), np.float32)
    x[3:] = 1.0  # zero rows and duplicates
    index.add(np.arange(10, 16), x)
    res = index.search(np.vstack([np.ones(8), np.zeros(8)]).astype(np.float32), 10)
    assert res.ids[0, :6].tolist() == [13, 14, 15, 10, 11, 12]  # ties by ascending id
    assert (res.ids[:, 6:] == -1).all() and np.isneginf(res.scores[:, 6:]).all()
    assert sorted(res.ids[1, :6].tolist()) == list(range(10, 16))  # zero query: all score 0
    with pytest.raises(ValueError, match="after add"):
        index.train(x)
    with pytest.raises(ValueError, match="float16"):
        index_factory(8, "Binary(store_dtype=float16)").add(np.arange(1), x[:1] + 1e5)


def test_train_then_add_in_chunks(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    one = index_factory(D, "Binary(encoding=sign)")
    one.add(ids[:4000], xb[:4000])
    chunked = index_factory(D, "Binary(encoding=sign)")
    assert isinstance(chunked, BinaryIndex)
    chunked.train(xb[:4000], n_total=4000)
    for s in range(0, 4000, 700):
        stop = min(s + 700, 4000)
        chunked.add(ids[s:stop], xb[s:stop])
    a, b = one.search(xq, 10), chunked.search(xq, 10)
    np.testing.assert_array_equal(a.ids, b.ids)


# -- stores and persistence -----------------------------------------------------------------------


def test_reduced_stores_bound_the_error(data: tuple[np.ndarray, ...]) -> None:
    xb, ids, xq = data
    q8, scale = to_int8(xb[:100])
    assert np.abs(q8).max() <= 127
    np.testing.assert_allclose(q8 * scale[:, None], xb[:100], atol=float(scale.max()) / 2 + 1e-7)
    for dtype in ("float16", "int8"):
        index = index_factory(D, f"Binary(bits=1,store_dtype={dtype})")
        index.add(ids[:5000], xb[:5000])
        res = index.search(xq, 10)
        row_of = {int(j): r for r, j in enumerate(ids[:5000])}
        rows = np.array([[row_of[int(j)] for j in r] for r in res.ids])
        exact = np.einsum("qkd,qd->qk", xb[rows], xq)
        amax = np.abs(xb[rows]).max(axis=2)
        l1 = np.abs(xq).sum(axis=1)[:, None]
        bound = l1 * amax * (1 / 254 if dtype == "int8" else 2**-11) + 1e-5
        err = np.abs(res.scores - exact)
        assert (err <= bound).all() and err.max() > 0, dtype


@pytest.mark.parametrize(
    "spec",
    [
        "Binary(bits=1)",
        "Binary(bits=4,rescore_store=mmap,store_dtype=int8),Rescore(oversample=2)",
        "Binary(encoding=sign,bits=2,store_dtype=float16)",
        "Binary(encoding=itq,rescore_store=mmap)",
    ],
)
def test_save_load_bit_identical(data: tuple, tmp_path: Path, spec: str) -> None:
    xb, ids, xq = data
    index = index_factory(D, spec)
    assert isinstance(index, BinaryIndex)
    index.add(ids[:4000], xb[:4000])
    index.remove(ids[:40])
    loaded = assert_save_load_identical(index, tmp_path, xq, (None, IdSelector(ids[:4000:3])))
    mapped = "mmap" in spec
    per = loaded.bytes_per_vector()
    assert (per["ram"] < per["disk"]) == mapped
    assert per["disk"] == per["ram"] + mapped * per["store"]
    loaded.add(ids[4000:4100], xb[4000:4100])  # a mapped store is copied back into RAM
    assert len(loaded) == len(index) + 100
    assert loaded.search(xq[:2], 3).k == 3


def test_bytes_per_vector(built: dict[str, BinaryIndex]) -> None:
    per = built["rabitq1"].bytes_per_vector()
    assert per["codes"] == pytest.approx(D / 8 + 8, abs=0.1)  # sign bits + 2 float factors
    # codes + factors + 8-byte id; no tombstones until a removal (then 8 bytes per removed row)
    assert per["store"] == 4 * D and per["ram"] == per["codes"] + 8 + per["store"]
    assert built["sign"].bytes_per_vector()["codes"] == D / 8
    assert built["rabitq1"].nbytes() >= N * per["ram"]


def test_tombstones_cost_8_bytes_per_dead_row(tmp_path: Path) -> None:
    """Removed rows are kept as sorted int64 rows (nothing per live row, 8 bytes per dead one),
    or a bitmap once more than 1/64 of the rows are dead; a 1-byte flag per row was 1/64 of a
    1-bit RaBitQ index. The reports say so."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1000, 32)).astype(np.float32)
    ids = np.arange(1000, dtype=np.int64)
    index = index_factory(32, "Binary(encoding=rabitq,bits=1)")
    assert isinstance(index, BinaryIndex)
    index.add(ids, x)
    live_only = index.nbytes()
    index.save(tmp_path / "a")
    assert type(index).load(tmp_path / "a").nbytes() <= live_only  # no flags, no slack
    per = index.bytes_per_vector()
    assert per["tombstones"] == 0 and per["ram"] == per["codes"] + 8 + per["store"]
    assert index.remove(np.array([3, 3, 7])) == 2
    assert index.nbytes() == live_only + 2 * 8
    per = index.bytes_per_vector()
    assert per["tombstones"] == 16 / 1000 and per["disk"] == per["ram"]
    assert per["ram"] == per["codes"] + 8 + 16 / 1000 + per["store"]
    assert index.remove(ids[::2]) == 500  # 502 of 1000 dead: a 125-byte bitmap from now on
    assert index.nbytes() == live_only + 125 and index.bytes_per_vector()["tombstones"] == 0.125
    assert index.bytes_per_vector()["disk"] == per["codes"] + 8 + 502 * 8 / 1000 + per["store"]
    index.add(np.array([5000], dtype=np.int64), x[:1])  # growing keeps the dead rows aligned
    res = index.search(x[[3, 7]], 1000, oversample=1000)
    assert not np.isin(ids[::2], res.ids).any() and not np.isin([3, 7], res.ids).any()
    assert 5000 in res.ids[0]
    index.save(tmp_path / "b")
    assert np.load(tmp_path / "b" / "dead_rows.npy").tolist() == sorted({*range(0, 1000, 2), 3, 7})
    back = type(index).load(tmp_path / "b")
    assert len(back) == len(index) == 499 and back._dead.nbytes == -(-1001 // 8)
    np.testing.assert_array_equal(back.alive_mask(), index.alive_mask())


def test_old_dead_flags_still_load(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    """Directories saved with the ``(n,) bool`` ``dead.npy`` load into the same index; saving
    again writes ``dead_rows.npy`` and drops the stale flags."""
    xb, ids, xq = data
    index = index_factory(D, "Binary(bits=1)")
    assert isinstance(index, BinaryIndex)
    index.add(ids[:3000], xb[:3000])
    index.remove(ids[:3000:11])
    index.save(tmp_path / "new")
    old = tmp_path / "new"
    (old / "dead_rows.npy").unlink()
    np.save(old / "dead.npy", ~index.alive_mask())  # the format saves wrote before
    loaded = BinaryIndex.load(old)
    np.testing.assert_array_equal(loaded._dead.sorted_rows(), index._dead.sorted_rows())
    for sel in (None, IdSelector(ids[:3000:2])):
        a, b = index.search(xq, 10, sel), loaded.search(xq, 10, sel)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    loaded.save(old)
    assert not (old / "dead.npy").exists() and (old / "dead_rows.npy").exists()
    np.save(old / "dead_rows.npy", np.array([5, 3], dtype=np.int64))  # unsorted: refused
    with pytest.raises(ValueError, match="sorted unique"):
        BinaryIndex.load(old)


def test_many_deletes_and_upserts_stay_aligned(data: tuple[np.ndarray, ...]) -> None:
    """Rounds of removals and upserts (remove + re-add of the same id, new vector): codes, ids
    and float rows stay aligned, removed rows never come back, and each id's score is its
    latest vector's."""
    xb, ids, xq = data
    rng = np.random.default_rng(3)
    index = index_factory(D, "Binary(bits=1)")
    assert isinstance(index, BinaryIndex)
    n0 = 4000
    index.add(ids[:n0], xb[:n0])
    current = dict(zip(ids[:n0].tolist(), range(n0), strict=True))  # id -> row of xb
    gone: set[int] = set()
    spare = n0
    for _ in range(12):
        live = np.array(sorted(current), dtype=np.int64)
        drop = rng.choice(live, 150, replace=False)
        assert index.remove(drop) == 150
        for j in drop.tolist():
            del current[j]
            gone.add(j)
        up = rng.choice(np.array(sorted(current), dtype=np.int64), 40, replace=False)
        index.remove(up)
        index.add(up, xb[spare : spare + 40])
        for j, r in zip(up.tolist(), range(spare, spare + 40), strict=True):
            current[j] = r
        spare += 40
        assert len(index) == len(current)
        assert index.bytes_per_vector()["tombstones"] == index._dead.nbytes / index._n <= 1 / 8
    keep = np.array(sorted(current), dtype=np.int64)
    rows = np.array([current[j] for j in keep.tolist()])
    truth_s, truth_i = brute_force(xb[rows], keep, xq, 10)
    for sel, allowed in ((None, keep), (IdSelector(keep[::3]), keep[::3])):
        res = index.search(xq, 10, sel, oversample=index._n / 10)  # every row a candidate
        assert not np.isin(res.ids, list(gone)).any() and np.isin(res.ids, allowed).all()
        if sel is None:
            np.testing.assert_array_equal(res.ids, truth_i)
            np.testing.assert_allclose(res.scores, truth_s, rtol=1e-5, atol=1e-5)
    res = index.search(xq, 50)
    assert not np.isin(res.ids, list(gone)).any() and (res.ids >= 0).all()
