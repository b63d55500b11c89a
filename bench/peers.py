"""Innerspace against the systems users would pick instead, side by side, in one run.

Data: the real Debian MiniLM embeddings (57,417 x 384, synopsis queries; ``bench.datasets``) and
seeded Gaussian vectors (100,000 x 384, seed 42). Ground truth is exact (faiss ``IndexFlatIP``);
every approximate figure carries its recall@10.

In-process (``bench.peers_systems``: our index layer, faiss, hnswlib, chroma embedded, qdrant
local, lancedb), the systems run in groups (``GROUPS``: each peer family with our counterpart),
each group in its own process so one system's thread pools cannot slow another's; within a group
every workload runs the systems interleaved, order rotated each round:

- **ingest**: batches of ``--batch`` vectors, each batch handed to every system in turn (for
  the embedded databases this is client to durable; the libraries only hold it in memory);
- **build**: whatever is built after the last add (lancedb's IVF_PQ), timed per system;
- **latency**: single queries, p50 / p99 over ``--queries``; **QPS** at batch ``--qbatch``;
- **recall / speed curve**: the search-time knob (HNSW ef, IVF nprobes) swept;
- **memory**: each system ingests the first ``MEMORY_N`` vectors again, alone in a child
  process; RSS growth per vector after its first batch, and the bytes it leaves on disk.

Over HTTP (``bench.peers_http``) our server and chroma's (``chroma run``) take the same data and
the same client load (1 / 8 / 32 concurrent clients). Writes ``bench/results/peers.json``,
``bench/results/peers.png`` and the ``peers`` section of ``BENCHMARKS.md``.

    python -m bench.peers [--datasets debian,synth] [--systems ...] [--no-http] [--tiny]
    python -m bench.peers --render     # redraw the report from bench/results/peers.json

Peers install with ``pip install '.[bench]'``; a missing one is skipped and named in the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers_systems import (
    EF_DEFAULT,
    F32,
    GROUPS,
    I64,
    REGISTRY,
    System,
    available,
    make,
)
from bench.report import ROOT, git_commit, update_section, write_json

RESULTS = Path(__file__).parent / "results"
SECTION = "peers"
K = 10


# -- data ---------------------------------------------------------------------------------------


def dataset(name: str, n: int, dim: int, nq: int, seed: int = 42) -> tuple[F32, F32]:
    """``(vectors (n, dim), queries (nq, dim))`` float32 of ``debian`` (real; ``n``/``dim`` are
    caps) or ``synth`` (seeded Gaussian)."""
    rng = np.random.default_rng(seed)
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
    raise ValueError(f"unknown dataset {name!r}; known: debian, synth")


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


def ingest(systems: dict[str, System], x: F32, batch: int) -> dict[str, dict[str, float]]:
    """Hand every batch to every system (rotated order); then build. Seconds per system."""
    names = list(systems)
    spent = dict.fromkeys(names, 0.0)
    for b, start in enumerate(range(0, len(x), batch)):
        part = x[start : start + batch]
        ids = np.arange(start, start + len(part), dtype=np.int64)
        for name in rotated(names, b):
            t = time.perf_counter()
            systems[name].add(ids, part)
            spent[name] += time.perf_counter() - t
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
        s.knob(EF_DEFAULT if 64 in s.knobs else s.knobs[min(1, len(s.knobs) - 1)])
    return curves


#: The memory children ingest at most this many vectors: bytes per vector settle well before,
#: and a full HNSW build per system again would double the run.
MEMORY_N = 10_000


def memory_child(name: str, data: str, n: int, dim: int, batch: int) -> dict[str, int]:
    """Run in a child process: ``name`` ingests the first ``MEMORY_N`` vectors alone; RSS is
    read after the first batch (the system's fixed start-up cost is then paid) and at the end,
    so the growth is per vector."""
    x, _ = dataset(data, min(n, MEMORY_N), dim, 1)
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="innerspace-peers-") as work:
        s = make(name, x.shape[1], len(x), Path(work))
        before = 0
        for start in range(0, len(x), batch):
            part = x[start : start + batch]
            s.add(np.arange(start, start + len(part), dtype=np.int64), part)
            if start == 0:
                gc.collect()
                before = rss_bytes()
        s.build()
        gc.collect()
        after = rss_bytes()
        disk = s.disk_bytes()
        s.close()
    grown = len(x) - min(batch, len(x))
    return {"rss_before": before, "rss_after": after, "disk_bytes": disk, "n": grown}


def memory(names: list[str], data: str, n: int, dim: int, batch: int) -> dict[str, Any]:
    """Per system, in a fresh child process each: RSS delta and bytes on disk."""
    out: dict[str, Any] = {}
    for name in names:
        args = ["--memory-child", name, "--datasets", data, "--n", str(n), "--dim", str(dim)]
        m = _child([*args, "--batch", str(batch)])
        if "error" not in m:
            delta = m["rss_after"] - m["rss_before"]
            m |= {"rss_delta": delta, "rss_per_vector": delta / m["n"]}
        out[name] = m
    return out


def run_group(
    data: str,
    names: list[str],
    n: int,
    dim: int,
    nq: int,
    batch: int,
    qbatch: int,
    repeats: int,
    max_steps: int = 0,
) -> dict[str, Any]:
    """Every workload for the systems ``names``, interleaved, in this process."""
    x, q = dataset(data, n, dim, nq)
    n, dim = x.shape
    truth = ground_truth(x, q, K)
    out: dict[str, Any] = {"n": n, "dim": dim, "queries": len(q), "k": K, "systems": names}
    with tempfile.TemporaryDirectory(prefix="innerspace-peers-") as work:
        systems = {name: make(name, dim, n, Path(work)) for name in names}
        try:
            out["ingest"] = ingest(systems, x, batch)
            lat = latency(systems, q, K)
            qps, found = batch_qps(systems, q, K, qbatch, repeats)
            out["search"] = {
                name: {
                    "p50_ms": pct(lat[name], 50),
                    "p99_ms": pct(lat[name], 99),
                    "qps_batch": qps[name],
                    "recall": recall(found[name], truth),
                    "knob": None if systems[name].exact else EF_DEFAULT,
                }
                for name in names
            }
            out["curves"] = sweep(systems, q, truth, K, max_steps)
            out["disk_bytes"] = {name: s.disk_bytes() for name, s in systems.items()}
            out["settings"] = {name: s.settings for name, s in systems.items()}
            out["durable"] = {name: s.durable for name, s in systems.items()}
            out["exact"] = {name: s.exact for name, s in systems.items()}
        finally:
            for s in systems.values():
                s.close()
    return out


def _child(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m bench.peers ARGS`` and parse the JSON of its last output line."""
    cmd = [sys.executable, "-m", "bench.peers", *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    parsed: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return parsed


def run_dataset(
    data: str,
    names: list[str],
    n: int,
    dim: int,
    nq: int,
    batch: int,
    qbatch: int,
    repeats: int,
    with_memory: bool,
    in_process: bool = False,
) -> dict[str, Any]:
    """Each group of :data:`GROUPS` in its own child process (an embedded database's thread
    pools then cannot slow the systems of another group), then the memory children."""
    common = ["--datasets", data, "--n", str(n), "--dim", str(dim), "--queries", str(nq)]
    common += ["--batch", str(batch), "--qbatch", str(qbatch), "--repeats", str(repeats)]
    out: dict[str, Any] = {"groups": {}}
    for group, members in GROUPS.items():
        chosen = [m for m in members if m in names]
        if not any(not m.startswith("ours") for m in chosen):
            continue
        print(f"[{data}] group {group}: {', '.join(chosen)}", file=sys.stderr, flush=True)
        if in_process:  # --tiny: one interpreter start less
            res = run_group(data, chosen, n, dim, nq, batch, qbatch, repeats, max_steps=2)
        else:
            res = _child(["--group-child", ",".join(chosen), *common])
        if "error" in res:
            raise RuntimeError(f"group {group} failed:\n{res['error']}")
        out["groups"][group] = res
        for key in ("n", "dim", "queries", "k"):
            out[key] = res[key]
    if with_memory:
        print(f"[{data}] memory, one child process per system", file=sys.stderr, flush=True)
        out["memory"] = memory(names, data, n, dim, batch)
    return out


# -- driver -------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("numpy", "faiss-cpu", "hnswlib", "chromadb", "qdrant-client", "lancedb"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", default="debian,synth", help="comma list: debian, synth")
    p.add_argument(
        "--systems",
        default="",
        help=f"comma list (default: all installed) of {', '.join(REGISTRY)}",
    )
    p.add_argument("--n", type=int, default=100_000, help="synthetic size (and a cap on debian)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--batch", type=int, default=1000, help="ingest batch")
    p.add_argument("--qbatch", type=int, default=64, help="query batch for QPS")
    p.add_argument("--repeats", type=int, default=3, help="batch-QPS passes per system")
    p.add_argument("--concurrency", default="1,8,32", help="HTTP client counts")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP comparison")
    p.add_argument("--http-dataset", default="debian", help="data set of the HTTP comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the RSS child processes")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CI)")
    p.add_argument("--no-write", action="store_true", help="print only; keep results untouched")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the datasets / HTTP results of peers.json that this run does not redo",
    )
    p.add_argument("--render", action="store_true", help="only redraw the report from peers.json")
    p.add_argument("--memory-child", default="", help=argparse.SUPPRESS)
    p.add_argument("--group-child", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.render:
        render(json.loads((RESULTS / "peers.json").read_text()))
        return 0
    if a.memory_child:
        print(json.dumps(memory_child(a.memory_child, a.datasets, a.n, a.dim, a.batch)))
        return 0
    if a.group_child:
        names = a.group_child.split(",")
        res = run_group(a.datasets, names, a.n, a.dim, a.queries, a.batch, a.qbatch, a.repeats)
        print(json.dumps(res))
        return 0
    if a.tiny:
        a.datasets, a.n, a.dim, a.queries, a.batch, a.qbatch = "synth", 600, 16, 10, 200, 5
        a.repeats, a.concurrency, a.no_memory = 1, "1,2", True
    names, missing = available([s for s in a.systems.split(",") if s] or None)
    for name, why in missing.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "versions": versions(),
        "skipped": missing,
        "params": {k: v for k, v in vars(a).items() if not k.endswith("_child")},
        "datasets": {},
    }
    if not a.tiny:
        from bench.machine import measure

        result["machine"] = measure(repeats=3)
    for data in [d for d in a.datasets.split(",") if d]:
        try:
            result["datasets"][data] = run_dataset(
                data,
                names,
                a.n,
                a.dim,
                a.queries,
                a.batch,
                a.qbatch,
                a.repeats,
                with_memory=not a.no_memory,
                in_process=a.tiny,
            )
        except FileNotFoundError as e:
            print(f"skipping {data}: {e}", file=sys.stderr)
    if not a.no_http:
        from bench.peers_http import run_http

        data = "synth" if a.tiny else a.http_dataset
        levels = [int(c) for c in a.concurrency.split(",")]
        result["http"] = run_http(data, a.n, a.dim, a.queries, a.batch, levels, tiny=a.tiny)
    print(json.dumps(result, indent=1, default=str))
    if not a.no_write and not a.tiny:
        path = RESULTS / "peers.json"
        if a.merge and path.exists():
            old = json.loads(path.read_text())
            result["datasets"] = old.get("datasets", {}) | result["datasets"]
            if "http" not in result and "http" in old:
                result["http"] = old["http"]
            result["runs"] = old.get("runs", []) + [
                {k: old.get(k) for k in ("date", "commit", "params", "machine")}
            ]
        write_json(path, result)
        render(result)
    return 0


def render(result: dict[str, Any]) -> None:
    """``bench/results/peers.png`` and the ``peers`` section of ``BENCHMARKS.md``."""
    from bench.peers_report import plot, section

    png = RESULTS / "peers.png"
    result["plot"] = plot(result, png)
    update_section(SECTION, section(result))


if __name__ == "__main__":
    sys.exit(main())
