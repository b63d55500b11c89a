"""Filters beyond ``test_filters.py``, which checks the SQL against the Python reference
``evaluate`` on a few fixed key names: here the key names are arbitrary text (whatever a
SQLite JSON path might mis-quote), and filters run end to end through a collection: a
filtered search returns exactly the top-k of the points ``evaluate`` accepts (the tail,
sealed segments, replaced and deleted points included), and a delete by filter removes
exactly those points.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support import fuzz_settings

from app.collection import Collection
from app.config import Settings
from app.filters import Filter, evaluate, point_key
from app.search import Query, search
from app.store.catalog import CollectionConfig
from app.store.points import PointStore

SETTINGS = fuzz_settings(100)

Point = tuple[int | str, Any]


# Durability is not what these tests check, and fsyncs were most of their run time.
pytestmark = pytest.mark.usefixtures("no_fsync")


def agrees(store: PointStore, points: list[Point], flt: Filter) -> set[str]:
    """SQL (through the store) selects exactly what the reference accepts; returns the keys."""
    want = {point_key(i) for i, p in points if evaluate(flt, i, p)}
    assert {k for k, _ in store.matching(flt)} == want, flt.model_dump(exclude_defaults=True)
    assert store.count(flt) == len(want)
    return want


def field(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """One field condition on ``key``, its values drawn from ``values``."""
    bound = st.sampled_from([-1, 0, 0.5, 1, 2, 3])
    bounds = st.one_of(
        st.fixed_dictionaries({"gt": bound}),
        st.fixed_dictionaries({"lte": bound}),
        st.fixed_dictionaries({"gt": bound, "lte": bound}),
    )
    any_of = st.fixed_dictionaries({"any": st.lists(values, min_size=1, max_size=3)})
    return st.one_of(
        st.fixed_dictionaries({"key": st.just(key), "match": values}),
        st.fixed_dictionaries({"key": st.just(key), "match": any_of}),
        st.fixed_dictionaries({"key": st.just(key), "range": bounds}),
        st.fixed_dictionaries({"key": st.just(key), "exists": st.booleans()}),
    )


def filters(conditions: st.SearchStrategy[dict[str, Any]], depth: int) -> st.SearchStrategy[Any]:
    """``must / should / must_not`` trees of ``conditions``, nested up to ``depth``."""

    def level(d: int) -> st.SearchStrategy[dict[str, Any]]:
        cond = conditions if d == 0 else st.one_of(conditions, conditions, level(d - 1))
        clause = st.lists(cond, min_size=1, max_size=3)
        return st.fixed_dictionaries(
            {}, optional={"must": clause, "should": clause, "must_not": clause}
        )

    return level(depth)


# ---- arbitrary key names --------------------------------------------------------------------

#: What a filter key may contain between its dots: anything but quotes, backslashes and
#: control characters (validation refuses those). Weighted to SQLite path syntax and to
#: characters JSON or SQLite could treat specially.
key_chars = st.one_of(
    st.sampled_from(list("$[]*'#@ -_0é한😀\u2028\u00a0\ufeff")),
    st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters='."\\'),
)
names = st.text(key_chars, min_size=1, max_size=4)
values = st.one_of(st.integers(-2, 3), st.sampled_from(["", "a", "1", "true"]), st.booleans())


def paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted path to a value in nested objects."""
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            yield path
            yield from paths(v, path)


@st.composite
def keyed(draw: st.DrawFn) -> tuple[list[Point], list[Filter]]:
    """Payloads over a few arbitrary names, nested up to two levels, and filters mostly on
    the paths that occur in them (else on any names)."""
    pool = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    name = st.sampled_from(pool)
    leaf = st.one_of(values, st.lists(values, max_size=2), st.none())
    inner = st.dictionaries(name, leaf, max_size=2)
    value = st.one_of(leaf, leaf, inner, st.dictionaries(name, inner, max_size=2))
    ids = draw(st.lists(st.integers(0, 30), min_size=3, max_size=12, unique=True))
    points: list[Point] = [(i, draw(st.dictionaries(name, value, max_size=3))) for i in ids]
    present = sorted({p for _, payload in points for p in paths(payload)})
    anywhere = st.lists(st.one_of(name, names), min_size=1, max_size=3).map(".".join)
    path = (
        st.one_of(st.sampled_from(present), st.sampled_from(present), anywhere)
        if present
        else anywhere
    )
    cond = path.flatmap(lambda k: field(k, values))
    flts = draw(
        st.lists(
            st.one_of(cond.map(lambda c: {"must": [c]}), filters(cond, depth=1)),
            min_size=1,
            max_size=4,
        )
    )
    return points, [Filter.model_validate(f) for f in flts]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PointStore]:
    """One store for every example, refilled each time (a new SQLite file per example is
    most of the run time on a busy disk)."""
    s = PointStore(tmp_path_factory.mktemp("keys") / "points.db")
    yield s
    s.close()


@SETTINGS
@given(scenario=keyed())
def test_any_key_name_agrees_with_reference(
    store: PointStore, scenario: tuple[list[Point], list[Filter]]
) -> None:
    points, flts = scenario
    seq = store.applied_seq + 1
    store.delete(seq, [k for k, _, _ in store.scroll(None, 1 << 30, None)])
    keys = [point_key(i) for i, _ in points]
    store.upsert(seq, keys, np.arange(len(points), dtype=np.int64), [p for _, p in points])
    matched = [agrees(store, points, flt) for flt in flts]
    event(
        "some filter matched a strict subset"
        if any(0 < len(m) < len(points) for m in matched)
        else "trivial"
    )


# ---- through a collection: search, count, delete --------------------------------------------

D = 3
KEYS = ("a", "b", "a.b")
vals = st.one_of(st.integers(0, 3), st.sampled_from(["x", "y"]), st.booleans())
conds = st.one_of(
    st.sampled_from(KEYS).flatmap(lambda k: field(k, vals)),
    st.fixed_dictionaries({"has_id": st.lists(st.integers(0, 15), min_size=1, max_size=4)}),
)
small_payloads = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "a": st.one_of(vals, st.lists(vals, max_size=2), st.fixed_dictionaries({"b": vals})),
            "b": st.one_of(vals, st.floats(-1, 4, allow_nan=False)),
        },
    ),
)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """A few batches of upserts (ids repeat: replacements), deletes and seals, then filters."""
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["upsert", "upsert", "upsert", "delete", "seal"]))
        if kind == "upsert":
            ids = draw(st.lists(st.integers(0, 15), min_size=1, max_size=8, unique=True))
            steps.append((kind, [(i, draw(small_payloads)) for i in ids]))
        elif kind == "delete":
            steps.append((kind, draw(st.lists(st.integers(0, 15), min_size=1, max_size=4))))
        else:
            steps.append((kind, None))
    return steps, draw(st.lists(filters(conds, depth=2), min_size=1, max_size=3))


@settings(SETTINGS, max_examples=60)
@given(workload=workloads(), k=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_filtered_search_count_and_delete_match_the_reference(
    workload: tuple[list[tuple[str, Any]], list[dict[str, Any]]], k: int, seed: int
) -> None:
    steps, flts = workload
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c"
        path.mkdir()
        settings_ = Settings(data_dir=Path(tmp), seal_threshold=10_000)
        col = Collection(path, CollectionConfig("c", D, "ip"), settings_)  # type: ignore[arg-type]
        model: dict[int, tuple[np.ndarray, Any]] = {}
        try:
            for kind, arg in steps:
                if kind == "upsert":
                    x = rng.standard_normal((len(arg), D)).astype(np.float32)
                    col.upsert([i for i, _ in arg], x.tolist(), [p for _, p in arg])
                    model.update((i, (v, p)) for (i, p), v in zip(arg, x, strict=True))
                elif kind == "delete":
                    col.delete(arg, None)
                    for i in arg:
                        model.pop(i, None)
                else:
                    col.seal()
            q = rng.standard_normal(D).astype(np.float32)
            for raw in flts:
                flt = Filter.model_validate(raw)
                match = [i for i, (_, p) in model.items() if evaluate(flt, i, p)]
                assert col.points.count(flt) == len(match)
                hits = search(col, [Query(vector=q.tolist(), k=k, filter=flt)], max_k=100)[0].hits
                scores = {i: float(model[i][0] @ q) for i in match}
                want = sorted(match, key=lambda i: (-scores[i], i))[:k]
                assert [h.id for h in hits] == want, raw
                event(
                    "a filter selected some points but not all"
                    if 0 < len(match) < len(model)
                    else "trivial"
                )
                for h in hits:
                    assert h.payload == model[h.id][1]
                    assert h.score == pytest.approx(scores[h.id], rel=1e-5, abs=1e-5)
            # a delete by the first filter removes exactly its points
            flt = Filter.model_validate(flts[0])
            gone = {i for i, (_, p) in model.items() if evaluate(flt, i, p)}
            deleted, _ = col.delete(None, flt)
            assert deleted == len(gone)
            left = {int(point_key_) for point_key_, _, _ in col.points.scroll(None, 100, None)}
            assert left == set(model) - gone
        finally:
            col.close()
