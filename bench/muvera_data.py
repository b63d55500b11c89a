"""MUVERA benchmark data and measures: token sets, exact ground truth, interleaved timing.

Token sets are seeded clustered synthetics or cached SciFact tokens, both as :class:`TokenSets`
(the index's own layout: one token matrix plus offsets per side).
Real token vectors are ``minilm-tokens`` states of the SciFact corpus and test queries; encoding
them takes minutes on 2 cores, so they are cached once as float16 under ``~/.cache/innerspace``
and never encoded by a test.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import ROOT
from index.maxsim import MaxSimReranker, TokenStore, carve, maxsim_scores
from index.muvera import MuveraIndex, MuveraParams

CACHE = Path.home() / ".cache" / "innerspace"
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
ENCODER = "minilm-tokens(float16=true)"
K = 10


@dataclass(frozen=True)
class TokenSets:
    """Documents and queries as ``(N, d) float32`` token matrices + ``(n + 1,) int64`` offsets."""

    doc_tokens: np.ndarray
    doc_offsets: np.ndarray
    query_tokens: np.ndarray
    query_offsets: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.doc_tokens.shape[1])

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1

    @property
    def n_queries(self) -> int:
        return len(self.query_offsets) - 1

    def docs(self, a: int = 0, b: int | None = None) -> list[np.ndarray]:
        o = self.doc_offsets
        b = self.n_docs if b is None else b
        return [self.doc_tokens[o[i] : o[i + 1]] for i in range(a, b)]

    def queries(self) -> list[np.ndarray]:
        o = self.query_offsets
        return [self.query_tokens[o[i] : o[i + 1]] for i in range(self.n_queries)]

    def head(self, n: int) -> TokenSets:
        """The first ``n`` documents, every query."""
        o = self.doc_offsets[: n + 1]
        return TokenSets(self.doc_tokens[: o[-1]], o, self.query_tokens, self.query_offsets)


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def clustered(
    seed: int,
    n_docs: int,
    n_queries: int,
    dim: int = 128,
    doc_tokens: tuple[int, int] = (16, 48),
    query_tokens: tuple[int, int] = (8, 32),
    topics: int = 200,
    words: int = 100,
) -> TokenSets:
    """Seeded clustered token sets: ``topics`` random directions, ``words`` words around each
    (spread 0.8), a set's tokens 75% from its main topic and 25% from a second one, noise 0.15,
    unit rows. Documents and queries share the vocabulary, so MaxSim top-10s are meaningful."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((topics, 1, dim), dtype=np.float32)
    vocab = _unit(centers + 0.8 * rng.standard_normal((topics, words, dim), dtype=np.float32))

    def draw(n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        sizes = rng.integers(lo, hi + 1, n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        owner = np.repeat(np.arange(n), sizes)
        main = rng.integers(0, topics, n)
        other = (main + rng.integers(1, topics, n)) % topics
        topic = np.where(rng.random(len(owner)) < 0.75, main[owner], other[owner])
        word = rng.integers(0, words, len(owner))
        tokens = np.empty((len(owner), dim), dtype=np.float32)
        for a in range(0, len(owner), 1 << 20):  # bounded scratch at 100k documents
            b = min(a + (1 << 20), len(owner))
            noise = rng.standard_normal((b - a, dim), dtype=np.float32)
            tokens[a:b] = _unit(vocab[topic[a:b], word[a:b]] + 0.15 * noise)
        return tokens, offsets

    dt_, do = draw(n_docs, *doc_tokens)
    qt, qo = draw(n_queries, *query_tokens)
    return TokenSets(dt_, do, qt, qo)


@dataclass(frozen=True)
class Labeled:
    """Real token sets with the BEIR ids and test qrels that score nDCG@10."""

    data: TokenSets
    doc_ids: list[str]
    query_ids: list[str]
    qrels: dict[str, dict[str, int]]


def _lay(sets: Any) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sets], out=offsets[1:])
    return np.concatenate(sets).astype(np.float16), offsets


def scifact_tokens(n_docs: int, cache: Path = CACHE) -> Labeled | None:
    """SciFact documents (the first ``n_docs`` of a seeded subset) and test queries as
    ``minilm-tokens`` vectors, from the float16 cache (encoded and cached on first use).

    Returns None (and says why) when the encoders, the data or the model are unavailable.
    """
    try:
        from encoders.evaluation import load_beir
        from encoders.registry import encoder_factory
    except ImportError as exc:
        print(f"(encoders unavailable: real tokens skipped: {exc})")
        return None
    if not SCIFACT.exists():
        print(f"(no SciFact at {SCIFACT}: real tokens skipped)")
        return None
    beir = load_beir(SCIFACT)
    if n_docs < len(beir.doc_ids):
        beir = beir.subset(n_docs, len(beir.query_ids), seed=0)
    path = cache / f"scifact-minilm-tokens-{len(beir.doc_ids)}.npz"
    if path.exists():
        with np.load(path) as z:
            d_t, d_o, q_t, q_o = (
                z[k] for k in ("doc_tokens", "doc_offsets", "query_tokens", "query_offsets")
            )
    else:
        try:
            encoder = encoder_factory(ENCODER)
        except Exception as exc:  # a missing model or runtime just skips the section
            print(f"(encoder {ENCODER} unavailable: real tokens skipped: {exc})")
            return None
        t = time.perf_counter()
        (d_t, d_o) = _lay(encoder.encode_documents(beir.doc_texts).vectors)
        (q_t, q_o) = _lay(encoder.encode_queries(beir.query_texts).vectors)
        print(f"  encoded {len(d_o) - 1} docs in {time.perf_counter() - t:.0f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, doc_tokens=d_t, doc_offsets=d_o, query_tokens=q_t, query_offsets=q_o)
        tmp.replace(path)
    data = TokenSets(d_t.astype(np.float32), d_o, q_t.astype(np.float32), q_o)
    return Labeled(data, list(beir.doc_ids), list(beir.query_ids), beir.qrels)


# -- measures ----------------------------------------------------------------------------------


def interleaved(
    jobs: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds of each job, run in rotating order after one warm-up each, and each
    job's last return value."""
    last = {name: job() for name, job in jobs.items()}
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    names = list(jobs)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            t = time.perf_counter()
            last[name] = jobs[name]()
            samples[name].append(time.perf_counter() - t)
    return {name: float(np.median(s)) for name, s in samples.items()}, last


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's exact top-k (``truth (nq, k)``) among ``found (nq, m)``."""
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def build(data: TokenSets, params: MuveraParams, inner: str) -> MuveraIndex:
    """Index every document under ids ``0..n-1``, 10k per add as the service's build job does."""
    index = MuveraIndex(data.dim, params, inner)
    ids = np.arange(data.n_docs, dtype=np.int64)
    for a in range(0, data.n_docs, 10_000):
        b = min(a + 10_000, data.n_docs)
        index.add(ids[a:b], data.docs(a, b))
    return index


def bytes_per_doc(index: MuveraIndex) -> dict[str, float]:
    """Per document: FDE payload (float32), token rows, the inner index and everything held."""
    n = len(index.store.ids)
    return {
        "fde": index.fde_dim * 4.0,
        "tokens": index.store.token_bytes() / n,
        "fde_index_held": index.inner.nbytes() / n,
        "held": index.nbytes() / n,
    }


def exact_baseline(data: TokenSets, repeats: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Brute-force MaxSim top-10 of every query (the ground truth), the batch timed once, and
    the median time of one query alone."""
    store = TokenStore(data.dim)
    store.add(np.arange(data.n_docs, dtype=np.int64), data.doc_tokens, data.doc_offsets)
    exact = MaxSimReranker(store)
    qt, qo = data.query_tokens, data.query_offsets
    t = time.perf_counter()
    truth = exact.search(qt, qo, K).ids
    batch_s = time.perf_counter() - t
    one = np.array([0, qo[1]])
    times, _ = interleaved({"single": lambda: exact.search(qt[: qo[1]], one, K)}, repeats)
    flops = 2.0 * len(data.doc_tokens) * data.dim * len(qt)
    info = {
        "qps_batch": data.n_queries / batch_s,
        "ms_single": times["single"] * 1e3,
        "gflops_batch": flops / batch_s / 1e9,
    }
    return truth, info


def prefix_rerank(
    index: MuveraIndex,
    queries: list[np.ndarray],
    fde_ids: np.ndarray,
    cands: tuple[int, ...],
    tau: float | None = None,
) -> dict[int, np.ndarray]:
    """``{c: (nq, K) ids}``: what ``index.search(queries, K, candidates=c, tau=tau)`` returns
    for every ``c``, from ONE exact scoring of the FDE top-``max(cands)`` (``fde_ids``; a
    prefix of the FDE top list is the FDE top-c). Needs ids ``0..n-1`` (rows = ids)."""
    out = {c: np.full((len(queries), K), -1, dtype=np.int64) for c in cands}
    store = index.store
    for i, q in enumerate(queries):
        cand = fde_ids[i, : max(cands)]
        cand = cand[cand >= 0]
        assert (store.ids[cand] == cand).all()
        scores = maxsim_scores(
            q if tau is None else carve(q, tau), store.tokens, store.offsets, cand
        )
        for c in cands:
            top = np.lexsort((cand[:c], -scores[:c]))[:K]
            out[c][i, : len(top)] = cand[:c][top]
    return out


def fde_only(index: MuveraIndex, queries: list[np.ndarray]) -> Any:
    """The FDE stage alone: encode the queries, top-10 by FDE product."""
    return index.inner.search(index.encode_queries(queries), K)


def one_at_a_time(search: Callable[..., Any], queries: list[np.ndarray], **kw: Any) -> list[Any]:
    return [search([q], K, **kw) for q in queries]


def fde_candidates(index: MuveraIndex, data: TokenSets, depth: int) -> np.ndarray:
    """``(nq, depth)`` ids of the best documents by exact FDE product (no graph): FDEs encoded
    10k documents at a time, a running top-``depth``."""
    fq = index.encode_queries(data.queries())
    best_s = np.full((data.n_queries, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((data.n_queries, 0), dtype=np.int64)
    for a in range(0, data.n_docs, 10_000):
        b = min(a + 10_000, data.n_docs)
        s = np.concatenate([best_s, fq @ index.encode_documents(data.docs(a, b)).T], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(a, b), (len(fq), b - a))], axis=1)
        keep = np.argpartition(-s, min(depth, s.shape[1]) - 1, axis=1)[:, :depth]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)
