"""Graph search with a q-net against exhaustive q-net scoring and brute-force neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from index.hypencoder import QNet
from index.hypencoder_graph import graph_search, knn_graph


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, d)).astype(np.float32)
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _net(d: int, seed: int) -> QNet:
    rng = np.random.default_rng(seed)
    w0 = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    out = rng.standard_normal((d, 1)).astype(np.float32)
    return QNet((w0, out), (np.zeros(d, np.float32),))


def test_knn_graph_equals_brute_force() -> None:
    x = _clustered(300, 16, 0)
    g = knn_graph(x, 7, block=64)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    for i in range(len(x)):
        want = np.lexsort((np.arange(len(x)), -sims[i]))[:7]
        assert g[i].tolist() == want.tolist()
    with pytest.raises(ValueError, match="m must be between"):
        knn_graph(x, 300)
    with pytest.raises(ValueError, match="float32"):
        knn_graph(x.astype(np.float64), 3)


def test_a_complete_walk_is_exhaustive_scoring() -> None:
    x = _clustered(200, 12, 1)
    net = _net(12, 2)
    truth = net.scores(x)
    want = np.lexsort((np.arange(200), -truth))[:10]
    hits = graph_search(net, x, knn_graph(x, 199), np.array([5]), 10, beam=200, expand=200)
    assert hits.rows.tolist() == want.tolist()
    np.testing.assert_array_equal(hits.scores, truth[want])
    assert hits.scored == 200


def test_walk_finds_most_of_the_qnet_top_scoring_a_fraction() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    g = knn_graph(x, 16)
    recalls, scored = [], []
    for _ in range(20):
        q = rng.standard_normal(16).astype(np.float32)
        net = QNet.inner_product(q)  # q-net = inner product: the seeds' own ranking
        truth = set(np.argsort(-net.scores(x), kind="stable")[:10].tolist())
        seeds = rng.choice(4000, 8, replace=False)  # far from the answer: the walk must travel
        hits = graph_search(net, x, g, seeds, 10, beam=64, expand=4)
        recalls.append(len(truth & set(hits.rows.tolist())) / 10)
        scored.append(hits.scored)
        np.testing.assert_allclose(hits.scores, net.scores(x[hits.rows]), rtol=1e-6)
        assert (np.diff(hits.scores) <= 0).all()
    assert np.mean(recalls) >= 0.95, recalls  # measured 0.995
    assert np.median(scored) < 4000 / 4, scored  # measured 663


def test_dead_rows_are_never_returned_and_inputs_are_checked() -> None:
    x = _clustered(300, 8, 5)
    net = _net(8, 6)
    alive = np.ones(300, bool)
    alive[::3] = False
    g = knn_graph(x, 299)
    hits = graph_search(net, x, g, np.array([0, 1, -1, 1]), 50, beam=300, expand=300, alive=alive)
    assert alive[hits.rows].all() and len(hits.rows) == 50
    truth = np.where(alive, net.scores(x), -np.inf)
    assert hits.rows.tolist() == np.lexsort((np.arange(300), -truth))[:50].tolist()
    few = graph_search(net, x, g, np.array([3]), 5, beam=5, max_steps=0, alive=alive)
    assert len(few.rows) == 0 and few.scored == 1  # the only seed is dead
    with pytest.raises(ValueError, match="beam >= k"):
        graph_search(net, x, g, np.array([0]), 10, beam=5)
    with pytest.raises(ValueError, match="int32"):
        graph_search(net, x, g.astype(np.int64), np.array([0]), 5)
    with pytest.raises(ValueError, match="one query"):
        graph_search(QNet.stack([net, net]), x, g, np.array([0]), 5)
