"""Hypencoder q-nets, the numpy hypernetwork head and the rerank stage (no torch needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import index.hypencoder as hyp
from index.flat import FlatIndex
from index.hypencoder import HypencoderParams, HypencoderReranker, QNet, layer_norm
from index.hypencoder_head import FORMAT_NPZ, HeadConfig, HyperHead, arrays_file
from index.params import SpecError, canonical_part
from index.spec import (
    canonical,
    index_factory,
    parse_spec,
    query_stages,
    split_query_stages,
    stage_params,
)

D, TD = 16, 12


def _head(seed: int = 0, n_hidden: int = 2, residual_last: bool = False) -> HyperHead:
    return HyperHead.init(
        HeadConfig(dim=D, token_dim=TD, n_hidden=n_hidden, residual_last=residual_last, seed=seed)
    )


def _tokens(rng: np.random.Generator, t: int = 5) -> np.ndarray:
    return rng.standard_normal((t, TD)).astype(np.float32)


def _store(n: int = 50, seed: int = 1) -> tuple[FlatIndex, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    index = FlatIndex(D)
    index.add(np.arange(100, 100 + n, dtype=np.int64), x)
    return index, x


def test_exports() -> None:
    assert sorted(hyp.__all__) == hyp.__all__
    assert all(hasattr(hyp, name) for name in hyp.__all__)


def test_d1_qnet_equals_flat_inner_product() -> None:
    index, x = _store()
    q = np.random.default_rng(2).standard_normal(D).astype(np.float32)
    want = index.search(q[None], 10)
    scores = QNet.inner_product(q).scores(x)
    np.testing.assert_allclose(scores, x @ q, rtol=1e-6, atol=1e-6)
    ids = np.arange(100, 150, dtype=np.int64)
    got = HypencoderReranker(_IdentityHead(q), index).rerank(np.zeros((1, D), np.float32), ids, 10)
    assert got.ids.tolist() == want.ids.tolist()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)


class _IdentityHead:
    """A q-net source that ignores the tokens and returns the [d, 1] inner-product q-net."""

    def __init__(self, q: np.ndarray) -> None:
        self.q = q
        self.dim = self.token_dim = len(q)

    def qnet(self, tokens: np.ndarray) -> QNet:
        return QNet.inner_product(self.q)


def test_layer_norm_and_residual_by_hand() -> None:
    # Two hidden layers, identity weights, zero biases: layer 0 keeps its residual, the last
    # hidden layer does not, then w = [1, 0].
    eye = np.eye(2, dtype=np.float32)
    net = QNet((eye, eye, np.array([[1], [0]], np.float32)), (np.zeros(2, np.float32),) * 2)
    x = np.array([[3.0, 1.0]], np.float32)
    # layer 0: relu -> [3, 1] -> LN -> [1, -1] (eps aside) -> + x = [4, 0]
    # layer 1: relu -> [4, 0] -> LN -> [1, -1], no residual -> score 1
    assert net.scores(x)[0] == pytest.approx(1.0, abs=1e-5)
    res = QNet(net.weights, net.biases, residual_last=True)
    assert res.scores(x)[0] == pytest.approx(5.0, abs=1e-4)  # [1, -1] + [4, 0]
    # ReLU zeroes a negative pre-activation before the norm: [-2, 1] -> [0, 1] -> [-1, 1]
    one = QNet((eye, np.array([[0], [1]], np.float32)), (np.zeros(2, np.float32),))
    assert one.scores(np.array([[-2.0, 1.0]], np.float32))[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(
        layer_norm(np.array([[2, 4, 6]], np.float32)), [[-1.2247, 0, 1.2247]], atol=1e-4
    )


def test_stacked_equals_per_query() -> None:
    rng = np.random.default_rng(3)
    head = _head()
    queries = [_tokens(rng, t) for t in (1, 4, 9)]
    stacked = head.qnets(queries)
    assert stacked.nq == 3
    shared = rng.standard_normal((7, D)).astype(np.float32)
    own = rng.standard_normal((3, 7, D)).astype(np.float32)
    for i, q in enumerate(queries):
        single = head.qnet(q)
        np.testing.assert_allclose(
            stacked.scores(shared)[i], single.scores(shared), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            stacked.scores(own)[i], single.scores(own[i]), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_array_equal(stacked.query(i).weights[0], single.weights[0])


def test_qnet_shapes_and_dtypes() -> None:
    head = _head()
    net = head.qnet(_tokens(np.random.default_rng(0)))
    assert [w.shape for w in net.weights] == [(D, D), (D, D), (D, 1)]
    assert [b.shape for b in net.biases] == [(D,), (D,)]
    assert all(w.dtype == np.float32 for w in net.weights)
    assert net.scores(np.zeros((4, D), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="weight matrices"):
        QNet(net.weights, ())
    with pytest.raises(ValueError, match="float32"):
        QNet((net.weights[0].astype(np.float64), *net.weights[1:]), net.biases)
    with pytest.raises(ValueError, match=r"must end in \(16, 1\)"):
        QNet((net.weights[0], net.weights[1], np.zeros((D, 2), np.float32)), net.biases)
    with pytest.raises(ValueError, match="biases"):
        QNet(net.weights, (net.biases[0], np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"docs must be \(m, 16\)"):
        net.scores(np.zeros((4, D + 1), np.float32))
    with pytest.raises(ValueError, match=r"query tokens must be \(t >= 1, 12\)"):
        head.qnet(np.zeros((3, D), np.float32))
    with pytest.raises(ValueError, match="t >= 1"):
        head.qnet(np.zeros((0, TD), np.float32))
    with pytest.raises(ValueError, match="finite"):
        head.qnet(np.full((2, TD), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"query must be \(d,\)"):
        QNet.inner_product(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="missing"):
        HyperHead(head.config, {k: v for k, v in head.params.items() if k != "out.base"})
    bad = dict(head.params, **{"out.base": np.zeros((2, D), np.float32)})
    with pytest.raises(ValueError, match="out.base must be float32"):
        HyperHead(head.config, bad)


def test_deterministic_by_seed() -> None:
    a, b, c = _head(seed=7), _head(seed=7), _head(seed=8)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["w0.base"], c.params["w0.base"])
    q = _tokens(np.random.default_rng(0))
    docs = np.random.default_rng(1).standard_normal((5, D)).astype(np.float32)
    np.testing.assert_array_equal(a.qnet(q).scores(docs), b.qnet(q).scores(docs))


def test_save_load_round_trip(tmp_path: Path) -> None:
    head = _head(seed=3, n_hidden=1, residual_last=True)
    head.info = {"note": "x"}
    head.save(tmp_path / "h")
    back = HyperHead.load(tmp_path / "h")
    assert back.config == head.config and back.info == {"note": "x"}
    assert all(np.array_equal(back.params[k], head.params[k]) for k in head.params)
    q = _tokens(np.random.default_rng(0))
    docs = np.random.default_rng(1).standard_normal((5, D)).astype(np.float32)
    np.testing.assert_array_equal(back.qnet(q).scores(docs), head.qnet(q).scores(docs))
    # The arrays are a plain safetensors file any framework reads.
    flat = safetensors.numpy.load_file(str(tmp_path / "h" / "head.safetensors"))
    assert all(np.array_equal(flat[k], head.params[k]) for k in head.params)
    # A changed byte in the arrays or another format is refused.
    arrays = tmp_path / "h" / "head.safetensors"
    raw = bytearray(arrays.read_bytes())
    raw[-100] ^= 1
    arrays.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        HyperHead.load(tmp_path / "h")
    meta = json.loads((tmp_path / "h" / "config.json").read_text())
    (tmp_path / "h" / "config.json").write_text(json.dumps(dict(meta, format="other/9")))
    with pytest.raises(ValueError, match="format"):
        HyperHead.load(tmp_path / "h")
    with pytest.raises(FileNotFoundError):
        HyperHead.load(tmp_path / "nothing")


def test_float16_and_first_format_heads_load(tmp_path: Path) -> None:
    head = _head(seed=4)
    head.save(tmp_path / "h16", float16=True)
    back = HyperHead.load(tmp_path / "h16")
    assert back.info["storage"] == "float16"
    for k, v in head.params.items():
        np.testing.assert_array_equal(back.params[k], v.astype(np.float16).astype(np.float32))
    # A head written in the first format (head.npz) still loads, checksum included.
    old = tmp_path / "old"
    old.mkdir()
    np.savez(old / "head.npz", **head.params)  # type: ignore[arg-type]
    digest = hashlib.sha256((old / "head.npz").read_bytes()).hexdigest()
    meta = {"format": FORMAT_NPZ, "config": asdict(head.config), "sha256": digest, "info": {}}
    (old / "config.json").write_text(json.dumps(meta))
    assert arrays_file(old) == old / "head.npz"
    loaded = HyperHead.load(old)
    assert all(np.array_equal(loaded.params[k], head.params[k]) for k in head.params)
    (old / "config.json").write_text(json.dumps(dict(meta, sha256="0" * 64)))
    with pytest.raises(ValueError, match="sha256"):
        HyperHead.load(old)


def test_rerank_equals_scoring_each_candidate() -> None:
    index, x = _store(60)
    index.remove(np.array([105], dtype=np.int64))
    head = _head()
    rr = HypencoderReranker(head, index)
    q = _tokens(np.random.default_rng(5), 6)
    net = head.qnet(q)
    cand = np.array([130, 101, -1, 105, 101, 999, 159, 120, 110, 142, 100], dtype=np.int64)
    got = rr.rerank(q, cand, 5)
    valid = sorted({int(c) for c in cand if 100 <= c < 160 and c != 105})
    single = {c: float(net.scores(x[c - 100][None])[0]) for c in valid}
    want = sorted(valid, key=lambda c: (-single[c], c))[:5]
    assert got.ids[0].tolist() == want
    np.testing.assert_allclose(got.scores[0], [single[c] for c in want], rtol=1e-5, atol=1e-5)
    # Preserves candidate ids only, pads when fewer than k remain.
    few = rr.rerank(q, np.array([101, 105, -1], dtype=np.int64), 3)
    assert few.ids[0].tolist() == [101, -1, -1] and np.isneginf(few.scores[0, 1:]).all()
    assert rr.rerank(q, np.empty(0, np.int64), 2).ids.tolist() == [[-1, -1]]
    with pytest.raises(ValueError, match="k must be positive"):
        rr.rerank(q, cand, 0)
    with pytest.raises(ValueError, match="one query's q-net"):
        rr.rerank_qnet(head.qnets([q, q]), cand, 3)
    with pytest.raises(ValueError, match="16-d documents"):
        HypencoderReranker(head, FlatIndex(D + 1))


def test_spec_stage(tmp_path: Path) -> None:
    part = parse_spec(f"Flat,Hypencoder(model={tmp_path}/h,candidates=50)").parts[1]
    params = stage_params(part)
    assert params == HypencoderParams(f"{tmp_path}/h", 50)
    assert canonical_part("Hypencoder", params) == f"Hypencoder(model={tmp_path}/h,candidates=50)"
    assert stage_params(parse_spec("Hypencoder(model=x)").parts[0]).candidates == 1000
    with pytest.raises(SpecError, match="model"):
        stage_params(parse_spec("Hypencoder(candidates=5)").parts[0])
    with pytest.raises(SpecError, match="candidates must be >= 1"):
        stage_params(parse_spec("Hypencoder(model=x,candidates=0)").parts[0])
    _head().save(tmp_path / "h")
    index, _ = _store()
    assert HypencoderReranker.from_params(params, index).head.config == _head().config
    by_name = HypencoderReranker.from_params(HypencoderParams("h"), index, heads=tmp_path)
    assert by_name.head.config == _head().config
    with pytest.raises(ValueError, match="heads directory"):
        HypencoderReranker.from_params(HypencoderParams("h"), index)


def test_spec_query_stage_follows_any_index() -> None:
    spec = "HNSW(m=8),Hypencoder(model=minilm-debian,candidates=200)"
    idx, tail = split_query_stages(spec)
    assert str(idx) == "HNSW(m=8)" and [str(p) for p in tail] == [spec.split(",", 1)[1]]
    assert query_stages(spec) == [HypencoderParams("minilm-debian", 200)]
    assert query_stages("Flat") == []
    # The index is what precedes the stage; the canonical spec keeps both.
    assert index_factory(D, spec).spec == index_factory(D, "HNSW(m=8)").spec
    assert canonical(spec, D) == index_factory(D, "HNSW(m=8)").spec + (
        ",Hypencoder(model=minilm-debian,candidates=200)"
    )
    assert canonical(canonical(spec, D), D) == canonical(spec, D)
    with pytest.raises(SpecError, match="put an index first"):
        index_factory(D, "Hypencoder(model=x)")
    with pytest.raises(SpecError, match="candidates must be >= 1"):
        index_factory(D, "Flat,Hypencoder(model=x,candidates=0)")
