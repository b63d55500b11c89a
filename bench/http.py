"""End-to-end HTTP search latency against the same search run in-process, side by side.

A real ``innerspace serve`` process holds the collection; an in-process ``SearchService`` opens a
copy of the same data directory. Queries alternate HTTP / in-process after a warm-up, so both see
the same machine state; we report medians, p99 and the HTTP overhead. Ingest through the API
(client to durable) is timed on the way.

    python -m bench.http [--n 100000] [--dim 384] [--queries 200] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from app.config import Settings
from app.search import Query
from app.service import SearchService
from bench.report import git_commit, update_section, write_json

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``innerspace serve`` on 127.0.0.1:``port``, once ready; ``env`` overrides settings (the
    default never seals, so a benchmark's tail stays one exact scan)."""
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    env = {
        "INNERSPACE_LOG_LEVEL": "warning",
        "INNERSPACE_SEAL_THRESHOLD": "10000000",
        **(env or {}),
    }
    proc = subprocess.Popen(cmd, env={**__import__("os").environ, **env})
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ingest(c: httpx.Client, x: np.ndarray, batch: int) -> dict[str, list[float]]:
    """Every batch of ``x`` twice, client to durable: as base64 float32 into collection ``b``
    (what ``app.client`` sends for numpy vectors) and as JSON number lists into ``j``,
    alternating which goes first; seconds per batch, body building included, per form."""
    dim = x.shape[1]
    for name in ("b", "j"):
        c.post("/collections", json={"name": name, "dim": dim}).raise_for_status()
    spent: dict[str, list[float]] = {"base64": [], "lists": []}
    head = {"content-type": "application/json"}
    for b, i in enumerate(range(0, len(x), batch)):
        rows = x[i : i + batch]
        order = [("base64", "b"), ("lists", "j")]
        for form, name in order if b % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            if form == "base64":
                vecs: list[Any] = [b64encode(v.astype("<f4").tobytes()).decode() for v in rows]
            else:
                vecs = rows.tolist()
            pts = [{"id": i + j, "vector": v} for j, v in enumerate(vecs)]
            body = orjson.dumps({"points": pts})
            c.put(f"/collections/{name}/points", content=body, headers=head).raise_for_status()
            spent[form].append(time.perf_counter() - t0)
    c.delete("/collections/j").raise_for_status()
    return spent


def run(n: int, dim: int, nq: int, batch: int) -> dict[str, Any]:
    rng = np.random.default_rng(42)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    queries = rng.standard_normal((nq, dim), dtype=np.float32)
    work = Path(tempfile.mkdtemp(prefix="innerspace-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(work / "served", port)
    out: dict[str, Any] = {"n": n, "dim": dim, "queries": nq, "k": 10}
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            spent = ingest(c, x, batch)
            out["ingest_points_per_s"] = n / sum(spent["base64"])
            out["ingest_wire"] = {
                form: {"points_per_s": n / sum(t), "batch_ms_p50": pct(t, 50) * 1000}
                for form, t in spent.items()
            }
            c.post("/collections/b/flush").raise_for_status()
            proc.terminate()
            proc.wait(60)
            shutil.copytree(work / "served", work / "local")
            proc = start_server(work / "served", port)
            svc = SearchService(Settings(data_dir=work / "local"))
            svc.open()
            http_ms: list[float] = []
            local_ms: list[float] = []
            agree = 0
            for rep in range(nq + 5):  # the first 5 are warm-up
                q = queries[rep % nq]
                t0 = time.perf_counter()
                r = c.post("/collections/b/search", json={"vector": q.tolist(), "k": 10})
                t1 = time.perf_counter()
                hits = svc.search("b", [Query(vector=q.tolist(), k=10)])[0].hits
                t2 = time.perf_counter()
                if rep >= 5:
                    http_ms.append((t1 - t0) * 1000)
                    local_ms.append((t2 - t1) * 1000)
                    agree += [h["id"] for h in r.json()["hits"]] == [h.id for h in hits]
            svc.close()
            out |= {
                "http_p50_ms": pct(http_ms, 50),
                "http_p99_ms": pct(http_ms, 99),
                "inproc_p50_ms": pct(local_ms, 50),
                "inproc_p99_ms": pct(local_ms, 99),
                "http_overhead_p50_ms": pct(http_ms, 50) - pct(local_ms, 50),
                "same_results": agree / nq,
            }
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    return out


def table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{r['n']:,} × {r['dim']} float32, k=10, {r['queries']} sequential single queries "
            "(medians; HTTP and in-process interleaved).",
            "",
            "| path | p50 ms | p99 ms |",
            "|---|---|---|",
            f"| HTTP (`POST /search`, real server) | {r['http_p50_ms']:.2f} | "
            f"{r['http_p99_ms']:.2f} |",
            f"| in-process `SearchService.search` | {r['inproc_p50_ms']:.2f} | "
            f"{r['inproc_p99_ms']:.2f} |",
            "",
            f"HTTP overhead at p50: {r['http_overhead_p50_ms']:.2f} ms; identical results: "
            f"{r['same_results']:.0%}.",
            "",
            *wire_table(r),
        ]
    )


def wire_table(r: dict[str, Any]) -> list[str]:
    w = r.get("ingest_wire")
    if not w:
        return [f"Ingest through `PUT points`: {r['ingest_points_per_s']:,.0f} points/s."]
    ratio = w["base64"]["points_per_s"] / w["lists"]["points_per_s"]
    return [
        "Ingest through `PUT points`, client to durable (batches of 1,000, the WAL fsynced per "
        "batch, body building included; the two forms alternate batch by batch into two "
        "collections of the same server):",
        "",
        "| vectors sent as | points/s | batch p50 ms |",
        "|---|---|---|",
        *(
            f"| {form} | {v['points_per_s']:,.0f} | {v['batch_ms_p50']:.1f} |"
            for form, v in (
                ("base64 float32 (`app.client`)", w["base64"]),
                ("JSON number lists", w["lists"]),
            )
        ),
        "",
        f"base64 ÷ lists: {ratio:.2f}×.",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CI)")
    p.add_argument("--no-write", action="store_true", help="print only; keep results untouched")
    a = p.parse_args(argv)
    if a.tiny:
        a.n, a.dim, a.queries = 2000, 32, 20
    r = run(a.n, a.dim, a.queries, batch=1000)
    r |= {"commit": git_commit(), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(r, indent=1))
    if not a.no_write and not a.tiny:
        write_json(RESULTS / "http.json", r)
        update_section("http", "## HTTP vs in-process search\n\n" + table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
