"""What :mod:`bench.load` records while it runs (the clients' tally, the server's memory) and
how it checks the data afterwards: read back against the acknowledged writes, exact searches
against numpy brute force."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson

NAME = "load"
GROUPS = 8  # payload "g" takes 8 values: a filter keeps 1/8 of the points
BATCH = 16  # points per upsert request
MIX = {"search": 0.6, "search_filtered": 0.2, "upsert": 0.2}
JSON = {"content-type": "application/json"}


#: id -> (vector, payload)
Points = dict[int, tuple[np.ndarray, dict[str, Any]]]


@dataclass
class Ack:
    """An acknowledged upsert: durable at WAL sequence number ``seq``."""

    seq: int
    ids: list[int]
    x: np.ndarray
    payloads: list[dict[str, Any]]


@dataclass
class Tally:
    """Everything recorded while the load runs (one event loop: no locks needed)."""

    t0: float
    elapsed: float = 0.0
    sent: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of server and clients
    latencies: dict[str, list[float]] = field(default_factory=lambda: {o: [] for o in MIX})
    errors: dict[str, int] = field(default_factory=lambda: {o: 0 for o in MIX})
    error_samples: list[str] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    unacked: set[int] = field(default_factory=set)  # ids of failed upserts: state unknown
    per_second: dict[int, int] = field(default_factory=dict)
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (s, bytes, rows acked)

    def record(self, op: str, seconds: float) -> None:
        self.latencies[op].append(seconds)
        second = int(time.perf_counter() - self.t0)
        self.per_second[second] = self.per_second.get(second, 0) + 1

    def error(self, op: str, what: str) -> None:
        self.errors[op] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{op}: {what}")

    def sample(self, rss: int) -> None:
        self.rss.append((time.perf_counter() - self.t0, rss, len(self.acks) * BATCH))


def rss_bytes(pid: int, key: str = "VmRSS") -> int:
    """A memory figure of process ``pid`` from ``/proc/<pid>/status``, in bytes."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # the kernel reports kB (KiB)
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its reaped children so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # the name may hold spaces
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def expected(x: np.ndarray, acks: list[Ack]) -> Points:
    """The data the acknowledged writes define: the seeded points, then per id the upsert
    with the highest ``seq`` (the WAL's order, whatever order the answers arrived in)."""
    model = {i: (x[i], {"g": i % GROUPS}) for i in range(len(x))}
    for ack in sorted(acks, key=lambda a: a.seq):
        for i, v, p in zip(ack.ids, ack.x, ack.payloads, strict=True):
            model[i] = (v, p)
    return model


def read_back(c: httpx.Client) -> Points:
    got: Points = {}
    cursor = None
    while True:
        body = {"limit": 10_000, "cursor": cursor, "with_vector": True}
        r = c.post(f"/collections/{NAME}/points/scroll", json=body)
        r.raise_for_status()
        page = orjson.loads(r.content)
        for p in page["points"]:
            got[p["id"]] = (np.asarray(p["vector"], np.float32), p["payload"])
        if (cursor := page["next_cursor"]) is None:
            return got


def verify(url: str, model: Points, unknown: set[int], seed: int, queries: int) -> dict[str, Any]:
    """Every acknowledged write is read back as written (ids, vectors bit for bit, payloads),
    nothing else is there, and exact searches equal numpy brute force over that data."""
    with httpx.Client(base_url=url, timeout=300) as c:
        got = read_back(c)
        count = c.post(f"/collections/{NAME}/points/count", json={}).json()["count"]
        known = [i for i in model if i not in unknown]
        out: dict[str, Any] = {
            "points": len(model),
            "read_back": len(got),
            "count": count,
            "unknown": len(unknown),
            "missing": sum(i not in got for i in known),
            "extra": sum(i not in model and i not in unknown for i in got),
            "wrong_vector": sum(
                i in got and not np.array_equal(got[i][0], model[i][0]) for i in known
            ),
            "wrong_payload": sum(i in got and got[i][1] != model[i][1] for i in known),
        }
        ids = np.array(sorted(got), dtype=np.int64)
        xb = np.stack([got[int(i)][0] for i in ids])
        groups = np.array([got[int(i)][1]["g"] for i in ids])
        xq = np.random.default_rng(seed + 1).standard_normal((queries, xb.shape[1]), np.float32)
        tally = {"same": 0, "near_tie": 0, "mismatch": 0}
        for n, q in enumerate(xq):
            for flt in (None, n % GROUPS):
                body: dict[str, Any] = {"vector": q.astype(np.float64).tolist(), "k": 10}
                if flt is not None:
                    body["filter"] = {"must": [{"key": "g", "match": flt}]}
                res = c.post(f"/collections/{NAME}/search", json=body).json()
                mask = np.ones(len(ids), bool) if flt is None else groups == flt
                tally[compare(res, ids, xb @ q, mask)] += 1
    out |= {"queries": 2 * queries} | tally
    # ids of failed upserts may or may not be there; every other id must be, and nothing else
    sizes = out["read_back"] == count and (unknown or out["read_back"] == len(model))
    wrong = out["missing"] or out["extra"] or out["wrong_vector"] or out["wrong_payload"]
    out["ok"] = bool(sizes and not wrong and out["mismatch"] == 0)
    return out


def compare(res: dict[str, Any], ids: np.ndarray, scores: np.ndarray, mask: np.ndarray) -> str:
    """``same`` top 10 as brute force; ``near_tie`` when only rows whose scores agree to
    float32 rounding swapped places; else ``mismatch``."""
    s = np.where(mask, scores, -np.inf)
    order = np.argsort(-s, kind="stable")[:10]
    got_ids = [h["id"] for h in res["hits"]]
    got_s = np.array([h["score"] for h in res["hits"]])
    if not res["exact"] or len(got_ids) != len(order):
        return "mismatch"
    if not np.allclose(got_s, s[order], rtol=1e-5, atol=1e-5):
        return "mismatch"
    if got_ids == ids[order].tolist():
        return "same"
    rows = np.searchsorted(ids, got_ids)  # the hits' own exact scores must match theirs
    true = np.where(mask[rows], s[rows], np.nan)
    return "near_tie" if np.allclose(got_s, true, rtol=1e-5, atol=1e-5) else "mismatch"
