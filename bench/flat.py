"""Flat (exact) search: our ``FlatIndex`` vs faiss ``IndexFlatIP`` vs plain numpy, side by side.

For each data set (seeded Gaussian at each ``--sizes``; real MiniLM embeddings when a cached file
exists), batch 1 and 64, k=10: after a warm-up the three contenders run interleaved (order
rotated each repeat) together with a probe of the machine's limit, so every figure and the limit
it is divided by see the same machine state; medians are reported.

- batch 1 is a scan: bytes read (n * d * 4) / time, as a fraction of the read bandwidth (the
  higher of the 1- and 2-thread ``numpy.sum`` probes);
- batch 64 is a matrix product: 2 * n * d * nq / time, as a fraction of the 2-thread 4096^2
  sgemm rate.

Our ids must equal faiss's (up to float32 near-ties, which are reported); the run fails otherwise.
Writes ``bench/results/flat.json`` and the Flat section of ``BENCHMARKS.md``.

    python -m bench.flat [--sizes 100000,1000000] [--dim 384] [--repeats 9] [--tiny]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.machine import ReadProbe, SgemmProbe, versions
from bench.report import BENCHMARKS, dirty, git_commit, publish
from index.flat import FlatIndex

RESULTS = Path(__file__).parent / "results"
REAL = Path.home() / ".cache" / "innerspace" / "debian-minilm.npy"
SECTION = "flat"
#: Goals from issue 2.
GOAL_BW, GOAL_GEMM, GOAL_SPEEDUP = 0.8, 0.7, 1.5

Search = Callable[[np.ndarray], np.ndarray]


def numpy_search(x: np.ndarray, k: int) -> Search:
    """Plain numpy: one BLAS product, ``argpartition``, then sort the k survivors."""

    def search(q: np.ndarray) -> np.ndarray:
        s = (x @ q[0])[None] if len(q) == 1 else q @ x.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        o = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        return np.take_along_axis(part, o, 1)

    return search


def same_ids(
    ours: np.ndarray, theirs: np.ndarray, x: np.ndarray, q: np.ndarray, ids: np.ndarray
) -> tuple[int, int]:
    """(exactly equal rows, rows differing only by float32 near-ties) of two ``(nq, k)`` id sets.

    ``ids`` are row numbers here, so a hit's exact score is ``x[id] @ q`` in float64.
    """
    equal = near = 0
    for a, b, qv in zip(ours, theirs, q.astype(np.float64), strict=True):
        if np.array_equal(a, b):
            equal += 1
            continue
        sa = np.sort(x[ids[a]].astype(np.float64) @ qv)[::-1]
        sb = np.sort(x[ids[b]].astype(np.float64) @ qv)[::-1]
        if np.allclose(sa, sb, rtol=1e-5, atol=1e-5):
            near += 1
    return equal, near


def run_case(
    label: str,
    x: np.ndarray,
    queries: np.ndarray,
    nq: int,
    k: int,
    repeats: int,
    ours: FlatIndex,
    theirs: Any,
    probes: dict[str, Callable[[], float]],
    cooldown: float,
) -> dict[str, Any]:
    """Interleave ours / faiss / numpy / the limit probes for one (data, batch) case.

    Each timed call waits ``cooldown`` seconds first: BLAS and OpenMP pools keep spinning for a
    while after a call (OpenBLAS ~0.1 s), which would take a core from whatever runs next.
    """
    n, d = x.shape
    ids = np.arange(n, dtype=np.int64)
    contenders: dict[str, Search] = {
        "ours": lambda q: ours.search(q, k).ids,
        "faiss": lambda q: theirs.search(q, k)[1],
        "numpy": numpy_search(x, k),
    }
    batches = [queries[(r * nq) % len(queries) :][:nq] for r in range(repeats)]
    for f in contenders.values():  # warm-up: page in, thread pools up
        f(batches[0])
    for p in probes.values():
        p()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    rates: dict[str, list[float]] = {name: [] for name in probes}
    equal = near = total = 0
    jobs: list[tuple[str, Callable[[int], None]]] = []
    got: dict[str, np.ndarray] = {}

    def timed(name: str, f: Search) -> Callable[[int], None]:
        def job(r: int) -> None:
            time.sleep(cooldown)
            t = time.perf_counter()
            got[name] = f(batches[r])
            times[name].append(time.perf_counter() - t)

        return job

    def probed(name: str, p: Callable[[], float]) -> Callable[[int], None]:
        def job(r: int) -> None:
            time.sleep(cooldown)
            rates[name].append(p())

        return job

    jobs = [(name, timed(name, f)) for name, f in contenders.items()]
    jobs += [(name, probed(name, p)) for name, p in probes.items()]
    for r in range(repeats):
        for i in range(len(jobs)):
            jobs[(i + r) % len(jobs)][1](r)
        e, nt = same_ids(got["ours"], got["faiss"], x, batches[r], ids)
        equal, near, total = equal + e, near + nt, total + len(batches[r])
    med = {name: float(np.median(v)) for name, v in times.items()}
    lim = {name: float(np.median(v)) for name, v in rates.items()}
    if nq == 1:
        limit_name, limit = max(lim.items(), key=lambda kv: kv[1])
        work = float(n * d * 4)  # bytes scanned
    else:
        limit_name, limit = "sgemm_2t", lim["sgemm_2t"]
        work = 2.0 * n * d * nq  # flops
    case = {
        "data": label,
        "n": n,
        "d": d,
        "nq": nq,
        "k": k,
        "repeats": repeats,
        "median_s": med,
        "raw_s": times,
        "limits": lim,
        "limits_raw": rates,
        "limit": limit_name,
        "fraction": {name: work / t / limit for name, t in med.items()},
        "speedup_vs_faiss": {name: med["faiss"] / t for name, t in med.items()},
        "ids_equal_faiss": equal,
        "ids_near_tie_faiss": near,
        "queries_checked": total,
    }
    if equal + near != total:
        raise SystemExit(f"{label} nq={nq}: ours and faiss disagree on {total - equal - near} rows")
    return case


def gaussian(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d), dtype=np.float32), rng.standard_normal(
        (64, d), dtype=np.float32
    )


def real(path: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached real embeddings; 64 rows picked at random serve as queries (they stay indexed)."""
    x = np.ascontiguousarray(np.load(path), dtype=np.float32)
    rng = np.random.default_rng(seed)
    return x, x[rng.choice(len(x), 64, replace=False)].copy()


def run(args: argparse.Namespace) -> dict[str, Any]:
    sets: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = [
        (f"gaussian-{n}", partial(gaussian, n, args.dim, args.seed)) for n in args.sizes
    ]
    if not args.tiny and REAL.exists():
        sets.append(("debian-minilm", partial(real, REAL, args.seed)))
    elif not args.tiny:
        print(f"(no real embeddings at {REAL}: skipped)")
    read_mb, gemm_size = (64, 1024) if args.tiny else (512, 4096)
    read_1t = ReadProbe(read_mb, 1)
    bw_probes: dict[str, Callable[[], float]] = {
        "read_bw_1t": read_1t,
        "read_bw_2t": ReadProbe(threads=2, data=read_1t.data),
    }
    gemm_probes: dict[str, Callable[[], float]] = {"sgemm_2t": SgemmProbe(gemm_size, 2)}
    cases = []
    for label, make in sets:
        x, queries = make()
        n, d = x.shape
        ours = FlatIndex(d)
        ours.add(np.arange(n, dtype=np.int64), x)
        del x
        x = ours.vectors  # one copy for ours and numpy, one inside faiss
        theirs = faiss.IndexFlatIP(d)
        theirs.add(x)
        for nq in args.batches:
            t = time.perf_counter()
            probes = bw_probes if nq == 1 else gemm_probes
            case = run_case(
                label, x, queries, nq, args.k, args.repeats, ours, theirs, probes, args.cooldown
            )
            cases.append(case)
            print(summary_line(case), f"[{time.perf_counter() - t:.0f} s]", flush=True)
        del ours, theirs, x
        gc.collect()
    return {
        "benchmark": "flat",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "dirty": dirty(),
        "command": " ".join(["python -m bench.flat", *sys.argv[1:]]),
        "params": {
            "sizes": args.sizes,
            "dim": args.dim,
            "batches": args.batches,
            "k": args.k,
            "repeats": args.repeats,
            "seed": args.seed,
            "cooldown_s": args.cooldown,
            "read_probe_mb": read_mb,
            "sgemm_probe_size": gemm_size,
        },
        "versions": versions(),
        "cases": cases,
    }


def limit_text(case: dict[str, Any]) -> str:
    value = case["limits"][case["limit"]]
    if case["nq"] == 1:
        threads = case["limit"].rsplit("_", 1)[1].replace("t", "-thread")
        return f"{value / 1e9:.1f} GB/s read ({threads})"
    return f"{value / 1e9:.0f} GFLOP/s sgemm"


def summary_line(case: dict[str, Any]) -> str:
    med, frac = case["median_s"], case["fraction"]
    return (
        f"{case['data']:>18} nq={case['nq']:<3} "
        + "  ".join(f"{k} {med[k] * 1e3:8.1f} ms ({frac[k]:.2f})" for k in med)
        + f"  ours/faiss {case['speedup_vs_faiss']['ours']:.2f}x  limit {limit_text(case)}"
    )


def markdown(result: dict[str, Any]) -> str:
    v = result["versions"]
    blas = ", ".join(
        f"{lib['internal_api']} {lib['version']} ({lib['architecture'] or lib['prefix']})"
        for lib in v["threadpools"]
        if lib["user_api"] == "blas"
    )
    commit = result["commit"][:10] + (" + uncommitted changes" if result["dirty"] else "")
    lines = [
        "## Flat",
        "",
        f"`{result['command']}` on {result['date'][:10]} at {commit}: "
        f"{v['cpu']} x {v['cpus']} cores, numpy {v['numpy']}, faiss-cpu {v['faiss']}, {blas}. "
        f"k={result['params']['k']}, medians of {result['params']['repeats']} interleaved repeats "
        f"after a warm-up, {result['params']['cooldown_s']} s idle before each timed call (BLAS "
        "and OpenMP threads spin for a while after a call and would slow whatever runs next). "
        "The fraction columns divide each figure by the machine limit measured "
        "in the same interleaved loop: batch 1 = bytes scanned / time / read bandwidth (higher of "
        "1- and 2-thread `numpy.sum` over 512 MB), batch 64 = 2·n·d·nq / time / sgemm rate "
        "(4096², 2 threads). Goals (issue 2): batch 1 ≥ "
        f"{GOAL_BW} of bandwidth, batch 64 ≥ {GOAL_GEMM} of sgemm, ≥ {GOAL_SPEEDUP}× faiss at "
        "batch 1 on 1M × 384.",
        "",
        "| data | n × d | batch | ours ms | faiss ms | numpy ms | ours vs faiss "
        "| ours frac | faiss frac | numpy frac | limit | ids = faiss |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in result["cases"]:
        med, frac = c["median_s"], c["fraction"]
        ids = f"{c['ids_equal_faiss']}/{c['queries_checked']}"
        if c["ids_near_tie_faiss"]:
            ids += f" (+{c['ids_near_tie_faiss']} near-ties)"
        lines.append(
            f"| {c['data']} | {c['n']:,} × {c['d']} | {c['nq']} "
            + " ".join(f"| {med[k] * 1e3:.1f}" for k in ("ours", "faiss", "numpy"))
            + f" | {c['speedup_vs_faiss']['ours']:.2f}× "
            + " ".join(f"| {frac[k]:.2f}" for k in ("ours", "faiss", "numpy"))
            + f" | {limit_text(c)} | {ids} |"
        )
    lines += [
        "",
        "Raw samples, limits and versions: `bench/results/flat.json`. The box is shared: absolute "
        "times drift between runs, the ratios and fractions measured side by side hold better.",
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.flat", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100000,1000000", help="database sizes, comma-separated")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--batches", default="1,64", help="query batch sizes, comma-separated")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cooldown", type=float, default=0.2, help="seconds idle before each timed call"
    )
    p.add_argument("--tiny", action="store_true", help="20k x 64, 2 repeats: a smoke test")
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/flat.json)")
    p.add_argument(
        "--markdown",
        type=Path,
        help="file whose Flat section to regenerate (default BENCHMARKS.md; none with --tiny)",
    )
    args = p.parse_args(argv)
    if args.tiny:
        args.sizes, args.dim, args.repeats, args.cooldown = "20000", 64, 2, 0.0
        args.out = args.out or Path(tempfile.gettempdir()) / "innerspace-bench-flat-tiny.json"
    else:
        args.out = args.out or RESULTS / "flat.json"
        args.markdown = args.markdown or BENCHMARKS
    args.sizes = [int(s) for s in str(args.sizes).split(",")]
    args.batches = [int(s) for s in str(args.batches).split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    result = run(args)
    publish(SECTION, result, markdown(result), args.out, args.markdown)


if __name__ == "__main__":
    main()
