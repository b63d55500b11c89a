"""``/search`` that re-ranks with a Hypencoder head (``params.rerank`` and the
``...,Hypencoder(model=...)`` index spec), against the q-net applied by hand over brute-force
first-stage candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings
from encoders import encoder_factory
from index.hypencoder_head import HeadConfig, HyperHead

D, ENC, TOKENS = 8, "test-hash(dim=8)", "test-hash-tokens(dim=16)"
WORDS = "red green blue fast slow car apple pear tree river stone cloud".split()


def _head(seed: int, dim: int = D) -> HyperHead:
    cfg = HeadConfig(
        dim=dim, token_dim=16, n_hidden=1, seed=seed, encoder=TOKENS, doc_encoder="test-hash"
    )
    return HyperHead.init(cfg)


@pytest.fixture
def heads(tmp_path: Path) -> Path:
    root = tmp_path / "heads"
    _head(1).save(root / "h1")
    _head(2, dim=4).save(root / "small")
    return root


def _docs(n: int = 60) -> list[str]:
    rng = np.random.default_rng(3)
    return [" ".join(rng.choice(WORDS, size=4)) for _ in range(n)]


def _collection(c: TestClient, name: str = "c", index: str | None = None) -> list[str]:
    body: dict[str, Any] = {"name": name, "encoder": ENC}
    if index is not None:
        body["index"] = index
    r = c.post("/collections", json=body)
    assert r.status_code == 201, r.text
    docs = _docs()
    pts = [{"id": i, "text": t, "payload": {"g": i % 3}} for i, t in enumerate(docs)]
    assert c.put(f"/collections/{name}/points", json={"points": pts}).status_code == 200
    return docs


def _by_hand(
    heads: Path, head: str, docs: list[str], text: str, cands: int, allowed: set[int] | None = None
) -> tuple[list[int], np.ndarray]:
    """Top ``cands`` by exact inner product, re-scored by the q-net: ids and scores, best first."""
    x = encoder_factory(ENC).encode_documents(docs).dense
    q = encoder_factory(ENC).encode_queries([text]).dense[0]
    ids = np.array(sorted(allowed) if allowed is not None else range(len(docs)))
    ip = x[ids] @ q
    first = ids[np.lexsort((ids, -ip))][:cands]
    tokens = encoder_factory(TOKENS).encode_queries([text]).vectors[0]
    scores = HyperHead.load(heads / head).qnet(np.asarray(tokens, np.float32)).scores(x[first])
    order = np.lexsort((first, -scores))
    return first[order].tolist(), scores[order]


def test_params_rerank_equals_the_qnet_over_the_first_stage(
    hclient: TestClient, heads: Path
) -> None:
    docs = _collection(hclient)
    text = "red car by the river"
    params = {"rerank": "hypencoder", "head": "h1", "candidates": 20}
    r = hclient.post("/collections/c/search", json={"text": text, "k": 5, "params": params})
    assert r.status_code == 200, r.text
    want, scores = _by_hand(heads, "h1", docs, text, 20)
    body = r.json()
    assert [h["id"] for h in body["hits"]] == want[:5]
    np.testing.assert_allclose([h["score"] for h in body["hits"]], scores[:5], rtol=1e-5)
    assert body["hits"][0]["payload"] == {"g": want[0] % 3, "text": docs[want[0]]}
    assert [(s["stage"], s["input"], s["output"]) for s in body["stages"]] == [
        ("index", 0, 20),
        ("hypencoder", 20, 5),
    ]
    assert all(s["took_ms"] >= 0 for s in body["stages"])
    # The head defaults to the one trained for the collection's encoder (h1: test-hash).
    del params["head"]
    again = hclient.post("/collections/c/search", json={"text": text, "k": 5, "params": params})
    assert again.json()["hits"] == body["hits"]
    # offset pages through the re-ranked list; filters and thresholds apply; vectors come back.
    page = {"text": text, "k": 3, "offset": 2, "params": params, "with_vector": True}
    got = hclient.post("/collections/c/search", json=page).json()["hits"]
    assert [h["id"] for h in got] == want[2:5] and len(got[0]["vector"]) == D
    flt = {"must": [{"key": "g", "match": 1}]}
    r = hclient.post(
        "/collections/c/search", json={"text": text, "k": 4, "filter": flt, "params": params}
    )
    allowed = {i for i in range(len(docs)) if i % 3 == 1}
    want_f = _by_hand(heads, "h1", docs, text, 20, allowed)[0]
    assert [h["id"] for h in r.json()["hits"]] == want_f[:4]
    cut = float(scores[2])
    r = hclient.post(
        "/collections/c/search",
        json={"text": text, "k": 5, "score_threshold": cut, "params": params},
    )
    assert [h["id"] for h in r.json()["hits"]] == want[:3]


def test_index_spec_reranks_text_searches(hclient: TestClient, heads: Path) -> None:
    spec = "Flat,Hypencoder(model=h1,candidates=15)"
    docs = _collection(hclient, index=spec)
    info = hclient.get("/collections/c").json()
    assert info["index"] == spec
    text = "green apple tree"
    r = hclient.post("/collections/c/search", json={"text": text, "k": 4}).json()
    assert [h["id"] for h in r["hits"]] == _by_hand(heads, "h1", docs, text, 15)[0][:4]
    assert r["stages"][1]["input"] == 15
    # Per request: more candidates, or no re-ranking at all.
    more = {"text": text, "k": 4, "params": {"candidates": 30}}
    r = hclient.post("/collections/c/search", json=more).json()
    assert [h["id"] for h in r["hits"]] == _by_hand(heads, "h1", docs, text, 30)[0][:4]
    plain = hclient.post(
        "/collections/c/search", json={"text": text, "k": 4, "params": {"rerank": "none"}}
    ).json()
    assert "stages" not in plain
    q = encoder_factory(ENC).encode_queries([text]).dense[0]
    by_vector = hclient.post("/collections/c/search", json={"vector": q.tolist(), "k": 4}).json()
    assert "stages" not in by_vector and by_vector["hits"] == plain["hits"]
    # A batch mixes both and keeps its order.
    batch = {"searches": [{"text": text, "k": 4}, {"vector": q.tolist(), "k": 4}]}
    res = hclient.post("/collections/c/search/batch", json=batch).json()["results"]
    assert "stages" in res[0] and "stages" not in res[1] and res[1]["hits"] == plain["hits"]
    # A rebuild keeps the stage with a new index before it.
    r = hclient.post("/collections/c/index", json={"spec": "HNSW(m=8),Hypencoder(model=h1)"})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"vector": [0.1] * D, "params": {"rerank": "hypencoder"}}, 422, "search with 'text'"),
        ({"text": "a", "params": {"rerank": "colbert"}}, 422, "known: hypencoder, none"),
        ({"text": "a", "k": 10, "params": {"rerank": "hypencoder", "candidates": 5}}, 422, "k + "),
        ({"text": "a", "params": {"head": "h1"}}, 422, '"rerank": "hypencoder"'),
        ({"text": "a", "params": {"rerank": "hypencoder", "head": "nope"}}, 404, "known: h1"),
        ({"text": "a", "params": {"rerank": "hypencoder", "head": "small"}}, 422, "4-d"),
        ({"text": "a", "params": {"rerank": "hypencoder", "ef_search": "x"}}, 422, "ef_search"),
        ({"text": "a", "params": {"ef_search": "x"}}, 422, "number or boolean"),
        ({"text": "a", "params": {"rerank": "none", "candidates": 9}}, 422, "takes no head"),
    ],
)
def test_bad_rerank_requests_are_4xx(
    hclient: TestClient, body: dict[str, Any], status: int, message: str
) -> None:
    _collection(hclient)
    r = hclient.post("/collections/c/search", json=body)
    assert r.status_code == status and message in r.json()["message"], r.text


def test_bad_rerank_specs_are_refused_up_front(hclient: TestClient, heads: Path) -> None:
    def create(index: str, **extra: Any) -> Any:
        return hclient.post("/collections", json={"name": "x", "index": index, **extra})

    r = create("Flat,Hypencoder(model=nope)", encoder=ENC)
    assert r.status_code == 404 and "known: h1, small" in r.json()["message"]
    r = create("Flat,Hypencoder(model=small)", encoder=ENC)
    assert r.status_code == 422 and "scores 4-d vectors" in r.json()["message"]
    r = create("Hypencoder(model=h1)", encoder=ENC)
    assert r.status_code == 422 and "put an index first" in r.json()["message"]
    r = create("Flat,Hypencoder(model=h1,candidates=0)", encoder=ENC)
    assert r.status_code == 422 and "candidates must be >= 1" in r.json()["message"]
    r = create(f"Flat,Hypencoder(model={heads / 'h1'})", encoder=ENC)
    assert r.status_code == 201, r.text  # a head directory by absolute path (spec only)
    mv = "Muvera(d_proj=4),Flat,MaxSim,Hypencoder(model=h1)"
    r = hclient.post("/collections", json={"name": "m", "dim": 4, "multivector": True, "index": mv})
    assert r.status_code == 422 and "re-ranks dense" in r.json()["message"]


def test_default_head_must_be_unambiguous(tmp_path: Path, heads: Path) -> None:
    _head(5).save(heads / "h2")  # a second head for test-hash
    with TestClient(create_app(Settings(data_dir=tmp_path / "d", hypencoder_dir=heads))) as c:
        wait_ready(c)
        _collection(c)
        body = {"text": "a", "params": {"rerank": "hypencoder"}}
        r = c.post("/collections/c/search", json=body)
        assert r.status_code == 422 and "several heads fit" in r.json()["message"]
        assert "h1, h2" in r.json()["message"]


def test_default_head_by_encoder_falls_back_to_the_bundled_one(tmp_path: Path) -> None:
    from app.encoding import Encoding
    from app.errors import InvalidInput
    from app.pipeline.hypencoder import Heads

    heads = Heads(tmp_path / "none", Encoding(1))
    assert heads.default_for(encoder_factory("minilm").spec, 384) == "minilm-debian"
    with pytest.raises(InvalidInput, match="no hypencoder head was trained for 8-d vectors"):
        heads.default_for(ENC, D)
    with pytest.raises(InvalidInput, match="known: minilm-debian"):
        heads.default_for(encoder_factory("minilm").spec, 768)
