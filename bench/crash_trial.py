"""The parts of a crash trial (:mod:`bench.crash` runs them): writers that record what they were
told in a :class:`~bench.crash_check.Ledger`, the check of a restarted server against it, the
server and its build workers, and the moments to kill at.

Scenarios: ``upsert`` kills during writes alone (seals and segment merges included, the seal
threshold is small); ``build`` during an HNSW index build job; ``compact`` during a compaction
job over segments holding deleted and replaced rows. Writers keep writing during the jobs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.crash_check import CheckResult, Ledger, Op, PointId, Row, check_search, check_state
from bench.crash_check import make_row as row
from tests.support import Server

ROOT = Path(__file__).resolve().parents[1]
DIM = 32
BUILD_SPEC = "HNSW(m=16,ef_construction=200,ef_search=64)"
COMPACT_SPECS = ("Flat", "HNSW(m=8,ef_construction=64,ef_search=64)")
FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Config:
    """Sizes of a trial; ``small`` ones keep the default test run short."""

    preload: tuple[int, int] = (6000, 12000)
    max_batch: int = 40
    job_timeout_s: float = 300.0
    orphans: str = "kill"  # "kill": like a supervisor killing the process group; "leave"
    second_kill: bool = True  # kill and check once more after the job (a restart is ~1-3 s)
    tiny: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(preload=(1500, 2500), max_batch=20, second_kill=False, tiny=True)


@dataclass
class Writers:
    """Threads upserting (and deleting) their own ids until stopped or a request fails."""

    url: str
    ledger: Ledger
    rng: np.random.Generator
    max_batch: int
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, owned: list[list[PointId]]) -> None:
        for w, ids in enumerate(owned):
            seed = int(self.rng.integers(2**32))
            t = threading.Thread(target=self._run, args=(w, ids, seed), daemon=True)
            self.threads.append(t)
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _run(self, w: int, owned: list[PointId], seed: int) -> None:
        rng = np.random.default_rng(seed)
        # every id this writer has written (re-upserts resurrect deleted ones), and the live ones
        known, live = dict.fromkeys(owned), dict.fromkeys(owned)
        with httpx.Client(base_url=self.url, timeout=30) as c:
            for n in range(1, 10**9):
                if self.stop.is_set():
                    return
                op, path, body = self._next_op(rng, w, n, list(known), list(live))
                token = self.ledger.begin(op)
                try:
                    r = c.request("PUT" if op.kind == "upsert" else "POST", path, json=body)
                except httpx.ConnectError:  # nothing was sent: the write cannot have applied
                    self.ledger.never_sent(token)
                    return
                except httpx.TransportError:  # in flight when the server died: unacknowledged
                    return
                if r.status_code != 200:
                    self.errors.append(f"writer {w}: {path} -> {r.status_code} {r.text[:300]}")
                    return
                self.ledger.ack(token)
                for pid in op.states:
                    if op.kind == "delete":
                        live.pop(pid, None)
                    else:
                        live[pid] = known[pid] = None

    def _next_op(
        self, rng: np.random.Generator, w: int, n: int, known: list[PointId], live: list[PointId]
    ) -> tuple[Op, str, dict[str, Any]]:
        """Writer ``w``'s ``n``-th request: mostly upserts of new and earlier ids (about 30%
        replace or resurrect a point), sometimes a delete of a few live points."""
        if live and rng.random() < 0.15:
            pick = rng.choice(len(live), min(len(live), int(rng.integers(1, 11))), False)
            ids = [live[i] for i in pick]
            return Op("delete", dict.fromkeys(ids)), "/collections/c/points/delete", {"ids": ids}
        size = int(rng.integers(1, self.max_batch + 1))
        reuse = min(len(known), int(rng.binomial(size, 0.3)))
        ids = [known[i] for i in rng.choice(len(known), reuse, False)] if reuse else []
        ids += [  # a quarter string ids: 7 and "7" are different points
            f"w{w}-{n}-{j}" if j % 4 == 3 else (w + 1) * 10**7 + n * 100 + j
            for j in range(size - reuse)
        ]
        x = rng.standard_normal((len(ids), DIM), dtype=np.float32)
        pts = [point(i, v, {"w": w, "n": n}) for i, v in zip(ids, x, strict=True)]
        op = Op("upsert", {p["id"]: row(p["vector"], p["payload"]) for p in pts})
        return op, "/collections/c/points", {"points": pts}


def point(pid: PointId, v: np.ndarray, extra: dict[str, Any]) -> dict[str, Any]:
    """A point as sent; the payload names its id, so an old version is recognisable."""
    return {"id": pid, "vector": v.tolist(), "payload": {"id": pid, **extra}}


def upsert_acked(c: httpx.Client, ledger: Ledger, pts: list[dict[str, Any]]) -> None:
    """Write points synchronously (set-up before the writers start)."""
    for i in range(0, len(pts), 2000):
        batch = pts[i : i + 2000]
        token = ledger.begin(Op("upsert", {p["id"]: row(p["vector"], p["payload"]) for p in batch}))
        c.put("/collections/c/points", json={"points": batch}).raise_for_status()
        ledger.ack(token)


def scroll_all(c: httpx.Client) -> dict[PointId, Row]:
    out: dict[PointId, Row] = {}
    cursor = None
    while True:
        body = {"limit": 5000, "cursor": cursor, "with_vector": True, "with_payload": True}
        page = c.post("/collections/c/points/scroll", json=body).raise_for_status().json()
        for p in page["points"]:
            out[p["id"]] = row(p.get("vector"), p["payload"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def verify(c: httpx.Client, ledger: Ledger, rng: np.random.Generator) -> CheckResult:
    """Every recorded write against the server's points, counts and exact search results."""
    observed = scroll_all(c)
    res = check_state(ledger, observed)
    info = c.get("/collections/c").raise_for_status().json()
    count = c.post("/collections/c/points/count", json={}).raise_for_status().json()["count"]
    if not info["count"] == count == len(observed):
        res.problem(f"count {count}, info count {info['count']}, scrolled {len(observed)}")
    for pid in list(observed)[:: max(1, len(observed) // 20)]:  # the single-point read path
        r = c.get(f"/collections/c/points/{pid}", params={"with_vector": True}).json()
        if row(r.get("vector"), r.get("payload")) != observed[pid]:
            res.problem(f"GET point {pid!r} disagrees with scroll: {r}")
    stored = [np.frombuffer(v, np.float32) for v, _ in list(observed.values())[:1] if v]
    queries = [*stored, *rng.standard_normal((3, DIM), dtype=np.float32)]
    for q in queries:
        body: dict[str, Any] = {"vector": q.tolist(), "stages": [{"exact": {"k": 10}}]}
        hits = c.post("/collections/c/query", json=body).raise_for_status().json()["hits"]
        for p in check_search(observed, q, 10, hits):
            res.problem(f"exact query stage: {p}")
        r = c.post("/collections/c/search", json={"vector": q.tolist(), "k": 10}).json()
        for p in check_search(observed, q, 10, r["hits"]) if r["exact"] else []:
            res.problem(f"search (exact={r['exact']}): {p}")
    return res


def wait_job(c: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = c.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["state"] in FINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def worker_pids(data_dir: Path) -> list[int]:
    """Build workers (``app.jobs.worker``) running on ``data_dir``."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes() if d.name.isdigit() else b""
        except OSError:
            continue
        if b"app.jobs.worker" in cmd and str(data_dir).encode() in cmd:
            pids.append(int(d.name))
    return pids


def kill_workers(data_dir: Path) -> int:
    """SIGKILL the build workers a dead server left behind (they would run on and finish)."""
    pids = worker_pids(data_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def squat_next_segment(data_dir: Path) -> Path:
    """Fault injection: occupy the directory the next seal will rename its segment to, so
    seals fail as they would on a full disk, or under an orphaned build worker renaming its
    segment into place after a restart. Returns the squatter's file."""
    seg_root = data_dir / "collections" / "c" / "segments"
    while True:
        manifest = seg_root.parent / "manifest.json"
        nxt = json.loads(manifest.read_text())["next_segment"] if manifest.exists() else 1
        try:
            (seg_root / f"{nxt:08d}").mkdir()
        except FileExistsError:  # a seal just took that id: read the manifest again
            continue
        squatter = seg_root / f"{nxt:08d}" / "squatter"
        squatter.write_bytes(b"")
        return squatter


def server(data: Path, rng: np.random.Generator, scenario: str) -> Server:
    """A server on this checkout's code, with seal settings drawn for the trial."""
    small = scenario in ("upsert", "seal-fault")
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "INNERSPACE_SEAL_THRESHOLD": str(
            int(rng.integers(64, 512) if small else rng.integers(256, 2048))
        ),
        "INNERSPACE_MAX_SEGMENTS": str(int(rng.integers(2, 5))),
    }
    return Server(data, **env)


def await_log(srv: Server, text: str, timeout: float) -> int:
    """Wait until the server's log mentions ``text``; returns how often it does."""
    deadline = time.monotonic() + timeout
    while True:
        seen = Path(srv.log.name).read_text(errors="replace").count(text)
        if seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def await_kill(c: httpx.Client, job_id: str, mode: str, delay: float) -> dict[str, Any]:
    """Wait for the moment to kill: ``timed``, ``delay`` seconds after the job was submitted
    (some land after it ended); ``end-of-adding``, as soon as the worker
    reports its last rows added, when it is writing and renaming the new segment and the
    server is about to swap it in: the narrowest window, hit on purpose."""
    if mode == "timed":
        time.sleep(delay)
        job: dict[str, Any] = c.get(f"/jobs/{job_id}").json()
        return job
    deadline = time.monotonic() + 300
    while True:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] in FINAL or job["phase"] == "installing" or time.monotonic() > deadline:
            return job
        if job["phase"] == "adding" and job["done"] == job["total"]:
            return job
        time.sleep(0.005)  # a poll takes a few ms; the build needs the cores


def job_outcome(c: httpx.Client, job_id: str, cfg: Config, rec: dict[str, Any]) -> None:
    """The interrupted job must end: succeeded (the build's spec installed) or failed with a
    reason; never stuck, never silently cancelled."""
    job = wait_job(c, job_id, cfg.job_timeout_s)
    rec["job"] = {k: job[k] for k in ("state", "phase", "attempts", "error")}
    if job["state"] == "succeeded":
        rec["job"]["dropped"] = (job["result"] or {}).get("dropped")
        rec["job_s"] = job["finished_at"] - job["started_at"]
        index = c.get("/collections/c").json()["index"]
        if index != job["params"].get("spec", index):
            rec["problems"].append(f"build succeeded but the collection serves {index!r}")
    elif job["state"] != "failed" or not job["error"]:
        rec["problems"].append(f"job ended {job['state']!r} ({job['phase']}): {job['error']!r}")
