"""Collections against a brute-force model: upserts, replacements, deletes, seals, merges,
restarts. Every search must equal exact numpy search over the points that should exist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import brute_force

from app.collection import Collection
from app.config import Settings
from app.filters import point_key
from app.search import Query, search
from app.store.catalog import CollectionConfig

D = 16


class Model:
    """What the collection should contain: id -> (vector, payload, version)."""

    def __init__(self) -> None:
        self.points: dict[int | str, tuple[np.ndarray, dict[str, int]]] = {}

    def truth(self, xq: np.ndarray, k: int) -> list[list[int | str]]:
        ids = list(self.points)
        xb = np.stack([self.points[i][0] for i in ids])
        _, order = brute_force(xb, np.arange(len(ids)), xq, k)
        return [[ids[j] for j in row if j >= 0] for row in order]


def open_collection(path: Path, settings: Settings, metric: str = "ip") -> Collection:
    config = CollectionConfig("c", D, metric)  # type: ignore[arg-type]
    path.mkdir(exist_ok=True)
    return Collection(path, config, settings)


def assert_matches(col: Collection, model: Model, rng: np.random.Generator) -> None:
    xq = rng.standard_normal((5, D)).astype(np.float32)
    outs = search(col, [Query(vector=q.tolist(), k=7) for q in xq], max_k=100)
    truth = model.truth(xq, 7)
    for out, want in zip(outs, truth, strict=True):
        got = [h.id for h in out.hits]
        # Scores of equal rank may tie only by construction; here data are continuous.
        assert got == want
        assert out.exact
    assert col.points.count() == len(model.points)


@pytest.mark.parametrize("seal_threshold", [10_000, 40])
def test_random_workload_matches_model(
    tmp_path: Path, rng: np.random.Generator, seal_threshold: int
) -> None:
    settings = Settings(data_dir=tmp_path, seal_threshold=seal_threshold, max_segments=3)
    col = open_collection(tmp_path / "c", settings)
    model = Model()
    for step in range(60):
        op = rng.uniform()
        if op < 0.65 or not model.points:
            n = int(rng.integers(1, 30))
            keys: list[int | str] = [
                int(i) if rng.uniform() < 0.7 else f"p{i}" for i in rng.integers(0, 150, n)
            ]
            keys = list(dict.fromkeys(keys))
            x = rng.standard_normal((len(keys), D)).astype(np.float32)
            col.upsert(keys, x.tolist(), [{"step": step} for _ in keys])
            for key, v in zip(keys, x, strict=True):
                model.points[key] = (v, {"step": step})
        elif op < 0.85:
            victims = list(rng.choice(np.array(list(model.points), dtype=object), 5))
            deleted, _ = col.delete(victims, None)
            assert deleted == len({point_key(v) for v in victims})
            for v in victims:
                model.points.pop(v, None)
        else:
            col.seal()
        if step % 10 == 9:
            assert_matches(col, model, rng)
    assert_matches(col, model, rng)
    if col._sealer is not None:
        col._sealer.join()
    assert len(col.parts()[0]) <= settings.max_segments
    col.close()
    reopened = open_collection(tmp_path / "c", settings)
    assert_matches(reopened, model, rng)
    for key, (v, payload) in list(model.points.items())[:20]:
        iid, stored = reopened.require(key)
        assert stored == payload
        np.testing.assert_array_equal(reopened.vector_of(iid), v)
    reopened.close()


def test_seal_drops_covered_wal_files(tmp_path: Path, rng: np.random.Generator) -> None:
    settings = Settings(data_dir=tmp_path, seal_threshold=10_000)
    col = open_collection(tmp_path / "c", settings)
    for i in range(3):
        col.upsert([i], rng.standard_normal((1, D)).tolist(), [None])
    col.seal()
    col.upsert([99], rng.standard_normal((1, D)).tolist(), [None])
    col.seal()
    files = col.wal.files()
    assert len(files) == 1  # only the newest file survives
    info = col.info()
    assert info["count"] == 4 and info["indexed_count"] == 4 and info["unindexed_count"] == 0
    col.close()


def test_deletes_during_seal_are_not_resurrected(tmp_path: Path, rng: np.random.Generator) -> None:
    settings = Settings(data_dir=tmp_path, seal_threshold=10_000)
    col = open_collection(tmp_path / "c", settings)
    x = rng.standard_normal((50, D)).astype(np.float32)
    col.upsert(list(range(50)), x.tolist(), [None] * 50)
    # Simulate a delete landing between the seal's snapshot and its install.
    import app.collection as colmod

    real_write = colmod.write_segment

    def slow_write(*args: object, **kwargs: object) -> object:
        seg = real_write(*args, **kwargs)  # type: ignore[arg-type]
        col.delete([0, 1, 2], None)
        return seg

    colmod.write_segment = slow_write  # type: ignore[assignment]
    try:
        col.seal()
    finally:
        colmod.write_segment = real_write
    out = search(col, [Query(vector=x[0].tolist(), k=50)], 100)[0]
    assert {h.id for h in out.hits} == set(range(3, 50))
    col.close()
    col = open_collection(tmp_path / "c", settings)
    out = search(col, [Query(vector=x[0].tolist(), k=50)], 100)[0]
    assert {h.id for h in out.hits} == set(range(3, 50))
    col.close()


def test_cosine_normalises(tmp_path: Path, rng: np.random.Generator) -> None:
    col = open_collection(tmp_path / "c", Settings(data_dir=tmp_path), metric="cosine")
    x = rng.standard_normal((40, D)).astype(np.float32) * rng.uniform(0.1, 10, (40, 1))
    col.upsert(list(range(40)), x.tolist(), [None] * 40)
    q = rng.standard_normal(D).astype(np.float32) * 7
    out = search(col, [Query(vector=q.tolist(), k=5)], 100)[0]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn @ (q / np.linalg.norm(q))
    assert [h.id for h in out.hits] == list(np.argsort(-cos)[:5])
    np.testing.assert_allclose([h.score for h in out.hits], np.sort(cos)[::-1][:5], rtol=1e-5)
    col.close()


def test_a_failed_seal_is_retried_and_loses_nothing(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seal that fails (disk full, EIO) leaves its tail frozen; the next seal must take those
    rows too, because its WAL truncation covers their records."""
    import app.collection as colmod

    settings = Settings(data_dir=tmp_path, seal_threshold=10_000)
    col = open_collection(tmp_path / "c", settings)
    x = rng.standard_normal((30, D)).astype(np.float32)
    col.upsert(list(range(20)), x[:20].tolist(), [None] * 20)

    def broken(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(colmod, "write_segment", broken)
    with pytest.raises(OSError):
        col.seal()
    monkeypatch.undo()
    col.upsert(list(range(20, 30)), x[20:].tolist(), [None] * 10)
    col.seal()
    assert col.info()["unindexed_count"] == 0
    col.close()
    col = open_collection(tmp_path / "c", settings)
    for i in range(30):
        got = col.vector_of(col.require(i)[0])
        assert got is not None, f"point {i} lost its vector"
        np.testing.assert_array_equal(got, x[i])
    col.close()
