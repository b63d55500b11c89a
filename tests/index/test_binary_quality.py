"""Binary codes' ranking quality: MIPS with varying norms (norm augmentation, exact RaBitQ
norms) and the recall regression on a small real MiniLM fixture, so quality drops fail CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import brute_force

from index import index_factory
from index.codes import hamming, random_orthogonal, sign_codes


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


# -- MIPS with varying norms ----------------------------------------------------------------------


def _candidate_recall(cand: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(c) & set(t)) / len(t) for c, t in zip(cand, truth, strict=True)]))


@pytest.mark.parametrize(
    ("spec", "floor"),
    [("Binary(bits=1)", 0.85), ("Binary(encoding=sign)", 0.5), ("Binary(encoding=itq)", 0.5)],
)
def test_codes_rank_by_inner_product_not_angle(spec: str, floor: float) -> None:
    """Norms spanning 100x, so the top by inner product and the top by cosine differ: the
    estimator's top 100 must hold the inner-product top 10 (norm augmentation for sign/ITQ,
    exact norms for RaBitQ). Plain SimHash of the same rows, which ranks by angle, fails it
    (measured: rabitq 0.92, sign 0.60, itq 0.64, plain SimHash 0.31)."""
    rng = np.random.default_rng(11)
    d, n = 64, 3000
    unit = rng.standard_normal((n, d))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    x = (unit * np.exp(rng.uniform(np.log(0.1), np.log(10.0), (n, 1)))).astype(np.float32)
    xq = rng.standard_normal((50, d)).astype(np.float32)
    by_ip = np.argsort(-(xq @ x.T), axis=1)[:, :10]
    by_angle = np.argsort(-(xq @ unit.T), axis=1)[:, :10]
    index = index_factory(d, spec)
    index.add(np.arange(n, dtype=np.int64), x)
    cand = index.search(xq, 100, rescore=False).ids
    ip, angle = _candidate_recall(cand, by_ip), _candidate_recall(cand, by_angle)
    assert ip >= floor and ip > angle + 0.25, (ip, angle)
    rot = random_orthogonal(np.random.default_rng(0), d)
    hamming_plain = hamming(
        sign_codes(xq.astype(np.float64), rot.astype(np.float32)),
        sign_codes(x.astype(np.float64), rot.astype(np.float32)),
    )
    plain = np.argsort(hamming_plain, axis=1, kind="stable")[:, :100]
    assert _candidate_recall(plain, by_ip) < 0.4 < ip  # the test can tell the two apart


# -- recall regression on real embeddings ---------------------------------------------------------

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "debian-minilm-2k.npz"
#: (spec, oversample) -> recall@10 floor on the real fixture, about 0.02 under the value
#: measured with faiss-cpu 1.15.1 (in the comment; seeds 1 and 2 land within 0.02 of it).
REAL_FLOORS = {
    ("Binary(bits=1)", 2.0): 0.90,  # 0.920
    ("Binary(bits=1)", 4.0): 0.97,  # 0.988
    ("Binary(bits=2)", 2.0): 0.98,  # 0.995
    ("Binary(encoding=sign)", 4.0): 0.85,  # 0.872
    ("Binary(encoding=itq)", 4.0): 0.89,  # 0.913
}


@pytest.fixture(scope="module")
def real() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2,100 Debian package synopses encoded by MiniLM (2,000 indexed, 100 held-out queries),
    float16 on disk (see ``tests/fixtures/README.md``); exact top-10 as ground truth."""
    with np.load(FIXTURE) as z:
        xb, xq = z["docs"].astype(np.float32), z["queries"].astype(np.float32)
    ids = np.arange(len(xb), dtype=np.int64)
    return xb, xq, brute_force(xb, ids, xq, 10)[1]


@pytest.mark.parametrize(("spec", "oversample"), list(REAL_FLOORS))
def test_recall_on_real_embeddings(real: tuple, spec: str, oversample: float) -> None:
    xb, xq, truth = real
    index = index_factory(xb.shape[1], spec)
    index.add(np.arange(len(xb), dtype=np.int64), xb)
    got = recall(index.search(xq, 10, oversample=oversample).ids, truth)
    assert got >= REAL_FLOORS[spec, oversample], (spec, oversample, got)
