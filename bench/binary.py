"""Binary codes + exact re-scoring (``index.binary``) vs our Flat and faiss used directly.

Two data sets, k=10, recall@10 against exact brute force (our ``FlatIndex``, ties at the 10th
score credited):

- **real**: the cached Debian MiniLM embeddings (``python -m bench.datasets`` builds them): all
  57,417 package descriptions plus all 57,417 package synopses except ``--real-queries``
  seeded held-out synopses, which are the queries (113,834 indexed rows at 1,000 queries);
- **synthetic**: ``--synthetic`` seeded clustered vectors of ``--dim`` (embedding-like: 64
  clusters in a 32-dim subspace plus isotropic noise, norms 0.5-1.5), for scale.

Contenders: ours (:data:`bench.binary_report.OURS`: every encoding and backend, each at every
``--oversample``; ``--only`` keeps a subset on the synthetic set), faiss ``IndexRaBitQ`` (1 and 2
bits, behind a random rotation) and ``IndexRaBitQFastScan`` (1 bit) each re-scored exactly by
``IndexRefine`` over an ``IndexFlatIP`` with ``k_factor = oversample``, and faiss
``IndexBinaryFlat`` over the sign bits of the centred, randomly rotated rows re-scored in numpy.
For each: recall per oversample, encode rate (train + add, vectors/s, with the 1-minute load
average before and after), bytes per vector. Our single-centre flat encodings are rebuilt
``--encode-repeats`` times on the synthetic set (the first build is the measured index) and the
median rate is the one reported. Speed: batch-1 latency (p50 over ``--latency-queries``
queries) and batch-``--batch`` QPS at ``--race-oversample``, every contender and our Flat
interleaved (order rotated each repeat, ``--cooldown`` idle before each timed call), medians
reported. Float16/int8 re-scoring stores: recall and score error on the real set. Writes
``bench/results/binary.json`` and the binary section of ``BENCHMARKS.md``.

    python -m bench.binary [--synthetic 1000000] [--real-queries 1000] [--only a,b] [--skip-real]
                           [--tiny]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.binary_contenders import (
    BUILD_REAL,
    FaissRefined,
    Ours,
    clustered,
    contenders,
    debian,
)
from bench.binary_report import ENCODE_REPEATED, KNOBBED, OURS, K, markdown
from bench.datasets import load_debian
from bench.machine import ReadProbe, SgemmProbe, median_rate, versions
from bench.report import BENCHMARKS, dirty, git_commit, publish
from index.binary import BinaryIndex
from index.flat import FlatIndex
from index.spec import index_factory

RESULTS = Path(__file__).parent / "results"
SECTION = "binary"

Search = Callable[[np.ndarray], np.ndarray]


def load1() -> float:
    """The 1-minute load average (the box is shared: encode rates depend on it)."""
    return float(os.getloadavg()[0])


# -- measurement ----------------------------------------------------------------------------------


def recall(found: np.ndarray, truth: np.ndarray, x: np.ndarray, q: np.ndarray) -> float:
    """Tie-aware recall@k: a found row counts when its exact score reaches the k-th true score
    (the Debian set has duplicate texts, whose equal vectors any index may order either way);
    ``-1`` pads never count."""
    kth = np.einsum("qd,qd->q", x[truth[:, -1]], q) - 1e-6
    ok = (found >= 0) & (np.einsum("qkd,qd->qk", x[np.maximum(found, 0)], q) >= kth[:, None])
    return float(np.minimum(ok.sum(axis=1), truth.shape[1]).sum() / truth.size)


def one_thread(search: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
    """``search(*args)`` on one OpenMP thread (this thread only). faiss parallelises over
    queries; for a single query the second thread only adds a barrier, and on this shared box
    a descheduled partner stalls it (``IndexBinaryFlat`` over 57k codes: 70-100 ms on 2
    threads, 0.2 ms on 1). Batch-1 faiss figures are therefore taken on one thread, as a
    tuned faiss user would run them; ours does the same inside ``index.itq``."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return search(*args)
    finally:
        faiss.omp_set_num_threads(before)


def race(
    fns: dict[str, Search], batches: list[np.ndarray], cooldown: float
) -> dict[str, list[float]]:
    """Seconds per call of every ``fns`` on each batch, interleaved (order rotated per batch)
    after one warm-up call each."""
    names = list(fns)
    for f in fns.values():
        f(batches[0])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r, batch in enumerate(batches):
        for i in range(len(names)):
            name = names[(i + r) % len(names)]
            time.sleep(cooldown)
            t = time.perf_counter()
            fns[name](batch)
            times[name].append(time.perf_counter() - t)
    return times


def run_set(
    label: str,
    make: Callable[[], tuple[np.ndarray, np.ndarray]],
    args: argparse.Namespace,
    race_names: list[str],
) -> dict[str, Any]:
    x, queries = make()  # the only reference to x: Flat's copy replaces it below
    n, d = x.shape
    print(f"{label}: {n:,} x {d}, {len(queries):,} queries", flush=True)
    flat = FlatIndex(d)
    flat.add(np.arange(n, dtype=np.int64), x)
    del x
    x = flat.vectors  # one copy shared by Flat, the numpy re-score and faiss's refine store
    t = time.perf_counter()
    truth = flat.search(queries, K).ids
    print(f"  ground truth {time.perf_counter() - t:.1f} s", flush=True)
    refine = faiss.IndexFlatIP(d)
    refine.add(x)
    built = contenders(args.seed, label)
    if label == "synthetic" and args.only:
        built = {name: c for name, c in built.items() if name in args.only}
    rows: dict[str, Any] = {}
    for name, c in built.items():
        gc.collect()
        load = [load1()]
        t = time.perf_counter()
        c.build(x)
        took = time.perf_counter() - t
        load.append(load1())
        if isinstance(c, FaissRefined):
            c.attach(refine)
        rates = [n / took]
        if isinstance(c, Ours):
            c.share_store(x)
            if label == "synthetic" and name in ENCODE_REPEATED:
                rates += encode_again(c.spec, x, args.encode_repeats - 1, load)
        rec = {str(o): recall(c.search(queries, K, o), truth, x, queries) for o in args.oversample}
        rows[name] = {
            "spec": c.spec,
            "kind": c.kind,
            "build_s": took,
            "encode_per_s": statistics.median(rates),
            "encode_runs_per_s": rates,
            "load_1min": load,
            "recall": rec,
            "bytes": c.sizes(),
        }
        print(
            f"  {name:>16}: encode {statistics.median(rates):9,.0f}/s (load "
            f"{min(load):.1f}-{max(load):.1f})  recall "
            + " ".join(f"{o}:{r:.3f}" for o, r in rec.items()),
            flush=True,
        )
    race_names = [name for name in race_names if name in built]
    speed = speed_race(flat, built, queries, race_names, args)
    out = {"data": label, "n": n, "d": d, "nq": len(queries), "contenders": rows, "speed": speed}
    if label == "real":
        out["stores"] = store_errors(x, queries, truth, args)
    del built, refine, flat
    gc.collect()
    return out


def encode_again(spec: str, x: np.ndarray, repeats: int, load: list[float]) -> list[float]:
    """``repeats`` more timed builds of ``spec`` over ``x`` (each dropped once timed); the
    load average after each is appended to ``load``."""
    rates = []
    for _ in range(repeats):
        gc.collect()
        again = Ours(spec)
        t = time.perf_counter()
        again.build(x)
        rates.append(len(x) / (time.perf_counter() - t))
        load.append(load1())
        del again
    return rates


def speed_race(
    flat: FlatIndex,
    built: dict[str, Any],
    queries: np.ndarray,
    names: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    o = args.race_oversample
    fns: dict[str, Search] = {"flat": lambda q: flat.search(q, K).ids}
    for name in names:
        fns[name] = lambda q, c=built[name]: c.search(q, K, o)
    ones_fns = dict(fns)
    for name in names:
        if built[name].kind == "faiss":  # see one_thread()
            ones_fns[name] = lambda q, c=built[name]: one_thread(c.search, q, K, o)
    nq = len(queries)
    ones = [queries[i % nq : i % nq + 1] for i in range(args.latency_queries)]
    b = args.batch
    batches = [queries[(r * b) % nq :][:b] for r in range(args.batch_repeats)]
    batches = [np.ascontiguousarray(q) if len(q) == b else queries[:b] for q in batches]
    t = time.perf_counter()
    one = race(ones_fns, ones, args.cooldown)
    many = race(fns, batches, args.cooldown)
    p50 = {name: float(np.median(v)) for name, v in one.items()}
    qps = {name: len(batches[0]) / float(np.median(v)) for name, v in many.items()}
    print(f"  speed race {time.perf_counter() - t:.0f} s at oversample {o}:", flush=True)
    for name in fns:
        print(
            f"  {name:>16}: batch-1 p50 {p50[name] * 1e3:7.2f} ms "
            f"({p50[name] / p50['flat']:.3f} of flat)  batch-{b} {qps[name]:8.0f} QPS",
            flush=True,
        )
    return {
        "oversample": o,
        "batch": len(batches[0]),
        "p50_s": p50,
        "qps": qps,
        "latency_vs_flat": {name: p50[name] / p50["flat"] for name in fns},
        "raw_batch1_s": one,
        "raw_batch_s": many,
    }


def store_errors(
    x: np.ndarray, queries: np.ndarray, truth: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Recall and re-scored score error of the float16 / int8 stores (1-bit RaBitQ, os 4)."""
    out: dict[str, Any] = {}
    top = np.einsum("qkd,qd->qk", x[truth], queries)
    out["top10_range_median"] = float(np.median(top[:, 0] - top[:, -1]))
    for dtype in ("float32", "float16", "int8"):
        index = index_factory(x.shape[1], f"Binary(bits=1,store_dtype={dtype})")
        index.add(np.arange(len(x), dtype=np.int64), x)
        assert isinstance(index, BinaryIndex)
        res = index.search(queries, K, oversample=4)
        exact = np.einsum("qkd,qd->qk", x[res.ids], queries)
        err = np.abs(res.scores - exact)
        out[dtype] = {
            "recall_os4": recall(res.ids, truth, x, queries),
            "abs_err_median": float(np.median(err)),
            "abs_err_max": float(err.max()),
            "store_bytes": index.bytes_per_vector()["store"],
        }
        print(f"  store {dtype}: {out[dtype]}", flush=True)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    sets: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = []
    if args.tiny:
        sets.append(("real", lambda: clustered(4000, 50, args.dim, args.seed + 1)))
    elif args.skip_real:
        pass
    elif load_debian() is None:
        print(f"({BUILD_REAL}; real set skipped)")
    else:
        sets.append(("real", lambda: debian(args.real_queries, args.seed)))
    if args.synthetic:
        n, nq = args.synthetic, args.synth_queries
        sets.append(("synthetic", lambda: clustered(n, nq, args.dim, args.seed)))
    read_mb, gemm = (32, 512) if args.tiny else (512, 4096)
    read_bw, _ = median_rate(ReadProbe(read_mb, 1), 3)
    sgemm, _ = median_rate(SgemmProbe(gemm, 2), 3)
    results = []
    race_names = [*OURS, *KNOBBED, "faiss-rabitq-1", "faiss-fastscan-1", "faiss-binary"]
    load_start = load1()
    for label, make in sets:
        results.append(run_set(label, make, args, race_names))
        gc.collect()
    return {
        "benchmark": "binary",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "dirty": dirty(),
        "command": " ".join(["python -m bench.binary", *sys.argv[1:]]),
        "params": {k: v for k, v in vars(args).items() if k not in ("out", "markdown")},
        "machine": {
            "read_bw_1t": read_bw,
            "sgemm_2t": sgemm,
            "read_mb": read_mb,
            "load_1min": [load_start, load1()],
            "cpus": os.cpu_count(),
        },
        "versions": versions(),
        "sets": results,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.binary", description=__doc__.split("\n")[0])
    p.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic rows (0: none)")
    p.add_argument("--synth-queries", type=int, default=200)
    p.add_argument("--real-queries", type=int, default=1000)
    p.add_argument("--dim", type=int, default=384, help="synthetic dimension")
    p.add_argument("--oversample", default="1,2,4,8,16")
    p.add_argument("--race-oversample", type=float, default=4.0)
    p.add_argument("--latency-queries", type=int, default=60)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batch-repeats", type=int, default=5)
    p.add_argument("--cooldown", type=float, default=0.1, help="seconds idle before timed calls")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encode-repeats", type=int, default=3, help="builds per flat encoding (1M)")
    p.add_argument("--only", default="", help="synthetic contenders to run (default: all)")
    p.add_argument("--skip-real", action="store_true", help="the synthetic set only")
    p.add_argument("--tiny", action="store_true", help="4k + 20k x 32, seconds: a smoke test")
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/binary.json)")
    p.add_argument("--markdown", type=Path, help="default BENCHMARKS.md; none with --tiny")
    args = p.parse_args(argv)
    if args.tiny:
        args.synthetic, args.synth_queries, args.dim = 20_000, 50, 32
        args.latency_queries, args.batch, args.batch_repeats, args.cooldown = 4, 16, 2, 0.0
        args.encode_repeats = 2
        args.out = args.out or Path(tempfile.gettempdir()) / "innerspace-bench-binary-tiny.json"
    else:
        args.out = args.out or RESULTS / "binary.json"
        args.markdown = args.markdown or BENCHMARKS
    args.oversample = [float(o) for o in str(args.oversample).split(",")]
    args.only = [name for name in str(args.only).split(",") if name]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    result = run(args)
    publish(SECTION, result, markdown(result), args.out, args.markdown)


if __name__ == "__main__":
    main()
