"""Sustained mixed load on a real server: concurrent clients, latency per operation, the
server's memory over time, and the data checked against numpy afterwards (issue 11).

    python -m bench.load [--clients 32] [--seconds 60] [--n 20000] [--dim 128] [--out PATH]

``innerspace serve`` runs on 127.0.0.1 with its default settings (seal threshold included),
preloaded with ``n`` seeded vectors. ``clients`` asyncio tasks, each on its own connection and
without think time, loop until the deadline (or ``--max-requests``): 60% searches (k=10), 20%
searches with a payload filter, 20% upserts of 16 points (8 replace seeded points, 8 are new).
Every request is timed; the server's VmRSS is read from ``/proc/<pid>/status`` once a second.
Afterwards :func:`bench.load_check.verify` reads every point back and runs exact searches
against numpy brute force over the data the acknowledged writes define.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from bench.http import free_port, start_server
from bench.load_check import (
    BATCH,
    GROUPS,
    JSON,
    MIX,
    NAME,
    Ack,
    Tally,
    cpu_seconds,
    expected,
    rss_bytes,
    verify,
)
from bench.load_report import markdown, summarise
from bench.machine import versions
from bench.report import BENCHMARKS, dirty, git_commit, publish

RESULTS = Path(__file__).parent / "results"
FRESH = 10_000_000  # new ids of client i start at n + i * FRESH: clients never share one


def dumps(body: dict[str, Any]) -> bytes:
    # float64 rows: each float32 is written exactly, so the server stores the very same bits
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def seeded(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def preload(url: str, x: np.ndarray) -> None:
    with httpx.Client(base_url=url, timeout=120, headers=JSON) as c:
        c.post("/collections", json={"name": NAME, "dim": x.shape[1]}).raise_for_status()
        for i in range(0, len(x), 1000):
            rows = x[i : i + 1000].astype(np.float64)
            pts = [
                {"id": i + j, "vector": v, "payload": {"g": (i + j) % GROUPS}}
                for j, v in enumerate(rows)
            ]
            r = c.put(f"/collections/{NAME}/points", content=dumps({"points": pts}))
            r.raise_for_status()


async def warm_up(c: httpx.AsyncClient, dim: int) -> None:
    """A few unmeasured searches: the connection is open and the server's first-call costs
    (thread pools, BLAS, SQLite statements) are paid before the clock starts."""
    q = np.ones(dim).tolist()
    for flt in (None, {"must": [{"key": "g", "match": 0}]}, None):
        r = await c.post(f"/collections/{NAME}/search", json={"vector": q, "k": 10, "filter": flt})
        r.raise_for_status()


@dataclass
class Request:
    op: str
    method: str
    route: str
    body: dict[str, Any]
    x: np.ndarray | None = None  # an upsert's rows, float32


def draw(rng: np.random.Generator, a: argparse.Namespace, idx: int, fresh: int) -> Request:
    """The next operation of client ``idx`` (new ids start at ``fresh``)."""
    u = rng.random()
    if u < MIX["search"] + MIX["search_filtered"]:
        q = rng.standard_normal(a.dim, dtype=np.float32).astype(np.float64)
        if u < MIX["search"]:
            return Request("search", "POST", "search", {"vector": q, "k": 10})
        flt = {"must": [{"key": "g", "match": int(rng.integers(GROUPS))}]}
        return Request("search_filtered", "POST", "search", {"vector": q, "k": 10, "filter": flt})
    ids = rng.choice(a.n, BATCH // 2, replace=False).tolist()
    ids += range(fresh, fresh + BATCH - len(ids))
    x = rng.standard_normal((BATCH, a.dim), dtype=np.float32)
    payloads = [{"g": int(g), "c": idx} for g in rng.integers(GROUPS, size=BATCH)]
    rows = zip(ids, x.astype(np.float64), payloads, strict=True)
    pts = [{"id": i, "vector": v, "payload": p} for i, v, p in rows]
    return Request("upsert", "PUT", "points", {"points": pts}, x)


async def client(
    url: str, idx: int, a: argparse.Namespace, t: Tally, ready: asyncio.Barrier, go: asyncio.Event
) -> None:
    """One client: warm up, wait for the others, then random operations back to back until
    ``a.seconds`` have passed."""
    rng = np.random.default_rng([a.seed, idx])
    fresh = a.n + idx * FRESH
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=JSON) as c:
        await warm_up(c, a.dim)
        await ready.wait()
        await go.wait()
        end = t.t0 + a.seconds
        while time.perf_counter() < end and t.sent < a.max_requests:
            t.sent += 1
            req = draw(rng, a, idx, fresh)
            content = dumps(req.body)
            start = time.perf_counter()
            try:
                r = await c.request(req.method, f"/collections/{NAME}/{req.route}", content=content)
                problem = "" if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            t.record(req.op, time.perf_counter() - start)
            if req.x is not None:
                pts = req.body["points"]
                fresh += BATCH - BATCH // 2
                if problem:
                    t.unacked.update(p["id"] for p in pts)  # may or may not have been applied
                else:
                    seq = orjson.loads(r.content)["seq"]
                    ids, payloads = [p["id"] for p in pts], [p["payload"] for p in pts]
                    t.acks.append(Ack(seq, ids, req.x, payloads))
            elif not problem:
                problem = check_hits(orjson.loads(r.content), req.body)
            if problem:
                t.error(req.op, problem)


def check_hits(res: dict[str, Any], body: dict[str, Any]) -> str:
    """Cheap checks of a search answer under load (the exact comparison runs afterwards)."""
    hits = res["hits"]
    if len(hits) != body["k"] or not res["exact"]:
        return f"{len(hits)} hits, exact={res['exact']}"
    if "filter" in body:
        g = body["filter"]["must"][0]["match"]
        if any(h["payload"]["g"] != g for h in hits):
            return f"a hit outside the filter g={g}"
    return ""


async def sample_rss(pid: int, t: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        t.sample(rss_bytes(pid))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def drive(url: str, pid: int, a: argparse.Namespace) -> Tally:
    t = Tally(t0=time.perf_counter())
    ready, go, stop = asyncio.Barrier(a.clients + 1), asyncio.Event(), asyncio.Event()
    clients = asyncio.gather(*(client(url, i, a, t, ready, go) for i in range(a.clients)))
    await ready.wait()
    t.t0 = time.perf_counter()
    cpu0 = (cpu_seconds(pid), time.process_time())
    sampler = asyncio.create_task(sample_rss(pid, t, stop))
    go.set()
    await clients
    t.elapsed = time.perf_counter() - t.t0
    t.cpu = {"server_s": cpu_seconds(pid) - cpu0[0], "client_s": time.process_time() - cpu0[1]}
    stop.set()
    await sampler
    t.sample(rss_bytes(pid))
    return t


def run(a: argparse.Namespace) -> dict[str, Any]:
    x = seeded(a.n, a.dim, a.seed)
    work = Path(tempfile.mkdtemp(prefix="innerspace-load-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(work / "data", port, env={"INNERSPACE_SEAL_THRESHOLD": "65536"})
    try:
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        preload(url, x)
        preload_s = time.perf_counter() - t0
        tally = asyncio.run(drive(url, proc.pid, a))
        model = expected(x, tally.acks)
        check = verify(url, model, tally.unacked, a.seed, a.queries)
        peak = rss_bytes(proc.pid, "VmHWM")
        load_after = os.getloadavg()[0]  # the box is shared: how busy it was is part of a figure
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    config = {k: getattr(a, k) for k in ("clients", "seconds", "n", "dim", "seed", "max_requests")}
    return {
        "config": config | {"k": 10, "mix": MIX, "upsert_batch": BATCH, "groups": GROUPS},
        "preload_s": preload_s,
        "server_vmhwm_bytes": peak,
        "loadavg_1min": [load_before, load_after],
        "correctness": check,
        "commit": git_commit(),
        "dirty": dirty(),
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
    } | summarise(tally, a.dim)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (connections)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the load runs")
    p.add_argument("--n", type=int, default=20_000, help="seeded points")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many")
    p.add_argument("--queries", type=int, default=20, help="exact searches checked afterwards")
    p.add_argument("--tiny", action="store_true", help="4 clients, 3 s, 2k x 32: a smoke test")
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/load.json)")
    p.add_argument("--markdown", type=Path, help="default BENCHMARKS.md; none with --tiny")
    a = p.parse_args(argv)
    if a.tiny:
        a.clients, a.seconds, a.n, a.dim = 4, 3.0, 2000, 32
        a.out = a.out or Path(tempfile.gettempdir()) / "innerspace-bench-load-tiny.json"
    else:
        a.out = a.out or RESULTS / "load.json"
        a.markdown = a.markdown or BENCHMARKS
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    result = run(a)
    publish("load", result, markdown(result), a.out, a.markdown)
    ok = result["errors"] == 0 and result["correctness"]["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
