"""The ``hypencoder`` stage against the library's q-net applied by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from encoders import encoder_factory
from index.hypencoder_head import ARRAYS, HeadConfig, HyperHead

D, TOKENS = 8, "test-hash-tokens(dim=16)"


@pytest.fixture
def heads(tmp_path: Path) -> Path:
    root = tmp_path / "heads"
    HyperHead.init(HeadConfig(dim=D, token_dim=16, n_hidden=1, encoder=TOKENS)).save(root / "h1")
    HyperHead.init(HeadConfig(dim=4, token_dim=16, n_hidden=1, encoder=TOKENS)).save(root / "small")
    return root


def test_hypencoder_stage_equals_the_qnet(hclient: TestClient, heads: Path) -> None:
    hclient.post("/collections", json={"name": "c", "dim": D})
    x = np.random.default_rng(6).standard_normal((30, D)).astype(np.float32)
    pts = [{"id": i, "vector": x[i].tolist()} for i in range(30)]
    hclient.put("/collections/c/points", json={"points": pts})
    ids = list(range(0, 30, 2))
    text = "which proteins bind the receptor"
    body = {"text": text, "stages": [{"ids": {"ids": ids}}, {"hypencoder": {"head": "h1", "k": 5}}]}
    r = hclient.post("/collections/c/query", json=body)
    assert r.status_code == 200, r.text
    head = HyperHead.load(heads / "h1")
    tokens = encoder_factory(TOKENS).encode_queries([text]).vectors[0]
    scores = head.qnet(np.asarray(tokens, np.float32)).scores(x[ids])
    order = np.argsort(-scores, kind="stable")[:5]
    assert [h["id"] for h in r.json()["hits"]] == [ids[i] for i in order]
    np.testing.assert_allclose([h["score"] for h in r.json()["hits"]], scores[order], rtol=1e-5)


def test_hypencoder_errors_name_the_head(hclient: TestClient) -> None:
    hclient.post("/collections", json={"name": "c", "dim": D})
    hclient.put("/collections/c/points", json={"points": [{"id": 1, "vector": [1.0] * D}]})
    stage = {"ids": {"ids": [1]}}
    r = hclient.post(
        "/collections/c/query",
        json={"text": "q", "stages": [stage, {"hypencoder": {"head": "nope", "k": 1}}]},
    )
    assert r.status_code == 404 and "known: h1, small" in r.json()["message"]
    r = hclient.post(
        "/collections/c/query",
        json={"text": "q", "stages": [stage, {"hypencoder": {"head": "small", "k": 1}}]},
    )
    assert r.status_code == 422 and "scores 4-d vectors" in r.json()["message"]
    r = hclient.post(
        "/collections/c/query", json={"stages": [stage, {"hypencoder": {"head": "h1", "k": 1}}]}
    )
    assert (
        r.status_code == 422
        and "stages[1].hypencoder: needs the query 'text'" in r.json()["message"]
    )
    r = hclient.post(
        "/collections/c/query",
        json={"text": "q", "stages": [stage, {"hypencoder": {"head": "../x", "k": 1}}]},
    )
    assert r.status_code == 422 and "stages[1].hypencoder.head" in r.json()["message"]


# ---- the head that ships with the package ----------------------------------------------------


def test_bundled_head_is_found_without_configuration(hclient: TestClient) -> None:
    """``minilm-debian`` resolves from the package assets and reranks like the shipped q-net
    applied by hand (the real minilm-tokens encoder)."""
    from app.pipeline.hypencoder import BUNDLED

    d = 384
    hclient.post("/collections", json={"name": "m", "dim": d})
    x = np.random.default_rng(7).standard_normal((40, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    hclient.put(
        "/collections/m/points",
        json={"points": [{"id": i, "vector": v.tolist()} for i, v in enumerate(x)]},
    )
    text = "tool to convert PDF files to text"
    head = HyperHead.load(BUNDLED / "minilm-debian")
    tokens = encoder_factory(head.config.encoder).encode_queries([text]).vectors[0]
    scores = head.qnet(np.asarray(tokens, np.float32)).scores(x)
    order = np.argsort(-scores, kind="stable")[:5]
    stages = [{"ids": {"ids": list(range(40))}}, {"hypencoder": {"head": "minilm-debian", "k": 5}}]
    r = hclient.post("/collections/m/query", json={"text": text, "stages": stages})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["hits"]] == order.tolist()
    np.testing.assert_allclose([h["score"] for h in r.json()["hits"]], scores[order], rtol=1e-4)
    r = hclient.post(
        "/collections/m/query",
        json={
            "text": "q",
            "stages": [{"ids": {"ids": [1]}}, {"hypencoder": {"head": "no", "k": 1}}],
        },
    )
    assert r.status_code == 404
    assert "known: h1, small; bundled: minilm-debian" in r.json()["message"]


def test_a_local_head_replaces_a_bundled_one(tmp_path: Path) -> None:
    from app.encoding import Encoding
    from app.pipeline.hypencoder import BUNDLED, Heads

    root = tmp_path / "heads"
    head = HyperHead.init(HeadConfig(dim=D, token_dim=16, n_hidden=1, encoder=TOKENS))
    head.save(root / "minilm-debian")
    heads = Heads(root, Encoding(1))
    assert heads.path("minilm-debian") == root / "minilm-debian"
    assert heads.head("minilm-debian").dim == D and heads.known() == (["minilm-debian"], [])
    shutil.rmtree(root / "minilm-debian")
    assert heads.path("minilm-debian") == BUNDLED / "minilm-debian"
    assert heads.head("minilm-debian").dim == 384
    assert heads.known() == ([], ["minilm-debian"]) and heads.path("nope") is None


def test_bundled_head_is_packaged_and_trained_on_licence_clean_data() -> None:
    """Never SciFact (CC BY-NC): the head records its data, licence, seed and validation; the
    wheel's package-data patterns cover its files; it stays small."""
    import fnmatch
    import json
    import tomllib

    from app.pipeline.hypencoder import BUNDLED

    where = BUNDLED / "minilm-debian"
    head = HyperHead.load(where)  # checks the sha256 of head.safetensors
    info = head.info
    assert "scifact" not in json.dumps(info).lower()
    assert info["data"]["format"] == "debian" and "DFSG" in info["data"]["license"]
    assert info["val_ndcg10"][info["best_epoch"] - 1] == max(info["val_ndcg10"])
    assert {"seed", "epochs"} <= set(info["train"]) and info["git"]["commit"]
    assert head.config.encoder == "minilm-tokens" and head.config.doc_encoder == "minilm"
    assert info["storage"] == "float16" and (where / ARRAYS).stat().st_size < 8_000_000
    root = Path(__file__).resolve().parents[3]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["encoders"]
    for f in ("config.json", ARRAYS):
        rel = f"assets/hypencoder/minilm-debian/{f}"
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), (rel, patterns)
