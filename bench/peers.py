"""Innerspace against the systems users would pick instead, side by side, in one run.

Data: the real Debian MiniLM embeddings (57,417 x 384, synopsis queries; ``bench.datasets``) and
seeded Gaussian vectors (100,000 x 384, seed 42). Ground truth is exact (faiss ``IndexFlatIP``);
every approximate figure carries its recall@10.

In-process (``bench.peers_systems``: our index layer, faiss, hnswlib, chroma embedded, qdrant
local, lancedb, milvus-lite, txtai), the systems run in groups (``GROUPS``: each peer family with
our counterpart), each group in its own process so one system's thread pools cannot slow
another's; within a group every workload runs the systems interleaved, order rotated each round:

- **ingest**: batches of ``--batch`` vectors, each batch handed to every system in turn (for
  the embedded databases this is client to durable; the libraries only hold it in memory);
- **build**: whatever is built or written after the last add (lancedb's IVF_PQ, milvus-lite's
  flush, txtai's index + save), timed per system;
- **latency**: single queries, p50 / p99 over ``--queries``; **QPS** at batch ``--qbatch``;
- **recall / speed curve**: the search-time knob (HNSW ef, IVF nprobes) swept;
- **memory**: each system ingests the first ``MEMORY_N`` vectors again, alone in a child
  process; RSS growth per vector after its first batch, and the bytes it leaves on disk.

Over the network (``bench.peers_http``) our server, chroma's (``chroma run``) and milvus-lite's
(``milvus-lite server``, gRPC) take the same data and the same client load (1 / 8 / 32 concurrent
clients). Writes ``bench/results/peers.json``,
``bench/results/peers.png`` and the ``peers`` section of ``BENCHMARKS.md``.

    python -m bench.peers [--datasets debian,synth] [--systems ...] [--no-http] [--tiny]
    python -m bench.peers --systems ours-flat,ours-hnsw,milvus-flat --merge  # redo some groups
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
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers_base import described
from bench.peers_service import DURABLE, run_ingest
from bench.peers_systems import GROUPS, REGISTRY, available, make, opened
from bench.peers_workloads import (
    K,
    batch_qps,
    dataset,
    ground_truth,
    ingest,
    latency,
    pct,
    recall,
    rss_bytes,
    sweep,
)
from bench.report import ROOT, git_commit, update_section, write_json

RESULTS = Path(__file__).parent / "results"
SECTION = "peers"


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
    with (
        tempfile.TemporaryDirectory(prefix="innerspace-peers-") as work,
        opened(names, dim, n, Path(work)) as systems,
    ):
        out["ingest"] = ingest(systems, x, batch)
        lat = latency(systems, q, K)
        qps, found = batch_qps(systems, q, K, qbatch, repeats)
        out["search"] = {
            name: {
                "p50_ms": pct(lat[name], 50),
                "p99_ms": pct(lat[name], 99),
                "qps_batch": qps[name],
                "recall": recall(found[name], truth),
                "knob": systems[name].default_knob,
            }
            for name in names
        }
        out["curves"] = sweep(systems, q, truth, K, max_steps)
        out |= described(systems)
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


def durable_ingest(
    data: str, names: list[str], n: int, dim: int, batch: int, in_process: bool
) -> dict[str, Any] | None:
    """The durable-ingest comparison (``bench.peers_service``) of the chosen durable systems
    in a child process; None when ours-service has no peer to meet."""
    durable = [m for m in DURABLE if m in names]
    if len(durable) < 2 or durable[0] != "ours-service":
        return None
    print(f"[{data}] durable ingest: {', '.join(durable)}", file=sys.stderr, flush=True)
    if in_process:
        return run_ingest(data, durable, n, dim, batch)
    args = ["--ingest-child", ",".join(durable), "--datasets", data, "--n", str(n)]
    res = _child([*args, "--dim", str(dim), "--batch", str(batch)])
    if "error" in res:
        raise RuntimeError(f"durable ingest failed:\n{res['error']}")
    return res


# -- driver -------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    pkgs = ("numpy", "faiss-cpu", "hnswlib", "chromadb", "qdrant-client", "lancedb")
    for pkg in (*pkgs, "milvus-lite", "pymilvus", "txtai", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--datasets", default="debian,synth", help="comma list: debian, synth, synth1m (1M rows)"
    )
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
        help="keep the groups / memory / HTTP results of peers.json that this run does not redo",
    )
    p.add_argument("--note", action="append", default=[], help="a note for the report")
    p.add_argument("--render", action="store_true", help="only redraw the report from peers.json")
    p.add_argument(
        "--ingest-only",
        action="store_true",
        help="only the durable-ingest comparison (ours-service vs the embedded databases)",
    )
    p.add_argument("--no-ingest", action="store_true", help="skip the durable-ingest comparison")
    p.add_argument("--memory-child", default="", help=argparse.SUPPRESS)
    p.add_argument("--ingest-child", default="", help=argparse.SUPPRESS)
    p.add_argument("--group-child", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.render:
        render(json.loads((RESULTS / "peers.json").read_text()))
        return 0
    if a.memory_child:
        print(json.dumps(memory_child(a.memory_child, a.datasets, a.n, a.dim, a.batch)))
        return 0
    if a.ingest_child:
        names = a.ingest_child.split(",")
        print(json.dumps(run_ingest(a.datasets, names, a.n, a.dim, a.batch)))
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
        "notes": a.note,
    }
    if not a.tiny:
        from bench.machine import measure

        result["machine"] = measure(repeats=3)
    for data in [d for d in a.datasets.split(",") if d]:
        if not a.no_ingest:
            done = durable_ingest(data, names, a.n, a.dim, a.batch, in_process=a.tiny)
            if done is not None:
                result["datasets"].setdefault(data, {"groups": {}})["durable_ingest"] = done
        if a.ingest_only:
            continue
        try:
            result["datasets"][data] = result["datasets"].get(data, {}) | run_dataset(
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
    if not a.no_http and not a.ingest_only:
        from bench.peers_http import run_http

        data = "synth" if a.tiny else a.http_dataset
        levels = [int(c) for c in a.concurrency.split(",")]
        result["http"] = run_http(data, a.n, a.dim, a.queries, a.batch, levels, tiny=a.tiny)
    print(json.dumps(result, indent=1, default=str))
    if not a.no_write and not a.tiny:
        path = RESULTS / "peers.json"
        if a.merge and path.exists():
            result = merge(json.loads(path.read_text()), result)
        write_json(path, result)
        render(result)
    return 0


def stamp(result: dict[str, Any]) -> None:
    """Mark every group and the HTTP comparison of ``result`` with its run date (kept when
    set), so merged results say which run measured what."""
    for ds in result.get("datasets", {}).values():
        for g in ds.get("groups", {}).values():
            g.setdefault("run", result["date"])
        if "durable_ingest" in ds:
            ds["durable_ingest"].setdefault("run", result["date"])
    if "http" in result:
        result["http"].setdefault("run", result["date"])


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` laid over ``old``: per data set the groups and memory children ``new`` ran
    replace those of ``old`` and the others are kept, as is the HTTP comparison when ``new``
    has none; ``old``'s run goes on the ``runs`` list and its notes are kept."""
    stamp(old)
    stamp(new)
    for data, ds in old.get("datasets", {}).items():
        mine = new["datasets"].setdefault(data, ds)
        if mine is not ds:
            for key, value in ds.items():  # what this run did not redo (its size, ingest run...)
                mine.setdefault(key, value)
            mine["groups"] = ds.get("groups", {}) | mine.get("groups", {})
            if "memory" in ds or "memory" in mine:
                mine["memory"] = ds.get("memory", {}) | mine.get("memory", {})
    if "http" not in new and "http" in old:
        new["http"] = old["http"]
    keep = ("date", "commit", "params", "machine")
    new["runs"] = old.get("runs", []) + [{k: old.get(k) for k in keep}]
    new["notes"] = old.get("notes", []) + new.get("notes", [])
    return new


def render(result: dict[str, Any]) -> None:
    """``bench/results/peers.png`` and the ``peers`` section of ``BENCHMARKS.md``."""
    from bench.peers_report import plot, section

    png = RESULTS / "peers.png"
    result["plot"] = plot(result, png)
    update_section(SECTION, section(result))


if __name__ == "__main__":
    sys.exit(main())
