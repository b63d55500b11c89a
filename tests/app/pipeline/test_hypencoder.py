"""The ``hypencoder`` stage against the library's q-net applied by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings
from encoders import encoder_factory
from index.hypencoder_head import HeadConfig, HyperHead

D, TOKENS = 8, "test-hash-tokens(dim=16)"


@pytest.fixture
def heads(tmp_path: Path) -> Path:
    root = tmp_path / "heads"
    HyperHead.init(HeadConfig(dim=D, token_dim=16, n_hidden=1, encoder=TOKENS)).save(root / "h1")
    HyperHead.init(HeadConfig(dim=4, token_dim=16, n_hidden=1, encoder=TOKENS)).save(root / "small")
    return root


@pytest.fixture
def hclient(tmp_path: Path, heads: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", hypencoder_dir=heads))) as c:
        wait_ready(c)
        yield c


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
