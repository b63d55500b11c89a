"""Data and timed workloads of ``bench.peers``: the data sets, exact ground truth, recall, and
the in-process workloads (ingest, single-query latency, batch QPS, the knob sweep), each running
the systems it is given interleaved, order rotated each round."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.peers_base import F32, I64, System

K = 10


# -- data ---------------------------------------------------------------------------------------


#: Rows of the ``synth1m`` data set.
SYNTH_1M = 1_000_000


def dataset(name: str, n: int, dim: int, nq: int, seed: int = 42) -> tuple[F32, F32]:
    """``(vectors (n, dim), queries (nq, dim))`` float32 of ``debian`` (real; ``n``/``dim`` are
    caps), ``synth`` (seeded Gaussian) or ``synth1m`` (the same at 1,000,000 rows, whatever
    ``n``)."""
    rng = np.random.default_rng(seed)
    if name == "synth1m":
        name, n = "synth", SYNTH_1M
    if name == "synth":
        x = rng.standard_normal((n, dim), dtype=np.float32)
        return x, rng.standard_normal((nq, dim), dtype=np.float32)
    if name == "debian":
        from bench.datasets import load_debian

        loaded = load_debian()
        if loaded is None:
            raise FileNotFoundError("no cached Debian embeddings: run python -m bench.datasets")
        docs, queries = loaded
        docs = np.ascontiguousarray(docs[:n, :dim])
        pick = rng.choice(len(queries), size=nq, replace=False)
        return docs, np.ascontiguousarray(queries[pick, :dim])
    raise ValueError(f"unknown dataset {name!r}; known: debian, synth, synth1m")


def ground_truth(x: F32, q: F32, k: int) -> I64:
    """Exact top-``k`` ids ``(nq, k)`` by inner product."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return np.asarray(index.search(q, k)[1], dtype=np.int64)


def recall(found: I64, truth: I64) -> float:
    """Mean fraction of the true top-k found, per query.

    >>> recall(np.array([[1, 2, -1]]), np.array([[2, 3, 1]]))
    0.6666666666666666
    """
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / truth.shape[1])


def rss_bytes() -> int:
    """This process's resident set size (Linux ``/proc``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- in-process workloads -----------------------------------------------------------------------


def rotated(names: list[str], r: int) -> list[str]:
    """``names`` rotated by ``r``: A B C, B C A, ... so no system always runs first."""
    r %= len(names)
    return names[r:] + names[:r]


def feed(targets: dict[str, Any], x: F32, batch: int) -> dict[str, float]:
    """Hand every batch of ``x`` (ids = row numbers) to every target's ``add``, the order
    rotated batch by batch so none always goes first; seconds spent per target."""
    names = list(targets)
    spent = dict.fromkeys(names, 0.0)
    for b, start in enumerate(range(0, len(x), batch)):
        part = x[start : start + batch]
        ids = np.arange(start, start + len(part), dtype=np.int64)
        for name in rotated(names, b):
            t = time.perf_counter()
            targets[name].add(ids, part)
            spent[name] += time.perf_counter() - t
    return spent


def ingest(systems: dict[str, System], x: F32, batch: int) -> dict[str, dict[str, float]]:
    """Hand every batch to every system (rotated order); then build. Seconds per system."""
    names = list(systems)
    spent = feed(systems, x, batch)
    built = {}
    for name in names:
        t = time.perf_counter()
        systems[name].build()
        built[name] = time.perf_counter() - t
    return {
        name: {
            "ingest_s": spent[name],
            "ingest_per_s": len(x) / spent[name],
            "build_s": built[name],
            "searchable_s": spent[name] + built[name],
        }
        for name in names
    }


def latency(systems: dict[str, System], q: F32, k: int, warmup: int = 5) -> dict[str, list[float]]:
    """Milliseconds per single query, the systems interleaved query by query."""
    names = list(systems)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(-warmup, len(q)):
        v = q[i % len(q)][None]
        for name in rotated(names, i):
            t = time.perf_counter()
            systems[name].search(v, k)
            if i >= 0:
                out[name].append((time.perf_counter() - t) * 1000)
    return out


def batch_qps(
    systems: dict[str, System], q: F32, k: int, qbatch: int, repeats: int
) -> tuple[dict[str, float], dict[str, I64]]:
    """Median queries / second over ``repeats`` passes of ``q`` in batches of ``qbatch``
    (systems interleaved pass by pass), and the ids each system returned."""
    names = list(systems)
    rates: dict[str, list[float]] = {n: [] for n in names}
    found: dict[str, I64] = {}
    for r in range(repeats + 1):  # pass 0 is a warm-up
        for name in rotated(names, r):
            t = time.perf_counter()
            parts = [systems[name].search(q[j : j + qbatch], k) for j in range(0, len(q), qbatch)]
            dt_ = time.perf_counter() - t
            if r:
                rates[name].append(len(q) / dt_)
            found[name] = np.concatenate(parts)
    return {n: float(np.median(v)) for n, v in rates.items()}, found


def sweep(
    systems: dict[str, System], q: F32, truth: I64, k: int, max_steps: int = 0
) -> dict[str, list[dict[str, float]]]:
    """Recall@k and single-query latency at each knob value of every approximate system; the
    systems interleaved at each step (step i uses each system's i-th knob value); at most
    ``max_steps`` steps when it is set."""
    approx = {n: s for n, s in systems.items() if s.knobs}
    curves: dict[str, list[dict[str, float]]] = {n: [] for n in approx}
    steps = max((len(s.knobs) for s in approx.values()), default=0)
    steps = min(steps, max_steps) if max_steps else steps
    for i in range(steps):
        step = {n: s for n, s in approx.items() if i < len(s.knobs)}
        for s in step.values():
            s.knob(s.knobs[i])
        lat = latency(step, q, k, warmup=2)
        for n, s in step.items():
            found = s.search(q, k)
            p50 = pct(lat[n], 50)
            curves[n].append(
                {
                    "knob": s.knobs[i],
                    "recall": recall(found, truth),
                    "p50_ms": p50,
                    "qps_1": 1000 / p50,
                }
            )
    for s in approx.values():
        if s.default_knob is not None:
            s.knob(s.default_knob)
    return curves
