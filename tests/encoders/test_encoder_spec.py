"""Spec strings and the registry: parsing, canonical forms, errors, caching (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

import encoders
from encoders import REGISTRY, EncoderError, canonical, encoder_factory, known


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("minilm", "minilm(max_tokens=256,threads=2,batch_size=32)"),
        (" MiniLM ( threads = 1 ) ", "minilm(max_tokens=256,threads=1,batch_size=32)"),
        (
            "minilm-tokens(float16=true)",
            "minilm-tokens(max_tokens=256,threads=2,batch_size=32,float16=true)",
        ),
        ("minilm(max_tokens=128,)", "minilm(max_tokens=128,threads=2,batch_size=32)"),
        ("test-hash", "test-hash(dim=64,seed=0,max_tokens=256)"),
        ("test-hash()", "test-hash(dim=64,seed=0,max_tokens=256)"),
        ("test-hash-tokens(dim=8)", "test-hash-tokens(dim=8,seed=0,max_tokens=256,float16=false)"),
        (
            "onnx:/models/e5(pooling=cls)",
            "onnx:/models/e5(max_tokens=256,threads=2,batch_size=32,pooling=cls)",
        ),
        ("st:/models/a,b", "st:/models/a,b(max_tokens=256,threads=2,batch_size=32)"),
    ],
)
def test_canonical(spec: str, expected: str) -> None:
    assert canonical(spec) == expected
    assert canonical(expected) == expected


def test_relative_and_home_paths_become_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert canonical("onnx:~/m").startswith("onnx:/home/someone/m(")
    assert canonical("onnx:rel/m").startswith(f"onnx:{Path.cwd() / 'rel' / 'm'}(")


def test_factory_spec_round_trips() -> None:
    enc = encoder_factory("test-hash(dim=16)")
    assert enc.spec == canonical("test-hash(dim=16)")
    assert encoder_factory(enc.spec).spec == enc.spec
    assert enc.name == "test-hash"


def test_equivalent_specs_share_one_instance() -> None:
    a = encoder_factory("test-hash")
    b = encoder_factory("test-hash(dim=64,seed=0)")
    assert a is b
    assert encoder_factory("test-hash(seed=1)") is not a


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(EncoderError) as err:
        encoder_factory("bert-large")
    message = str(err.value)
    assert "'bert-large'" in message
    for name in ("minilm", "minilm-tokens", "onnx:<dir>", "st:<dir>", "test-hash"):
        assert name in message
    assert set(known()) >= {"minilm", "onnx:<dir>", "test-hash-tokens"}
    assert len(known()) == len(REGISTRY)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "non-empty"),
        ("minilm(dim=3)", "unknown parameter 'dim'"),
        ("minilm(threads=two)", "threads must be int"),
        ("minilm(threads=0)", "threads must be in [1, 256]"),
        ("minilm(max_tokens=2048)", "max_tokens must be in [4, 512]"),
        ("minilm(threads=1,threads=2)", "given twice"),
        ("minilm(threads)", "not key=value"),
        ("minilm)", "unbalanced"),
        ("minilm:/some/dir", "takes no path"),
        ("onnx", "needs a directory"),
        ("onnx:(max_tokens=8)", "needs a directory"),
        ("onnx:/m(pooling=max)", "pooling must be one of mean, cls"),
        ("test-hash(dim=-1)", "dim must be in"),
        ("9lives", "bad encoder name"),
    ],
)
def test_bad_specs_are_encoder_errors(spec: str, fragment: str) -> None:
    with pytest.raises(EncoderError) as err:
        encoder_factory(spec)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)  # the service maps ValueError families to 4xx


def test_missing_onnx_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EncoderError, match="does not exist") as err:
        encoder_factory(f"onnx:{missing}")
    assert str(missing) in str(err.value)


def test_public_surface_is_explicit_and_sorted() -> None:
    assert encoders.__all__ == sorted(encoders.__all__, key=lambda s: (not s.isupper(), s))
    for name in encoders.__all__:
        assert hasattr(encoders, name), name
    assert encoders.DEFAULT_SPEC in REGISTRY
