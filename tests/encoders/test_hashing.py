"""The FOR-TESTS-ONLY hashing encoders, and the contract checks shared by every encoder."""

from __future__ import annotations

import numpy as np
import pytest

from encoders import Encoded, Encoder, EncoderError, encoder_factory
from encoders.hashing import tokenize

TEXTS = ["The cat sat on the mat.", "A dog barked!", "cat " * 300, "Ünïcode wörds, too"]


def test_dense_contract() -> None:
    enc = encoder_factory("test-hash(dim=32)")
    assert isinstance(enc, Encoder)
    assert (enc.dim, enc.multivector, enc.max_tokens) == (32, False, 256)
    out = enc.encode_documents(TEXTS)
    assert out.dense.shape == (4, 32) and out.dense.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, rtol=1e-6)
    assert out.truncated == 1
    assert out.token_counts == [7, 4, 256, 4]
    np.testing.assert_array_equal(out.dense, enc.encode_queries(TEXTS).dense)


def test_batch_equals_one_by_one() -> None:
    enc = encoder_factory("test-hash")
    batch = enc.encode_documents(TEXTS).dense
    single = np.vstack([enc.encode_documents([t]).dense for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_shared_words_score_higher() -> None:
    # At 256 dims unrelated hashed words have cosine ~ N(0, 1/16); two of three shared ~ 0.67.
    enc = encoder_factory("test-hash(dim=256)")
    v = enc.encode_queries(["red apple pie", "apple pie recipe", "quantum field theory"]).dense
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_tokens_contract() -> None:
    enc = encoder_factory("test-hash-tokens(dim=16,float16=true)")
    assert enc.multivector
    out = enc.encode_documents(TEXTS[:2])
    assert [m.shape for m in out.multi] == [(7, 16), (4, 16)]
    assert all(m.dtype == np.float16 for m in out.multi)
    np.testing.assert_allclose(np.linalg.norm(out.multi[0].astype(np.float32), axis=1), 1, 1e-3)
    with pytest.raises(TypeError):
        _ = out.dense


def test_deterministic_across_instances_and_fingerprinted_by_params(fresh_cache: None) -> None:
    first = encoder_factory("test-hash(seed=3)")
    v1 = first.encode_queries(TEXTS).dense
    from encoders import clear_cache

    clear_cache()
    second = encoder_factory("test-hash(seed=3)")
    assert second is not first
    np.testing.assert_array_equal(v1, second.encode_queries(TEXTS).dense)
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 64 and int(first.fingerprint, 16) >= 0
    assert encoder_factory("test-hash(seed=4)").fingerprint != first.fingerprint
    # max_tokens changes the spec but not the "weights"
    assert encoder_factory("test-hash(seed=3,max_tokens=8)").fingerprint == first.fingerprint


def test_empty_batch() -> None:
    assert encoder_factory("test-hash").encode_queries([]).dense.shape == (0, 64)
    assert encoder_factory("test-hash-tokens").encode_queries([]).multi == []


@pytest.mark.parametrize(
    ("texts", "fragment"),
    [
        ("a bare string", "sequence of strings"),
        (["ok", 3], "texts[1] must be a string"),
        (["ok", "  \n"], "texts[1] is empty"),
        ([b"bytes"], "texts[0] must be a string"),
    ],
)
def test_bad_input_is_an_encoder_error(texts: object, fragment: str) -> None:
    with pytest.raises(EncoderError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        encoder_factory("test-hash").encode_documents(texts)  # type: ignore[arg-type]


def test_tokenize() -> None:
    assert tokenize("It's 3.5%!") == ["it", "'", "s", "3", ".", "5", "%", "!"]


def test_encoded_checks_its_shapes() -> None:
    with pytest.raises(ValueError, match="float32"):
        Encoded(np.zeros((2, 3), np.float64), 0, [1, 1])
    with pytest.raises(ValueError, match="2 vectors for 3"):
        Encoded(np.zeros((2, 3), np.float32), 0, [1, 1, 1])
    with pytest.raises(ValueError, match="one dim"):
        Encoded([np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)], 0, [2, 2])
    with pytest.raises(ValueError, match="truncated"):
        Encoded(np.zeros((1, 3), np.float32), 2, [1])
    assert len(Encoded([np.zeros((2, 3), np.float16)], 0, [4])) == 1
