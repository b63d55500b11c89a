"""Background-job benchmarks: build-job overhead vs faiss called directly, import throughput
per format vs the plain ``PUT points`` path, and the build worker's peak memory.

    python -m bench.jobs [--n 100000] [--dim 128] [--rss-n 1000000] [--rss-dim 384] [--tiny]

Build overhead runs direct and job builds alternately (A B A B) and compares medians. Imports
and PUTs go through one real server over HTTP, so both include parsing and the fsynced WAL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.config import Settings
from app.service import SearchService
from bench.http import free_port, start_server
from bench.report import git_commit, update_section, write_json
from index.spec import index_factory

RESULTS = Path(__file__).parent / "results"


def wait(svc_or_client: Any, job_id: str) -> dict[str, Any]:
    while True:
        if isinstance(svc_or_client, SearchService):
            job = svc_or_client.jobs.get(job_id).public()
        else:
            job = svc_or_client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            if job["state"] != "succeeded":
                raise RuntimeError(job)
            return job
        time.sleep(0.05)


def load_service(root: Path, x: np.ndarray) -> SearchService:
    svc = SearchService(Settings(data_dir=root, seal_threshold=10**9))
    svc.open()
    svc.create_collection("b", x.shape[1])
    col = svc.collection("b")
    for i in range(0, len(x), 10_000):
        chunk = x[i : i + 10_000]
        col.upsert(list(range(i, i + len(chunk))), chunk, [None] * len(chunk))
    col.seal()
    return svc


def build_overhead(x: np.ndarray, spec: str, reps: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="innerspace-bench-"))
    svc = load_service(root, x)
    ids = np.arange(len(x), dtype=np.int64)
    direct, job = [], []
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            index_factory(x.shape[1], spec).add(ids, x)
            direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            wait(svc, svc.build_index("b", spec).id)
            job.append(time.perf_counter() - t0)
    finally:
        svc.close()
        shutil.rmtree(root, ignore_errors=True)
    d, j = float(np.median(direct)), float(np.median(job))
    return {"spec": spec, "direct_s": d, "job_s": j, "overhead": j / d - 1}


def imports(x: np.ndarray) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="innerspace-bench-"))
    n = len(x)
    ids = np.arange(n)
    with open(work / "d.ndjson", "w") as fh:
        for i, v in zip(ids.tolist(), x.tolist(), strict=True):
            fh.write(json.dumps({"id": i, "vector": v}) + "\n")
    np.save(work / "d.npy", x)
    files = {"ndjson": work / "d.ndjson", "npy": work / "d.npy"}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"id": ids, "vector": pa.array(list(x), type=pa.list_(pa.float32()))})
        pq.write_table(table, work / "d.parquet")
        files["parquet"] = work / "d.parquet"
    except ImportError:
        pass
    port = free_port()
    proc = start_server(work / "data", port)
    out: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
            for name, path in [("put", None), *files.items()]:
                c.post("/collections", json={"name": name, "dim": x.shape[1]}).raise_for_status()
                t0 = time.perf_counter()
                if path is None:
                    for i in range(0, n, 1000):
                        pts = [
                            {"id": i + j, "vector": v.tolist()}
                            for j, v in enumerate(x[i : i + 1000])
                        ]
                        c.put(
                            f"/collections/{name}/points", json={"points": pts}
                        ).raise_for_status()
                else:
                    r = c.post(f"/collections/{name}/import", json={"path": str(path)})
                    wait(c, r.json()["id"])
                out[name] = n / (time.perf_counter() - t0)
                assert c.get(f"/collections/{name}").json()["count"] == n
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    return out


def build_rss(n: int, dim: int, spec: str) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="innerspace-bench-"))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    svc = load_service(root, x)
    del x
    try:
        t0 = time.perf_counter()
        job = wait(svc, svc.build_index("b", spec).id)
        took = time.perf_counter() - t0
    finally:
        svc.close()
        shutil.rmtree(root, ignore_errors=True)
    rss = int(job["result"]["worker_peak_rss_bytes"])
    raw = n * dim * 4
    return {
        "n": n,
        "dim": dim,
        "spec": spec,
        "build_s": took,
        "peak_rss_bytes": rss,
        "raw_bytes": raw,
        "rss_over_raw": rss / raw,
    }


def table(r: dict[str, Any]) -> str:
    b, imp, m = r["build"], r["imports"], r["rss"]
    lines = [
        f"Build job vs faiss directly ({r['n']:,} × {r['dim']}, `{b['spec']}`, medians of "
        f"{r['reps']} alternating runs): direct {b['direct_s']:.2f} s, job {b['job_s']:.2f} s, "
        f"overhead **{b['overhead']:+.1%}** (target ≤ 10%).",
        "",
        f"Import throughput ({r['n']:,} × {r['dim']}, one real server, client to durable):",
        "",
        "| path | vectors/s | vs PUT |",
        "|---|---|---|",
    ]
    for name, rate in imp.items():
        label = "`PUT points` (1,000 per request)" if name == "put" else f"import job, {name}"
        lines.append(f"| {label} | {rate:,.0f} | {rate / imp['put']:.2f}× |")
    lines += [
        "",
        f"Peak RSS of the build worker for `{m['spec']}` on {m['n']:,} × {m['dim']} float32 "
        f"({m['raw_bytes'] / 1e9:.2f} GB raw): {m['peak_rss_bytes'] / 1e9:.2f} GB = "
        f"**{m['rss_over_raw']:.2f}×** the raw data (target ≤ 1.3×); "
        f"build took {m['build_s']:.0f} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--spec", default="HNSW(m=16,ef_construction=100,ef_search=64)")
    p.add_argument("--rss-n", type=int, default=1_000_000)
    p.add_argument("--rss-dim", type=int, default=384)
    p.add_argument("--rss-spec", default="IVF(nlist=1024,nprobe=16)")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CI)")
    a = p.parse_args(argv)
    if a.tiny:
        a.n, a.dim, a.reps, a.rss_n, a.rss_dim = 3000, 16, 1, 5000, 16
        a.spec, a.rss_spec = "HNSW(m=8,ef_construction=20)", "IVF(nlist=16)"
    x = np.random.default_rng(42).standard_normal((a.n, a.dim), dtype=np.float32)
    r: dict[str, Any] = {"n": a.n, "dim": a.dim, "reps": a.reps}
    r["build"] = build_overhead(x, a.spec, a.reps)
    r["imports"] = imports(x)
    r["rss"] = build_rss(a.rss_n, a.rss_dim, a.rss_spec)
    r |= {"commit": git_commit(), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(r, indent=1))
    if not a.tiny:
        write_json(RESULTS / "jobs.json", r)
        update_section("jobs", "## Background jobs\n\n" + table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
