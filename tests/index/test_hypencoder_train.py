"""The torch trainer of the Hypencoder head (skipped where the optional torch extra is absent)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from index.hypencoder_head import HeadConfig, HyperHead  # noqa: E402
from index.hypencoder_train import (  # noqa: E402
    TorchHead,
    TrainConfig,
    pad_tokens,
    torch_qnet_scores,
    train_head,
)


@pytest.mark.parametrize(
    ("n_hidden", "residual_last"), [(0, False), (1, False), (2, False), (3, True)]
)
def test_numpy_inference_equals_torch_forward(n_hidden: int, residual_last: bool) -> None:
    head = HyperHead.init(
        HeadConfig(dim=16, token_dim=8, n_hidden=n_hidden, residual_last=residual_last, seed=4)
    )
    rng = np.random.default_rng(0)
    queries = [rng.standard_normal((t, 8)).astype(np.float32) for t in (1, 3, 7)]
    docs = rng.standard_normal((3, 11, 16)).astype(np.float32)
    tok, mask = pad_tokens(queries)
    weights, biases = TorchHead(head)(tok, mask)
    with torch.no_grad():
        want = torch_qnet_scores(weights, biases, torch.from_numpy(docs), residual_last).numpy()
    got = head.qnets(queries).scores(docs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    back = TorchHead(head).to_head()
    assert all(np.array_equal(back.params[k], head.params[k]) for k in head.params)


def _band_task(nq: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Each query is a direction u (its tokens are noisy copies); relevant documents are +u and
    -u, the rest random unit vectors. No inner product ranks both +u and -u on top (one of them
    scores <= 0 for any query vector); |<u, d>| does, which a q-net with a hidden layer can
    learn."""
    rng = np.random.default_rng(seed)
    dim, n_list = 8, 8
    u = rng.standard_normal((nq, dim)).astype(np.float32)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    tokens = [(u[i] + 0.05 * rng.standard_normal((3, dim))).astype(np.float32) for i in range(nq)]
    docs = rng.standard_normal((nq, n_list, dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=2, keepdims=True)
    docs[:, 0], docs[:, 1] = u, -u
    labels = np.zeros((nq, n_list), np.float32)
    labels[:, :2] = 1
    lists = np.arange(nq * n_list, dtype=np.int64).reshape(nq, n_list)
    return tokens, docs.reshape(-1, dim), lists, labels


def _both_on_top(
    head: HyperHead, tokens: list[np.ndarray], docs: np.ndarray, lists: np.ndarray
) -> float:
    hits = [
        set(np.argsort(-head.qnet(t).scores(docs[row]))[:2]) == {0, 1}
        for t, row in zip(tokens, lists, strict=True)
    ]
    return float(np.mean(hits))


def test_training_learns_what_inner_product_cannot() -> None:
    n = 1024  # fewer training queries let the head memorise instead of learning |<u, d>|
    tokens, docs, lists, labels = _band_task(n + 64, seed=0)
    head = HyperHead.init(HeadConfig(dim=8, token_dim=8, n_hidden=1, seed=0))
    cfg = TrainConfig(
        epochs=8, batch_size=32, lr=1e-2, weight_decay=0.0, distill_weight=0.0, seed=0, threads=1
    )
    res = train_head(head, tokens[:n], docs, lists[:n], labels[:n], cfg)
    assert res.losses[-1] < 0.7 * res.losses[0]
    test_t, test_l = tokens[n:], lists[n:]
    ip_rate = np.mean(
        [
            set(np.argsort(-(docs[row] @ t.mean(0)))[:2]) == {0, 1}
            for t, row in zip(test_t, test_l, strict=True)
        ]
    )
    assert ip_rate == 0.0
    assert _both_on_top(res.head, test_t, docs, test_l) > 0.5
    # Deterministic by seed; the input head is not modified.
    again = train_head(
        head, tokens[:64], docs, lists[:64], labels[:64], TrainConfig(epochs=1, seed=3, threads=1)
    )
    twice = train_head(
        head, tokens[:64], docs, lists[:64], labels[:64], TrainConfig(epochs=1, seed=3, threads=1)
    )
    assert again.losses == twice.losses
    assert all(
        np.array_equal(head.params[k], HyperHead.init(head.config).params[k]) for k in head.params
    )


def test_train_inputs_are_checked() -> None:
    tokens, docs, lists, labels = _band_task(8, seed=1)
    head = HyperHead.init(HeadConfig(dim=8, token_dim=8, n_hidden=1))
    with pytest.raises(ValueError, match="must be"):
        train_head(head, tokens, docs, lists[:4], labels, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="at least one positive"):
        train_head(head, tokens, docs, lists, np.zeros_like(labels), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="teacher"):
        train_head(
            head,
            tokens,
            docs,
            lists,
            labels,
            TrainConfig(epochs=1),
            teacher=np.zeros((8, 2), np.float32),
        )
