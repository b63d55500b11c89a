"""The spec grammar, the registry and the canonical form."""

from __future__ import annotations

import pytest

from index import REGISTRY, SpecError, index_factory, parse_spec
from index.spec import available, canonical, knobs


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("Flat", ["Flat"]),
        (" Flat ( ) ", ["Flat"]),
        ("HNSW(m=32,ef_search=128)", ["HNSW(m=32,ef_search=128)"]),
        (
            "Binary(encoding=rabitq, bits=1),Rescore(oversample=4)",
            ["Binary(encoding=rabitq,bits=1)", "Rescore(oversample=4)"],
        ),
        ("Flat,Hypencoder(model=/m/q.onnx)", ["Flat", "Hypencoder(model=/m/q.onnx)"]),
    ],
)
def test_parse_syntax(text: str, parts: list[str]) -> None:
    assert [str(p) for p in parse_spec(text).parts] == parts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("Flat,", "empty part"),
        ("Flat((", "unbalanced"),
        ("Flat)", "unbalanced"),
        ("9Flat", "bad component name"),
        ("HNSW(m)", "not key=value"),
        ("HNSW(m=1,m=2)", "given twice"),
        ("HNSW(m=1", "unbalanced"),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_unknown_component_lists_known() -> None:
    with pytest.raises(SpecError) as err:
        index_factory(8, "Nope")
    for name in REGISTRY:
        assert name in str(err.value)


def test_unknown_parameter_lists_known() -> None:
    with pytest.raises(SpecError, match="unknown parameter 'm'"):
        index_factory(8, "Flat(m=3)")


def test_canonical_is_a_fixed_point() -> None:
    for name in available():
        c = canonical(name)
        assert canonical(c) == c
        assert index_factory(128, c).spec == c


def test_further_parts_need_a_composite() -> None:
    with pytest.raises(SpecError, match="Flat takes no further parts"):
        index_factory(8, "Flat,Rescore(oversample=2)")


@pytest.mark.parametrize("dim", [0, -3])
def test_bad_dim(dim: int) -> None:
    with pytest.raises(SpecError, match="dim"):
        index_factory(dim, "Flat")


def test_knobs_come_from_the_registered_class_without_building() -> None:
    assert knobs("Flat") == ()
    assert knobs("HNSW(m=16)") == ("ef_search",)
    assert knobs("IVF(nlist=8)") == ("nprobe",)
    assert knobs("Binary,Rescore(oversample=2)") == ("oversample", "rescore", "nprobe", "ef_search")
    assert knobs("Muvera,Flat,MaxSim(candidates=10)") == ("candidates", "exact", "tau")
    with pytest.raises(SpecError, match="known"):
        knobs("Nope")
