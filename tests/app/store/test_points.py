"""PointStore: upsert / replace / delete / lookup / scroll / by_iids / iids / count, and the
applied sequence number that survives a reopen."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.filters import Filter, point_key
from app.store.points import PointStore


def iids(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.int64)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PointStore]:
    s = PointStore(tmp_path / "points.sqlite")
    yield s
    s.close()


def contents(store: PointStore) -> dict[str, tuple[int, Any]]:
    return {k: (i, p) for k, i, p in store.scroll(None, 1 << 30, None)}


def test_empty_store(store: PointStore) -> None:
    assert store.applied_seq == 0
    assert store.count() == 0
    assert store.max_iid() == -1
    assert store.iids().dtype == np.int64 and store.iids().tolist() == []
    assert store.lookup([]) == {} and store.lookup(["1"]) == {}
    assert store.by_iids([]) == {} and store.by_iids([0]) == {}
    assert store.get("1") is None
    assert store.scroll(None, 10, None) == []
    assert store.matching(None) == []


def test_upsert_and_read_back(store: PointStore) -> None:
    keys = [point_key(1), point_key("1"), point_key("é"), point_key(2**70)]
    payloads: list[Any] = [{"a": 1}, None, {"n": {"x": [1, "y", None, True]}}, {}]
    store.upsert(1, keys, iids(10, 11, 12, 13), payloads)
    assert store.applied_seq == 1
    assert store.count() == 4
    assert store.get(point_key(1)) == (10, {"a": 1})
    assert store.get(point_key("1")) == (11, None)
    assert store.get(point_key("é")) == (12, {"n": {"x": [1, "y", None, True]}})
    assert store.get(point_key(2**70)) == (13, {})
    assert store.get(point_key(3)) is None
    assert store.lookup([*keys, point_key(3)]) == dict(zip(keys, [10, 11, 12, 13], strict=True))
    assert store.max_iid() == 13


def test_replace_keeps_one_row_and_updates_iid_and_payload(store: PointStore) -> None:
    store.upsert(1, ["a", "b"], iids(0, 1), [{"v": 1}, {"v": 2}])
    store.upsert(2, ["a"], iids(7), [{"v": 3}])
    assert store.count() == 2
    assert contents(store) == {"a": (7, {"v": 3}), "b": (1, {"v": 2})}
    assert store.by_iids([0, 1, 7]) == {1: ("b", {"v": 2}), 7: ("a", {"v": 3})}
    store.upsert(3, ["b"], iids(1), [None])  # same iid, payload cleared
    assert store.get("b") == (1, None)
    assert store.applied_seq == 3


def test_duplicate_key_in_one_batch_last_wins(store: PointStore) -> None:
    store.upsert(1, ["a", "a"], iids(0, 1), [{"v": 0}, {"v": 1}])
    assert contents(store) == {"a": (1, {"v": 1})}


def test_delete(store: PointStore) -> None:
    store.upsert(1, ["a", "b", "c"], iids(0, 1, 2), [{}, {}, {}])
    store.delete(2, ["b", "missing", "b"])
    assert store.applied_seq == 2
    assert sorted(contents(store)) == ["a", "c"]
    assert store.lookup(["a", "b", "c"]) == {"a": 0, "c": 2}
    assert store.by_iids([0, 1, 2]) == {0: ("a", {}), 2: ("c", {})}
    store.delete(3, [])
    assert store.applied_seq == 3 and store.count() == 2
    store.delete(4, ["a", "c"])
    assert store.count() == 0 and store.max_iid() == -1


def test_failed_upsert_rolls_back_rows_and_seq(store: PointStore) -> None:
    store.upsert(1, ["a"], iids(5), [{"v": 1}])
    with pytest.raises(sqlite3.IntegrityError):  # iid 5 already belongs to "a"
        store.upsert(2, ["b", "c"], iids(6, 5), [{}, {}])
    assert store.applied_seq == 1
    assert contents(store) == {"a": (5, {"v": 1})}
    with pytest.raises(ValueError):  # lengths differ
        store.upsert(3, ["x", "y"], iids(8), [{}, {}])
    assert store.applied_seq == 1 and store.count() == 1
    store.upsert(4, ["b"], iids(6), [{}])  # still usable
    assert store.applied_seq == 4


def test_applied_seq_and_rows_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    s = PointStore(path)
    s.upsert(3, ["a", "b"], iids(0, 1), [{"x": 1}, None])
    s.delete(4, ["b"])
    s.upsert(9, ["c"], iids(2), [{"y": [1, 2]}])
    s.checkpoint()
    s.close()
    s = PointStore(path)
    assert s.applied_seq == 9
    assert contents(s) == {"a": (0, {"x": 1}), "c": (2, {"y": [1, 2]})}
    s.upsert(10, ["d"], iids(3), [{}])
    s.close()  # no checkpoint: SQLite's own WAL must still carry it
    s = PointStore(path)
    assert s.applied_seq == 10 and s.count() == 3
    s.close()


def test_scroll_orders_by_key_and_pages_with_a_cursor(store: PointStore) -> None:
    ids: list[int | str] = [10, 2, 1, "b", "a", "10", -1, "", "é", 2**64]
    keys = [point_key(i) for i in ids]
    store.upsert(1, keys, np.arange(len(ids), dtype=np.int64), [{"i": n} for n in range(len(ids))])
    expected = sorted(keys)  # text order of the canonical keys (bytewise UTF-8)
    assert [k for k, _, _ in store.scroll(None, 100, None)] == expected

    for limit in (1, 3, 4, len(keys), len(keys) + 5):
        seen: list[str] = []
        after: str | None = None
        while True:
            page = store.scroll(after, limit, None)
            assert len(page) <= limit
            if not page:
                break
            seen += [k for k, _, _ in page]
            after = page[-1][0]
        assert seen == expected

    # the cursor need not be an existing key
    assert [k for k, _, _ in store.scroll('"a', 100, None)] == [k for k in expected if k > '"a']
    assert store.scroll(None, 0, None) == []
    row = store.scroll(None, 100, None)[0]
    assert row == (expected[0], keys.index(expected[0]), {"i": keys.index(expected[0])})


def test_scroll_with_filter(store: PointStore) -> None:
    keys = [point_key(i) for i in range(20)]
    store.upsert(1, keys, np.arange(20, dtype=np.int64), [{"even": i % 2 == 0} for i in range(20)])
    flt = Filter.model_validate({"must": [{"key": "even", "match": True}]})
    want = sorted(point_key(i) for i in range(0, 20, 2))
    got: list[str] = []
    after = None
    while page := store.scroll(after, 3, flt):
        got += [k for k, _, _ in page]
        after = page[-1][0]
    assert got == want
    assert all(p == {"even": True} for _, _, p in store.scroll(None, 100, flt))


def test_iids_sorted_and_filtered(store: PointStore) -> None:
    rng = np.random.default_rng(3)
    n = 300
    internal = rng.permutation(10_000)[:n].astype(np.int64)
    keys = [point_key(int(i)) for i in rng.permutation(n)]
    store.upsert(1, keys, internal, [{"m": int(i) % 3} for i in internal])
    all_iids = store.iids()
    assert all_iids.dtype == np.int64
    assert all_iids.tolist() == sorted(internal.tolist())
    flt = Filter.model_validate({"must": [{"key": "m", "match": 1}]})
    assert store.iids(flt).tolist() == sorted(int(i) for i in internal if i % 3 == 1)
    assert store.count(flt) == sum(1 for i in internal if i % 3 == 1)
    assert store.count() == n
    assert store.max_iid() == int(internal.max())


def test_lookup_and_by_iids_in_large_batches(store: PointStore) -> None:
    n = 1234  # more than the 500-key chunks
    keys = [point_key(f"p{i}") for i in range(n)]
    store.upsert(1, keys, np.arange(n, dtype=np.int64) * 2, [{"i": i} for i in range(n)])
    probe = keys[::-1] + [point_key("nope")] * 600
    assert store.lookup(probe) == {k: 2 * i for i, k in enumerate(keys)}
    wanted = list(range(2 * n + 10))  # odd iids and the tail do not exist
    got = store.by_iids(wanted)
    assert got == {2 * i: (keys[i], {"i": i}) for i in range(n)}
    assert store.by_iids(np.array([4, 4, 6], dtype=np.int64)) == {
        4: (keys[2], {"i": 2}),
        6: (keys[3], {"i": 3}),
    }


def test_count_and_matching(store: PointStore) -> None:
    store.upsert(1, ["a", "b", "c"], iids(4, 5, 6), [{"t": "x"}, {"t": "y"}, None])
    assert store.count() == 3 and store.count(None) == 3
    assert store.count(Filter()) == 3
    flt = Filter.model_validate({"must": [{"key": "t", "exists": True}]})
    assert store.count(flt) == 2
    assert sorted(store.matching(flt)) == [("a", 4), ("b", 5)]
    assert sorted(store.matching(None)) == [("a", 4), ("b", 5), ("c", 6)]


def test_concurrent_writers_and_readers(store: PointStore) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for j in range(50):
                iid = w * 1000 + j
                store.upsert(iid, [f"{w}-{j}"], iids(iid), [{"w": w}])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(100):
                store.count()
                store.iids()
                store.scroll(None, 10, None)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 200
    assert store.iids().tolist() == sorted(w * 1000 + j for w in range(4) for j in range(50))
