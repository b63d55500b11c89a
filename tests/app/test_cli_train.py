"""``innerspace train-hypencoder`` end to end on a tiny hashed-encoder task, and its parts.

The task: query ``"qA qB"`` is relevant to document ``"dA dB"`` (12 words each side, 66 pairs).
Query and document words are different hashed tokens, so the frozen encoder's inner product is
no better than chance; a head that learns which document words each query word stands for
ranks the right document first. Training must beat the inner product on held-out queries.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.cli_train import (
    TORCH_MISSING,
    ip_init,
    mine_lists,
    rank_metrics,
    split_queries,
)
from app.train_data import read_pairs
from encoders import encoder_factory
from encoders.evaluation import ndcg_at_k, recall_at_k
from index.flat import FlatIndex
from index.hypencoder import HypencoderReranker
from index.hypencoder_head import HeadConfig, HyperHead

TOK, DENSE = "test-hash-tokens(dim=32)", "test-hash(dim=32)"


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    rows = [
        {"query": f"q{a} q{b}", "positive": f"d{a} d{b}"}
        for a, b in itertools.combinations(range(12), 2)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_trains_a_head_that_beats_the_frozen_encoder(
    tmp_path: Path, pairs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="the trainer needs torch (pip install 'innerspace[torch]')")
    out = tmp_path / "heads" / "syn"
    args = ["train-hypencoder", "--data", str(pairs_file), "--out", str(out)]
    args += ["--encoder", TOK, "--doc-encoder", DENSE, "--epochs", "12", "--val", "8"]
    args += ["--test", "12", "--list-size", "16", "--batch-size", "8", "--lr", "3e-3"]
    args += ["--threads", "1", "--cache", str(tmp_path / "cache"), "--license", "CC0-1.0"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "held-out test slice (12 queries)" in err and "nDCG@10 difference" in err

    head = HyperHead.load(out)
    info = head.info
    assert head.config.encoder == TOK and head.config.doc_encoder == DENSE
    assert info["data"]["license"] == "CC0-1.0" and info["data"]["train_queries"] == 46
    assert len(info["val_ndcg10"]) == 12 and info["val_ndcg10"][info["best_epoch"] - 1] == max(
        info["val_ndcg10"]
    )
    assert sorted(p.name for p in (tmp_path / "heads" / "syn-checkpoints").iterdir()) == [
        f"epoch-{e:02d}" for e in range(1, 13)
    ]
    test = info["test"]
    # Learned, not luck: the inner product of different hashed words is near chance.
    assert test["flat"]["ndcg@10"] < 0.3
    assert test["hypencoder"]["ndcg@10"] > test["flat"]["ndcg@10"] + 0.2

    # The report is what the saved head does: recompute it independently.
    pairs = read_pairs(pairs_file)
    split = split_queries(66, 8, 12, 0, 0)
    docs = encoder_factory(DENSE).encode_documents(pairs.docs).dense
    store = FlatIndex(docs.shape[1])
    store.add(np.arange(len(docs), dtype=np.int64), docs)
    queries = [pairs.queries[i] for i in split.test]
    tokens = encoder_factory(TOK).encode_queries(queries).vectors
    rr = HypencoderReranker(head, store)
    everything = np.arange(len(docs), dtype=np.int64)
    ranked = [[pairs.docs[j] for j in rr.rerank(t, everything, 10).ids[0]] for t in tokens]
    qrels = [{pairs.docs[p]: 1 for p in pairs.positives[i]} for i in split.test]
    assert ndcg_at_k(ranked, qrels, 10) == pytest.approx(test["hypencoder"]["ndcg@10"], abs=1e-6)

    # A second run reads the encodings from the cache (no encoding bars) and resumes.
    again = [*args[:4], str(tmp_path / "again"), *args[5:], "--resume", str(out)]
    again[again.index("--epochs") + 1] = "1"
    assert main(again) == 0
    assert "encode documents" not in capsys.readouterr().err
    assert HyperHead.load(tmp_path / "again").info["init"] == "resume"


def test_without_torch_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
    pairs_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    code = main(["train-hypencoder", "--data", str(pairs_file), "--out", str(tmp_path / "h")])
    assert code == 2
    assert "pip install 'innerspace[torch]'" in capsys.readouterr().err
    assert "innerspace[torch]" in TORCH_MISSING and not (tmp_path / "h").exists()


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch", reason="the command checks for torch first")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\n{"query": "a"}\n')
    assert main(["train-hypencoder", "--data", str(bad), "--out", str(tmp_path / "h")]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text("".join(f'{{"query": "q{i}", "positive": "d{i}"}}\n' for i in range(4)))
    HyperHead.init(HeadConfig(dim=32, token_dim=32, encoder=TOK)).save(tmp_path / "old")
    args = ["train-hypencoder", "--data", str(good), "--out", str(tmp_path / "h")]
    assert main([*args, "--resume", str(tmp_path / "old")]) == 2
    assert "pass them as --encoder / --doc-encoder" in capsys.readouterr().err


def test_read_pairs_groups_positives_and_negatives(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    rows = [
        {"query": "a", "positive": "x", "negatives": ["y", "z"]},
        {"query": "a", "positive": "y"},
        {"query": "b", "positive": "x"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    p = read_pairs(f)
    assert p.queries == ["a", "b"] and p.docs == ["x", "y", "z"]
    assert p.positives == [[0, 1], [0]] and p.negatives == [[2], []]  # y is positive for a
    deb = tmp_path / "d.jsonl"
    deb.write_text(json.dumps({"package": "p", "synopsis": "s", "description": "long"}) + "\n")
    assert read_pairs(deb, debian=True).queries == ["s"]


def test_rank_metrics_match_the_beir_reference() -> None:
    rng = np.random.default_rng(3)
    ranked = np.stack([rng.permutation(300)[:120] for _ in range(40)])
    positives = [sorted(rng.choice(300, rng.integers(1, 4), replace=False)) for _ in range(40)]
    m = rank_metrics(ranked, positives)
    names = [[str(j) for j in row] for row in ranked]
    qrels = [{str(p): 1 for p in pos} for pos in positives]
    assert float(m["ndcg@10"].mean()) == pytest.approx(ndcg_at_k(names, qrels, 10), abs=1e-6)
    assert float(m["recall@100"].mean()) == pytest.approx(recall_at_k(names, qrels, 100), abs=1e-6)


def test_mine_lists_keeps_positives_and_hard_negatives() -> None:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((50, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    top = np.argsort(-(q @ docs.T), axis=1, kind="stable")
    far = int(top[0, -1])  # the worst document for query 0: forced in as its positive
    lists, labels, teacher = mine_lists(q, docs, [[far], [int(top[1, 0])], [1]], [[], [], [7]], 6)
    assert lists.shape == (3, 6) and labels.sum(axis=1).tolist() == [1, 1, 1]
    assert lists[0, 0] == far and set(lists[0, 1:]) == set(top[0, :5])  # 5 hardest negatives
    assert 7 in lists[2] and len(set(lists[1])) == 6
    np.testing.assert_allclose(teacher, np.einsum("qd,qld->ql", q, docs[lists]), rtol=1e-6)


def test_ip_init_ranks_like_the_mean_token_and_float16_round_trips(tmp_path: Path) -> None:
    config = HeadConfig(dim=16, token_dim=16, n_hidden=2, residual_last=True, seed=1)
    head = ip_init(config)
    rng = np.random.default_rng(2)
    tokens = rng.standard_normal((5, 16)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    docs = rng.standard_normal((200, 16)).astype(np.float32)
    m = tokens.mean(axis=0)
    ip = docs @ ((m - m.mean()) / m.std())
    s = head.qnet(tokens).scores(docs)
    assert np.corrcoef(s, ip)[0, 1] > 0.999
    head.save(tmp_path / "h16", float16=True)
    back = HyperHead.load(tmp_path / "h16")
    assert back.info["storage"] == "float16"
    np.testing.assert_allclose(back.qnet(tokens).scores(docs), s, rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="residual_last"):
        ip_init(HeadConfig(dim=16, token_dim=16))
