"""Payload filters: the SQLite compilation (``to_sql`` through a real ``PointStore``) must select
exactly the points the Python reference ``evaluate`` accepts, for random payloads and filters;
plus explicit examples of the tricky semantics and of what validation rejects."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from support import fuzz_settings

from app.filters import Filter, evaluate, point_key, to_sql
from app.store.points import PointStore

Point = tuple[int | str, Any]

SETTINGS = fuzz_settings(300)

# ---- helpers --------------------------------------------------------------------------------


def open_store(path: Path, points: list[Point]) -> PointStore:
    store = PointStore(path)
    store.upsert(
        1,
        [point_key(i) for i, _ in points],
        np.arange(len(points), dtype=np.int64),
        [p for _, p in points],
    )
    return store


def assert_agrees(store: PointStore, points: list[Point], flt: Filter) -> set[str]:
    """SQL and the reference agree on ``flt`` through every PointStore entry point; returns
    the matched keys."""
    params: list[Any] = []
    sql = to_sql(flt, params)
    assert sql.count("?") == len(params)

    want = {point_key(i) for i, p in points if evaluate(flt, i, p)}
    iid_of = {point_key(i): n for n, (i, _) in enumerate(points)}

    got = store.matching(flt)
    got_keys = [k for k, _ in got]
    assert len(got_keys) == len(set(got_keys))
    assert set(got_keys) == want, f"filter={flt.model_dump(exclude_defaults=True)}"
    assert all(iid == iid_of[k] for k, iid in got)
    assert store.count(flt) == len(want)
    assert store.iids(flt).tolist() == sorted(iid_of[k] for k in want)
    assert [k for k, _, _ in store.scroll(None, 10_000, flt)] == sorted(want)
    return want


_db_counter = itertools.count()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PointStore]:
    """One store reused by every hypothesis example (refilled each time: fast, no fsync)."""
    store = PointStore(tmp_path_factory.mktemp("filters") / "points.db")
    yield store
    store.close()


def refill(store: PointStore, points: list[Point]) -> PointStore:
    seq = store.applied_seq + 1
    store.delete(seq, [k for k, _, _ in store.scroll(None, 1 << 30, None)])
    store.upsert(
        seq,
        [point_key(i) for i, _ in points],
        np.arange(len(points), dtype=np.int64),
        [p for _, p in points],
    )
    assert store.applied_seq == seq
    return store


@pytest.fixture
def matched(tmp_path: Path) -> Iterator[Callable[[list[Point], dict[str, Any]], set[Any]]]:
    """``matched(points, filter_dict)`` -> the ids the filter selects (SQL == reference)."""
    stores: list[PointStore] = []

    def run(points: list[Point], flt: dict[str, Any]) -> set[Any]:
        store = open_store(tmp_path / f"{next(_db_counter)}.db", points)
        stores.append(store)
        keys = assert_agrees(store, points, Filter.model_validate(flt))
        return {i for i, _ in points if point_key(i) in keys}

    yield run
    for s in stores:
        s.close()


# ---- strategies -----------------------------------------------------------------------------

KEYS = ("a", "b", "c")
FIELD_KEYS = ("a", "b", "c", "a.b", "b.c", "a.b.c", "c.a.b", "z", "a.z")
EDGE_INTS = [2**31, 2**53, 2**53 + 1, 2**63 - 1, -(2**63)]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 2.5, -2.5, 1e300, 5e-324, 9007199254740992.0]
STR_POOL = ["", "1", "0", "true", "false", "a", "b", "null"]

SMALL_FLOATS = [-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``common`` three times out of four (keeps payloads and filters overlapping)."""
    return st.integers(0, 3).flatmap(lambda n: rare if n == 0 else common)


ints = mostly(st.integers(-3, 3), st.sampled_from(EDGE_INTS))
floats = mostly(
    st.sampled_from(SMALL_FLOATS),
    st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(allow_nan=False, allow_infinity=False)),
)
# No NUL: see test_match_string_with_nul_agrees.
strs = mostly(st.sampled_from(STR_POOL), st.text(alphabet='ab1 é\n"\\', max_size=3))
scalars = st.one_of(ints, floats, st.booleans(), strs, st.none())
keys = st.sampled_from(KEYS)

leaf = mostly(
    scalars,
    st.lists(
        st.one_of(
            scalars,
            st.lists(scalars, max_size=2),
            st.dictionaries(keys, scalars, max_size=2),
        ),
        max_size=3,
    ),
)
level2 = st.dictionaries(keys, leaf, max_size=3)
level1 = st.dictionaries(keys, mostly(leaf, level2), max_size=3)
payloads = mostly(
    st.dictionaries(keys, mostly(leaf, level1), min_size=1, max_size=3),
    st.one_of(st.none(), st.just({})),
)

point_ids = st.one_of(st.integers(0, 20), st.text(alphabet="ab1", max_size=2))


@st.composite
def point_sets(draw: st.DrawFn) -> list[Point]:
    ids = draw(st.lists(point_ids, min_size=4, max_size=20, unique_by=point_key))
    return [(i, draw(payloads)) for i in ids]


def harvest(points: list[Point]) -> dict[str, tuple[list[Any], list[float]]]:
    """Each dotted key present in the payloads -> (match-able values, numbers) found under it,
    sorted so that draws stay deterministic."""
    found: dict[str, tuple[set[tuple[str, Any]], set[float]]] = {}

    def scalar(path: str, v: Any) -> None:
        values, numbers = found.setdefault(path, (set(), set()))
        for m in (v, *cousins(v)):
            if isinstance(m, bool | str) or (isinstance(m, int) and -(2**63) <= m < 2**63):
                values.add((type(m).__name__, m))
        if isinstance(v, int | float) and not isinstance(v, bool):
            numbers.add(float(v))

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                sub = f"{path}.{k}" if path else k
                found.setdefault(sub, (set(), set()))
                walk(x, sub)
        elif isinstance(v, list):
            for x in v:
                if not isinstance(x, dict | list):
                    scalar(path, x)
        elif path:
            scalar(path, v)

    for _, p in points:
        walk(p, "")
    return {
        k: ([v for _, v in sorted(vals, key=repr)], sorted(nums))
        for k, (vals, nums) in sorted(found.items())
    }


def cousins(v: Any) -> list[Any]:
    """Values of other types that a sloppy comparison would confuse with ``v``."""
    if isinstance(v, bool):
        return [int(v), str(v).lower(), str(int(v))]
    if isinstance(v, int):
        return [str(v), *([bool(v)] if v in (0, 1) else [])]
    if isinstance(v, float):
        return [int(v), str(int(v))] if v.is_integer() and abs(v) < 2**63 else [str(v)]
    if isinstance(v, str):
        out: list[Any] = [True] if v == "true" else [False] if v == "false" else []
        return out + ([int(v)] if v.lstrip("-").isdigit() else [])
    return []


def field_strategy(key: str, values: list[Any], numbers: list[float]) -> st.SearchStrategy[Any]:
    vals = mostly(st.sampled_from(values), match_values) if values else match_values
    bnds = mostly(st.sampled_from(numbers), bounds) if numbers else bounds
    lower = st.tuples(st.sampled_from(["gt", "gte"]), bnds)
    upper = st.tuples(st.sampled_from(["lt", "lte"]), bnds)
    rng = st.one_of(
        lower.map(lambda b: dict([b])),
        upper.map(lambda b: dict([b])),
        st.tuples(lower, upper).map(dict),
        st.fixed_dictionaries(
            {}, optional={"gt": bnds, "gte": bnds, "lt": bnds, "lte": bnds}
        ).filter(bool),
    )
    return st.one_of(
        st.fixed_dictionaries({"key": st.just(key), "match": vals}),
        st.fixed_dictionaries(
            {
                "key": st.just(key),
                "match": st.fixed_dictionaries({"any": st.lists(vals, min_size=1, max_size=3)}),
            }
        ),
        st.fixed_dictionaries({"key": st.just(key), "range": rng}),
        st.fixed_dictionaries({"key": st.just(key), "exists": st.booleans()}),
    )


def filter_strategy(points: list[Point], depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    """Filters biased towards the keys, values and ids that occur in ``points``."""
    seen = harvest(points)
    field = field_keys.flatmap(lambda k: field_strategy(k, *seen.get(k, ([], []))))
    if seen:
        present = st.sampled_from(sorted(seen)).flatmap(lambda k: field_strategy(k, *seen[k]))
        field = mostly(present, field)
    ids = mostly(st.sampled_from([i for i, _ in points]), point_ids)
    has_id = st.fixed_dictionaries({"has_id": st.lists(ids, min_size=1, max_size=4)})

    def level(d: int) -> st.SearchStrategy[dict[str, Any]]:
        cond: st.SearchStrategy[Any] = mostly(field, has_id)
        if d > 0:
            cond = mostly(cond, level(d - 1))
        clause = st.lists(cond, min_size=1, max_size=2)
        return st.fixed_dictionaries(
            {}, optional={"must": clause, "should": clause, "must_not": clause}
        )

    return level(depth)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Point], list[Filter]]:
    points = draw(point_sets())
    flts = draw(st.lists(filter_strategy(points), min_size=1, max_size=6))
    return points, [Filter.model_validate(f) for f in flts]


@st.composite
def single_conditions(draw: st.DrawFn) -> tuple[list[Point], dict[str, Any]]:
    points = draw(point_sets())
    flt = draw(filter_strategy(points, depth=0).filter(lambda f: "must" in f))
    return points, flt["must"][0]


match_values = st.one_of(st.booleans(), ints, strs)
bounds = mostly(
    st.sampled_from([-3, -1, 0, 1, 2, 3, *SMALL_FLOATS]),
    st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(allow_nan=False, allow_infinity=False)),
)
field_keys = mostly(st.sampled_from(KEYS), st.sampled_from(FIELD_KEYS))


# ---- the property ---------------------------------------------------------------------------


@SETTINGS
@given(scenario=scenarios())
def test_sql_agrees_with_reference(
    shared_store: PointStore, scenario: tuple[list[Point], list[Filter]]
) -> None:
    points, flts = scenario
    store = refill(shared_store, points)
    assert store.count() == len(points)
    for flt in flts:
        assert_agrees(store, points, flt)


@SETTINGS
@given(scenario=single_conditions())
def test_single_condition_and_its_negation(
    shared_store: PointStore, scenario: tuple[list[Point], dict[str, Any]]
) -> None:
    """Every point satisfies exactly one of ``must: [c]`` and ``must_not: [c]``."""
    points, cond = scenario
    store = refill(shared_store, points)
    yes = assert_agrees(store, points, Filter.model_validate({"must": [cond]}))
    no = assert_agrees(store, points, Filter.model_validate({"must_not": [cond]}))
    assert yes.isdisjoint(no)
    assert yes | no == {point_key(i) for i, _ in points}


# ---- explicit semantics ---------------------------------------------------------------------

TYPED: list[Point] = [
    (1, {"a": 1}),
    (2, {"a": True}),
    (3, {"a": "1"}),
    (4, {"a": 1.0}),
    (5, {"a": [0, 1]}),
    (6, {"a": [True]}),
    (7, {"a": 0}),
    (8, {"a": False}),
    (9, {"a": "true"}),
    (10, {"a": 1.5}),
]


def test_match_int_is_type_strict(matched: Callable[..., set[Any]]) -> None:
    assert matched(TYPED, {"must": [{"key": "a", "match": 1}]}) == {1, 4, 5}
    assert matched(TYPED, {"must": [{"key": "a", "match": 0}]}) == {5, 7}


def test_match_bool_is_type_strict(matched: Callable[..., set[Any]]) -> None:
    assert matched(TYPED, {"must": [{"key": "a", "match": True}]}) == {2, 6}
    assert matched(TYPED, {"must": [{"key": "a", "match": False}]}) == {8}


def test_match_string_is_type_strict(matched: Callable[..., set[Any]]) -> None:
    assert matched(TYPED, {"must": [{"key": "a", "match": "1"}]}) == {3}
    assert matched(TYPED, {"must": [{"key": "a", "match": "true"}]}) == {9}


def test_match_any_mixes_types(matched: Callable[..., set[Any]]) -> None:
    f = {"must": [{"key": "a", "match": {"any": [1, "true", False]}}]}
    assert matched(TYPED, f) == {1, 4, 5, 8, 9}


def test_arrays_match_if_any_element_matches(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [
        (1, {"t": ["x", "y"]}),
        (2, {"t": ["y"]}),
        (3, {"t": []}),
        (4, {"t": [["x"]]}),  # nested arrays are not flattened
        (5, {"t": [{"v": "x"}]}),
        (6, {"t": [-1, 5, True]}),
        (7, {"t": [True, "7"]}),
    ]
    assert matched(pts, {"must": [{"key": "t", "match": "x"}]}) == {1}
    assert matched(pts, {"must": [{"key": "t", "match": {"any": ["x", "y"]}}]}) == {1, 2}
    assert matched(pts, {"must": [{"key": "t", "range": {"gt": 0}}]}) == {6}
    assert matched(pts, {"must": [{"key": "t", "range": {"lt": 0}}]}) == {6}
    assert matched(pts, {"must": [{"key": "t", "range": {"gte": 1, "lte": 4}}]}) == set()
    assert matched(pts, {"must": [{"key": "t", "match": True}]}) == {6, 7}
    assert matched(pts, {"must": [{"key": "t.v", "match": "x"}]}) == set()


def test_object_never_matches_match_or_range(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [
        (1, {"o": {"b": 1, "c": "x", "d": True}}),
        (2, {"o": 1}),
        (3, {"o": {}}),
    ]
    assert matched(pts, {"must": [{"key": "o", "match": 1}]}) == {2}
    assert matched(pts, {"must": [{"key": "o", "match": "x"}]}) == set()
    assert matched(pts, {"must": [{"key": "o", "match": {"any": [1, "x", True]}}]}) == {2}
    assert matched(pts, {"must": [{"key": "o", "range": {"gte": 0}}]}) == {2}
    assert matched(pts, {"must": [{"key": "o", "exists": True}]}) == {1, 2, 3}
    assert matched(pts, {"must": [{"key": "o.b", "match": 1}]}) == {1}


def test_exists(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [
        (1, {"a": None}),
        (2, {}),
        (3, None),
        (4, {"a": 0}),
        (5, {"a": []}),
        (6, {"a": {}}),
        (7, {"a": False}),
        (8, {"a": ""}),
        (9, {"b": {"a": 1}}),
    ]
    assert matched(pts, {"must": [{"key": "a", "exists": True}]}) == {4, 5, 6, 7, 8}
    assert matched(pts, {"must": [{"key": "a", "exists": False}]}) == {1, 2, 3, 9}
    assert matched(pts, {"must": [{"key": "b.a", "exists": True}]}) == {9}
    assert matched(pts, {"must": [{"key": "a.x", "exists": False}]}) == set(range(1, 10))


def test_dotted_keys_walk_objects_only(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [
        (1, {"a": {"b": {"c": 3}}}),
        (2, {"a": {"b": 3}}),
        (3, {"a": [{"b": 3}]}),
        (4, {"a.b": 3}),
        (5, {"a": {"b": [1, 3]}}),
    ]
    assert matched(pts, {"must": [{"key": "a.b", "match": 3}]}) == {2, 5}
    assert matched(pts, {"must": [{"key": "a.b.c", "range": {"gte": 3}}]}) == {1}
    assert matched(pts, {"must": [{"key": "a.b", "exists": True}]}) == {1, 2, 5}


def test_range_bounds(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [(n, {"x": v}) for n, v in enumerate([1, 2, 3, 2.5, "2", True, None])]
    assert matched(pts, {"must": [{"key": "x", "range": {"gt": 1, "lt": 3}}]}) == {1, 3}
    assert matched(pts, {"must": [{"key": "x", "range": {"gte": 1, "lte": 3}}]}) == {0, 1, 2, 3}
    assert matched(pts, {"must": [{"key": "x", "range": {"gt": 2.5}}]}) == {2}
    assert matched(pts, {"must": [{"key": "x", "range": {"lte": 2}}]}) == {0, 1}
    assert matched(pts, {"must": [{"key": "x", "range": {"gt": 3, "lt": 1}}]}) == set()


def test_range_compares_large_ints_exactly(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [(1, {"x": 2**53 + 1}), (2, {"x": 2**53}), (3, {"x": 2**63 - 1})]
    assert matched(pts, {"must": [{"key": "x", "range": {"gt": 2.0**53}}]}) == {1, 3}
    assert matched(pts, {"must": [{"key": "x", "range": {"lt": 2.0**63}}]}) == {1, 2, 3}


def test_should(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [(1, {"a": 1}), (2, {"a": 2}), (3, {})]
    assert matched(pts, {"should": [{"key": "a", "match": 99}]}) == set()
    assert matched(pts, {"should": [{"key": "a", "match": 1}, {"key": "a", "match": 2}]}) == {1, 2}
    assert matched(pts, {"should": []}) == {1, 2, 3}
    # should is ANDed with must
    f = {"must": [{"key": "a", "exists": True}], "should": [{"has_id": [2, 3]}]}
    assert matched(pts, f) == {2}


def test_must_not(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [(1, {"a": 1}), (2, {"a": 2}), (3, {}), (4, None)]
    assert matched(pts, {"must_not": [{"key": "a", "match": 1}]}) == {2, 3, 4}
    assert matched(pts, {"must_not": [{"key": "a", "match": 1}, {"has_id": [3]}]}) == {2, 4}
    assert matched(pts, {"must_not": [{}]}) == set()


def test_empty_filter_matches_all(matched: Callable[..., set[Any]], tmp_path: Path) -> None:
    pts: list[Point] = [(1, {"a": 1}), ("x", None), (3, {})]
    assert matched(pts, {}) == {1, "x", 3}
    assert matched(pts, {"must": [], "should": [], "must_not": []}) == {1, "x", 3}
    assert matched(pts, {"must": [{}], "should": [{"must": [{}]}]}) == {1, "x", 3}
    params: list[Any] = []
    assert to_sql(Filter(), params) == "1" and params == []
    store = open_store(tmp_path / "all.db", pts)
    assert store.count(None) == 3 and len(store.matching(None)) == 3
    store.close()


def test_has_id_keeps_int_and_string_ids_apart(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [(1, {}), ("1", {}), ('é"\\', {}), (2**70, {}), ("", {})]
    assert matched(pts, {"must": [{"has_id": [1]}]}) == {1}
    assert matched(pts, {"must": [{"has_id": ["1"]}]}) == {"1"}
    assert matched(pts, {"must": [{"has_id": ['é"\\', 2**70, 7]}]}) == {'é"\\', 2**70}
    assert matched(pts, {"must": [{"has_id": [""]}]}) == {""}
    assert matched(pts, {"must_not": [{"has_id": [1, "1"]}]}) == {'é"\\', 2**70, ""}


def test_nested_filters(matched: Callable[..., set[Any]]) -> None:
    pts: list[Point] = [(n, {"a": n % 3, "b": n % 2}) for n in range(12)]
    f = {
        "should": [
            {"must": [{"key": "a", "match": 0}, {"key": "b", "match": 0}]},
            {"must_not": [{"key": "a", "range": {"lte": 1}}]},
        ],
        "must_not": [{"should": [{"has_id": [0]}]}],
    }
    assert matched(pts, f) == {2, 5, 6, 8, 11}


# ---- validation -----------------------------------------------------------------------------

INVALID = [
    {"must": [{"key": "a", "match": 1, "exists": True}]},
    {"must": [{"key": "a", "match": 1, "range": {"gt": 0}}]},
    {"must": [{"key": "a", "range": {"gt": 0}, "exists": False}]},
    {"must": [{"key": "a"}]},
    {"must": [{"key": "a", "match": None}]},
    {"must": [{"key": "a", "range": {}}]},
    {"must": [{"key": "a", "range": {"gt": float("inf")}}]},
    {"must": [{"key": "a", "range": {"lt": float("nan")}}]},
    {"must": [{"key": "a", "range": {"between": 1}}]},
    {"must": [{"key": "", "match": 1}]},
    {"must": [{"key": "a..b", "match": 1}]},
    {"must": [{"key": ".a", "match": 1}]},
    {"must": [{"key": "a.", "match": 1}]},
    {"must": [{"key": 'a"b', "match": 1}]},
    {"must": [{"key": "a\\b", "match": 1}]},
    {"must": [{"key": "k" * 257, "match": 1}]},
    {"must": [{"key": "a", "match": 1.5}]},
    {"must": [{"key": "a", "match": [1]}]},
    {"must": [{"key": "a", "match": {"any": []}}]},
    {"must": [{"key": "a", "match": {"any": [1.5]}}]},
    {"must": [{"key": "a", "match": {"any": [1], "all": [2]}}]},
    {"must": [{"key": "a", "match": 1, "extra": 1}]},
    {"must": [{"has_id": []}]},
    {"must": [{"has_id": [True]}]},
    {"must": [{"has_id": [1.0]}]},
    {"must": [{"has_id": [1], "key": "a"}]},
    {"must": [{"has_id": [1], "must": []}]},
    {"filter": []},
    {"must": {"key": "a", "match": 1}},
    {"must": [{"must": [{"key": "a", "match": 1, "exists": True}]}]},
]


@pytest.mark.parametrize("bad", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_filters_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Filter.model_validate(bad)


def test_valid_key_forms() -> None:
    f = Filter.model_validate({"must": [{"key": "a b.é-1.$x[0]", "exists": True}]})
    params: list[Any] = []
    to_sql(f, params)
    assert params == ['$."a b"."é-1"."$x[0]"']


# ---- bugs: SQL and the reference disagree (or SQL crashes) ----------------------------------


def test_match_int_outside_int64_is_rejected_or_unmatched(tmp_path: Path) -> None:
    """A match integer SQLite cannot bind must be a validation error, or simply match nothing,
    never crash the query."""
    pts: list[Point] = [(1, {"a": 1}), (2, {"a": 2**64 - 1})]
    for big in (2**63, -(2**63) - 1, 2**64 - 1, 2**100):
        for flt in (
            {"must": [{"key": "a", "match": big}]},
            {"must": [{"key": "a", "match": {"any": [1, big]}}]},
        ):
            try:
                f = Filter.model_validate(flt)
            except ValidationError:
                continue
            store = open_store(tmp_path / f"{next(_db_counter)}.db", pts)
            try:
                assert_agrees(store, pts, f)
            finally:
                store.close()


def test_range_agrees_on_uint64_payload_ints(tmp_path: Path) -> None:
    """orjson stores ints in [2**63, 2**64) which SQLite reads back as lossy reals."""
    pts: list[Point] = [(1, {"x": 2**63 + 1}), (2, {"x": 2**64 - 1}), (3, {"x": 5})]
    try:
        store = open_store(tmp_path / "u64.db", pts)
    except (ValueError, TypeError, OverflowError):
        return  # refusing such payloads at write time is a valid fix
    try:
        assert_agrees(
            store, pts, Filter.model_validate({"must": [{"key": "x", "range": {"gt": 2.0**63}}]})
        )
        assert_agrees(
            store, pts, Filter.model_validate({"must": [{"key": "x", "range": {"lt": 2.0**64}}]})
        )
    finally:
        store.close()


@pytest.mark.parametrize("key", ["a\tb", "a\nb", "a\x00b", "a\x1fb"])
def test_key_with_control_character_agrees(tmp_path: Path, key: str) -> None:
    """orjson escapes control characters in object keys, SQLite's path lookup compares the
    escaped text (and rejects a NUL in the path outright)."""
    pts: list[Point] = [(1, {key: 1}), (2, {"a": 1})]
    try:
        f = Filter.model_validate({"must": [{"key": key, "exists": True}]})
    except ValidationError:
        return  # rejecting such keys is a valid fix
    store = open_store(tmp_path / "ctl.db", pts)
    try:
        assert_agrees(store, pts, f)
    finally:
        store.close()


def test_match_string_with_nul_agrees(tmp_path: Path) -> None:
    """SQLite 3.40's json_each cuts a string at an escaped NUL: ``match: "x"`` then selects the
    payload ``"x\\u0000y"`` (a false positive) and ``match: "x\\u0000y"`` selects nothing."""
    pts: list[Point] = [(1, {"a": "x\x00y"}), (2, {"a": "x"})]
    try:
        store = open_store(tmp_path / "nul.db", pts)
    except (ValueError, TypeError):
        return  # refusing NUL in payload strings is a valid fix
    try:
        for value in ("x", "x\x00y"):
            try:
                f = Filter.model_validate({"must": [{"key": "a", "match": value}]})
            except ValidationError:
                continue
            assert_agrees(store, pts, f)
    finally:
        store.close()
