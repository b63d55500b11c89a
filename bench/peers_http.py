"""Our server against chroma's (``chroma run``, HTTP) and milvus-lite's (``milvus-lite server``,
gRPC), same data, same client load.

Every server runs as its own process on this machine. Ingest: batches go to the servers in turn
(ours: ``PUT points``, JSON with base64 float32 vectors as ``app.client`` sends numpy arrays,
answered once the WAL is fsynced; chroma: its ``HttpClient`` ``add``;
milvus-lite: ``MilvusClient.insert``, answered once in its WAL, then one ``flush``). Search: at
each client count, ``c`` threads (each with its own client) share one stream of queries; the
servers alternate, twice, and medians are kept. Ours and milvus-lite run first as flat (exact)
collections, then again after an HNSW build at chroma's parameters (ours: a build job;
milvus-lite: ``drop_index``, ``create_index(HNSW)``, ``load_collection``); chroma's collection is
HNSW throughout. Each system is used through its own client (ours: ``httpx`` + ``orjson``, which
is what ``app.client`` sends; milvus-lite: one ``MilvusClient(dedicated=True)``, so one gRPC
channel, per thread).
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from bench.http import free_port, start_server
from bench.peers_base import EF_DEFAULT, F32, HNSW_EF_CONSTRUCTION, HNSW_M, I64, dir_bytes, pad
from bench.peers_milvus_txtai import (
    COLLECTION,
    milvus_create,
    milvus_index_params,
    milvus_rows,
)
from bench.peers_systems import chroma_config
from bench.peers_workloads import K, dataset, feed, ground_truth, pct, recall, rotated

OURS_HNSW = f"HNSW(m={HNSW_M},ef_construction={HNSW_EF_CONSTRUCTION},ef_search={EF_DEFAULT})"
Search = Callable[[np.ndarray], list[int]]


def proc_rss(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- ours ---------------------------------------------------------------------------------------


class Ours:
    name = "ours"

    def __init__(self, work: Path, dim: int) -> None:
        self.data = work / "ours"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = start_server(self.data, self.port)
        self.http = httpx.Client(base_url=self.url, timeout=600)
        self.http.post("/collections", json={"name": "b", "dim": dim, "metric": "ip"})
        self.params: dict[str, int] | None = None

    def add(self, ids: I64, x: F32) -> None:
        # The wire form the bundled client sends for numpy vectors (app.dense): base64 float32.
        rows = x.astype("<f4", copy=False)
        vecs = [b64encode(v.tobytes()).decode() for v in rows]
        pts = [{"id": int(i), "vector": v} for i, v in zip(ids, vecs, strict=True)]
        body = orjson.dumps({"points": pts})
        r = self.http.put(
            "/collections/b/points", content=body, headers={"content-type": "application/json"}
        )
        r.raise_for_status()

    def finish_ingest(self) -> None:
        self.http.post("/collections/b/flush").raise_for_status()

    def build(self, spec: str) -> float:
        t = time.perf_counter()
        job = self.http.post("/collections/b/index", json={"spec": spec})
        job.raise_for_status()
        job_id = job.json()["id"]
        while True:
            state = self.http.get(f"/jobs/{job_id}").json()
            if state["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        if state["state"] != "succeeded":
            raise RuntimeError(f"index build {state['state']}: {state.get('error')}")
        self.params = {"ef_search": EF_DEFAULT}
        return time.perf_counter() - t

    def searcher(self) -> tuple[Search, Callable[[], None]]:
        c = httpx.Client(base_url=self.url, timeout=600)
        headers = {"content-type": "application/json"}
        params = self.params

        def search(v: np.ndarray) -> list[int]:
            body: dict[str, Any] = {"vector": v.tolist(), "k": K, "with_payload": False}
            if params:
                body["params"] = params
            r = c.post("/collections/b/search", content=orjson.dumps(body), headers=headers)
            r.raise_for_status()
            return [int(h["id"]) for h in orjson.loads(r.content)["hits"]]

        return search, c.close

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(60)


# -- chroma -------------------------------------------------------------------------------------


class ChromaServer:
    name = "chroma"

    def __init__(self, work: Path, dim: int) -> None:
        import chromadb

        exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
        self.data = work / "chroma"
        self.port = free_port()
        cmd = [exe, "run", "--path", str(self.data), "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}/api/v2/heartbeat"
        for _ in range(600):
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            self.proc.kill()
            raise RuntimeError("chroma server did not start")
        self.chromadb: Any = chromadb
        self.client: Any = chromadb.HttpClient(host="127.0.0.1", port=self.port)
        self.col: Any = self.client.create_collection("bench", configuration=chroma_config())

    def add(self, ids: I64, x: F32) -> None:
        self.col.add(ids=[str(i) for i in ids.tolist()], embeddings=x)

    def finish_ingest(self) -> None:
        pass

    def searcher(self) -> tuple[Search, Callable[[], None]]:
        col = self.chromadb.HttpClient(host="127.0.0.1", port=self.port).get_collection("bench")

        def search(v: np.ndarray) -> list[int]:
            r = col.query(query_embeddings=v[None], n_results=K, include=[])
            return [int(s) for s in r["ids"][0]]

        return search, lambda: None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


# -- milvus-lite --------------------------------------------------------------------------------


class MilvusServer:
    """``milvus-lite server`` in its own process (its default 10 gRPC worker threads), spoken
    to by pymilvus; a ``FLAT`` collection until :meth:`build` swaps in HNSW."""

    name = "milvus"

    def __init__(self, work: Path, dim: int) -> None:
        from pymilvus import MilvusClient

        self.data = work / "milvus"
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.proc.kill()
            raise RuntimeError("milvus-lite server did not start")
        self.client: Any = MilvusClient(uri=self.uri)
        milvus_create(self.client, dim, hnsw=False)
        self.ef: int | None = None

    def add(self, ids: I64, x: F32) -> None:
        self.client.insert(COLLECTION, milvus_rows(ids, x))

    def finish_ingest(self) -> None:
        self.client.flush(COLLECTION)

    def build(self) -> float:
        """Replace the ``FLAT`` index with HNSW and load it; seconds."""
        t = time.perf_counter()
        c = self.client
        c.release_collection(COLLECTION)
        c.drop_index(COLLECTION, "vector")
        c.create_index(COLLECTION, milvus_index_params(c, hnsw=True))
        c.load_collection(COLLECTION)
        self.ef = EF_DEFAULT
        return time.perf_counter() - t

    def searcher(self) -> tuple[Search, Callable[[], None]]:
        from pymilvus import MilvusClient

        c = MilvusClient(uri=self.uri, dedicated=True)
        params = {"params": {"ef": self.ef}} if self.ef else {}

        def search(v: np.ndarray) -> list[int]:
            hits = c.search(COLLECTION, data=[v], limit=K, search_params=params)
            return [int(h["id"]) for h in hits[0]]

        return search, c.close

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(60)


#: The peer servers: name, the import it needs, its class.
PEERS: dict[str, tuple[str, type[Any]]] = {
    "chroma": ("chromadb", ChromaServer),
    "milvus": ("milvus_lite", MilvusServer),
}


# -- load ---------------------------------------------------------------------------------------


def load(server: Any, q: F32, clients: int, total: int) -> dict[str, Any]:
    """``clients`` threads share ``total`` queries (cycling through ``q``); QPS, latencies and
    the ids of the first pass over ``q``."""
    searchers = [server.searcher() for _ in range(clients)]
    for search, _ in searchers:
        search(q[0])  # warm the connection
    lock = threading.Lock()
    counter = iter(range(total))
    lat: list[float] = []
    found: dict[int, list[int]] = {}

    def worker(search: Search) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t = time.perf_counter()
            ids = search(q[i % len(q)])
            ms = (time.perf_counter() - t) * 1000
            with lock:
                lat.append(ms)
                if i < len(q):
                    found[i] = ids

    threads = [threading.Thread(target=worker, args=(s,)) for s, _ in searchers]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    for _, close in searchers:
        close()
    return {"qps": total / wall, "lat": lat, "found": found}


def compare(
    servers: dict[str, Any], q: F32, truth: I64, levels: list[int], per_level: int, rounds: int
) -> dict[str, Any]:
    """Each client count, the servers alternating ``rounds`` times; median QPS, pooled p50/p99
    and recall@k (from the results of the first round)."""
    out: dict[str, Any] = {}
    names = list(servers)
    for c in levels:
        qps: dict[str, list[float]] = {n: [] for n in names}
        lat: dict[str, list[float]] = {n: [] for n in names}
        rec: dict[str, float] = {}
        for r in range(rounds):
            for name in rotated(names, r):
                res = load(servers[name], q, c, max(per_level, len(q)))
                qps[name].append(res["qps"])
                lat[name] += res["lat"]
                if name not in rec:
                    rows = [res["found"].get(i, []) for i in range(len(q))]
                    rec[name] = recall(pad(rows, K), truth)
        out[str(c)] = {
            n: {
                "qps": float(np.median(qps[n])),
                "qps_raw": qps[n],
                "p50_ms": pct(lat[n], 50),
                "p99_ms": pct(lat[n], 99),
                "recall": rec[n],
            }
            for n in names
        }
    return out


def run_http(
    data: str, n: int, dim: int, nq: int, batch: int, levels: list[int], tiny: bool = False
) -> dict[str, Any]:
    """The whole comparison on ``data``; a peer server whose package is not installed is left
    out (and said so)."""
    x, q = dataset(data, n, dim, nq)
    n, dim = x.shape
    truth = ground_truth(x, q, K)
    out: dict[str, Any] = {"dataset": data, "n": n, "dim": dim, "queries": len(q), "k": K}
    work = Path(tempfile.mkdtemp(prefix="innerspace-peers-http-"))
    servers: dict[str, Any] = {}
    try:
        servers["ours"] = Ours(work, dim)
        for name, (package, cls) in PEERS.items():
            if importlib.util.find_spec(package) is not None:
                servers[name] = cls(work, dim)
            else:
                out.setdefault("skipped", {})[name] = f"package {package!r} is not installed"
        names = list(servers)
        rss0 = {name: proc_rss(s.proc.pid) for name, s in servers.items()}
        spent = feed(servers, x, batch)
        for name in names:
            t = time.perf_counter()
            servers[name].finish_ingest()
            spent[name] += time.perf_counter() - t
        out["ingest"] = {name: {"s": s, "per_s": n / s} for name, s in spent.items()}
        print(f"[http] ingested {n:,} over the network", file=sys.stderr, flush=True)
        per_level = 20 if tiny else max(400, 2 * len(q))
        rounds = 1 if tiny else 2
        out["flat"] = compare(servers, q, truth, levels, per_level, rounds)
        print("[http] flat phase done; building HNSW", file=sys.stderr, flush=True)
        out["build_s"] = {"ours": servers["ours"].build(OURS_HNSW)}
        if "milvus" in servers:
            out["build_s"]["milvus"] = servers["milvus"].build()
        out["hnsw"] = compare(servers, q, truth, levels, per_level, rounds)
        out["rss"] = {
            name: {"before": rss0[name], "after": proc_rss(s.proc.pid)}
            for name, s in servers.items()
        }
        out["disk_bytes"] = {name: dir_bytes(s.data) for name, s in servers.items()}
        hnsw = f"M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}, ef={EF_DEFAULT}"
        settings = {
            "ours": f"flat collection, then `{OURS_HNSW}` (build job)",
            "chroma": f"`chroma run`, hnsw space=ip, {hnsw}, throughout",
            "milvus": f"`milvus-lite server` (gRPC, 10 worker threads), `FLAT`, then `HNSW` {hnsw}",
        }
        out["settings"] = {name: settings[name] for name in names}
    finally:
        for s in servers.values():
            s.close()
        shutil.rmtree(work, ignore_errors=True)
    return out
