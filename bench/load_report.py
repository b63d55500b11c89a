"""Figures and the BENCHMARKS.md section of :mod:`bench.load`.

The memory bound. Until a seal, a collection's unindexed tail keeps every appended row in RAM,
replaced rows included (``4·dim`` bytes of float32, an 8-byte id, a 1-byte tombstone flag): that
is the design, not a leak. So over the second half of the run the server's VmRSS may grow by the
rows acknowledged in that half times that size, plus ``SLACK`` for memory that fills once and
then levels off: SQLite's page cache (2 MiB), and glibc's heap, which after the first large free
raises its mmap threshold (up to 32 MiB), so freed numpy buffers of a scan or an upsert stay in
the heap for reuse instead of going back to the kernel. A leak grows with requests instead: on
this box a 30-second half is a few thousand requests, so 32 MiB catches one of ~10 KiB per
request (a retained request body or response) within one run; the run reports how much of the
growth the data term does not explain, and its slope, for smaller ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.load_check import BATCH, MIX, Tally

MIB = 1 << 20
SLACK = 32 * MIB
LABELS = {
    "search": "search k=10",
    "search_filtered": "search k=10 + `match` filter",
    "upsert": f"upsert {BATCH} points",
}


def summarise(t: Tally, dim: int) -> dict[str, Any]:
    """Requests, errors and latency percentiles per operation, throughput, memory."""
    ops: dict[str, Any] = {}
    for op, lat in t.latencies.items():
        ms = np.asarray(lat) * 1000 if lat else np.zeros(1)
        ops[op] = {
            "requests": len(lat),
            "errors": t.errors[op],
            "per_s": len(lat) / t.elapsed,
            "mean_ms": float(ms.mean()),
            "max_ms": float(ms.max()),
        } | {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 90, 99)}
    requests = sum(o["requests"] for o in ops.values())
    per_second = [t.per_second.get(s, 0) for s in range(int(t.elapsed))]  # whole seconds
    return {
        "ops": ops,
        "requests": requests,
        "errors": sum(t.errors.values()),
        "error_samples": t.error_samples,
        "elapsed_s": t.elapsed,
        "throughput_rps": requests / t.elapsed,
        "points_upserted_per_s": len(t.acks) * BATCH / t.elapsed,
        "per_second_requests": per_second,
        "cpu": t.cpu
        | {
            f"{who}_ms_per_request": t.cpu[f"{who}_s"] * 1000 / requests
            for who in ("server", "client")
        },
        "rss": rss_summary(t.rss, t.elapsed, dim),
    }


def rss_summary(samples: list[tuple[float, int, int]], elapsed: float, dim: int) -> dict[str, Any]:
    """Start, peak, end and second-half growth of the sampled VmRSS, against the bound above."""
    ts = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], dtype=np.int64)
    rows = np.array([s[2] for s in samples], dtype=np.int64)
    mid = int(np.searchsorted(ts, elapsed / 2))
    mid = min(mid, len(ts) - 1)
    growth = int(rss[-1] - rss[mid])
    row_bytes = 4 * dim + 8 + 1
    data = int(rows[-1] - rows[mid]) * row_bytes
    slope = float(np.polyfit(ts[mid:], rss[mid:], 1)[0]) * 60 if len(ts) - mid > 2 else 0.0
    return {
        "samples": [list(s) for s in samples],
        "start_bytes": int(rss[0]),
        "peak_bytes": int(rss.max()),
        "end_bytes": int(rss[-1]),
        "mid_bytes": int(rss[mid]),
        "second_half_growth_bytes": growth,
        "second_half_rows": int(rows[-1] - rows[mid]),
        "row_bytes": row_bytes,
        "slack_bytes": SLACK,
        "bound_bytes": data + SLACK,
        "second_half_beyond_data_bytes": growth - data,
        "second_half_slope_bytes_per_min": slope,
        "stable": growth <= data + SLACK,
    }


def mib(b: float) -> str:
    return f"{b / MIB:,.1f} MiB"


def markdown(r: dict[str, Any]) -> str:
    c, m, chk, v, cpu = r["config"], r["rss"], r["correctness"], r["versions"], r["cpu"]
    load = r["loadavg_1min"]
    commit = str(r["commit"])[:10] + (" + uncommitted changes" if r.get("dirty") else "")
    mix = ", ".join(f"{share:.0%} {LABELS[op]}" for op, share in MIX.items())
    lines = [
        f"## Sustained load ({c['clients']} clients, {c['seconds']:g} s)",
        "",
        f"`python -m bench.load --clients {c['clients']} --seconds {c['seconds']:g}` on "
        f"{r['date']} at {commit}: {v['cpu']} x {v['cpus']} cores, shared (1-minute load "
        f"average {load[0]:.1f} before, {load[1]:.1f} after), the clients on the same cores. "
        "One real `innerspace serve` on 127.0.0.1 (default settings, Flat), preloaded with "
        f"{c['n']:,} × {c['dim']} float32 seeded points; "
        f"then {c['clients']} asyncio httpx clients, one connection each, no think time: {mix} "
        "(half replace seeded points, half are new; each answered once its WAL record is fsynced).",
        "",
        "| operation | requests | errors | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, o in r["ops"].items():
        lines.append(
            f"| {LABELS[op]} | {o['requests']:,} | {o['errors']} | {o['p50_ms']:.1f} | "
            f"{o['p99_ms']:.1f} | {o['max_ms']:.1f} |"
        )
    per_s = r["per_second_requests"] or [0]
    lines += [
        f"| **all** | {r['requests']:,} | {r['errors']} | | | |",
        "",
        f"Throughput {r['throughput_rps']:,.0f} requests/s ({r['points_upserted_per_s']:,.0f} "
        f"points upserted/s); the slowest whole second still served {min(per_s):,} requests "
        f"(median second {int(np.median(per_s)):,}). CPU per request: server "
        f"{cpu['server_ms_per_request']:.1f} ms, clients {cpu['client_ms_per_request']:.1f} ms "
        f"(the server kept {cpu['server_s'] / r['elapsed_s']:.2f} cores busy).",
        "",
        f"Server memory (VmRSS, sampled each second): start {mib(m['start_bytes'])}, peak "
        f"{mib(m['peak_bytes'])}, end {mib(m['end_bytes'])} (the process's high-water mark, "
        f"preload included: {mib(r['server_vmhwm_bytes'])}). Growth over the second half: "
        f"{mib(m['second_half_growth_bytes'])} ({mib(m['second_half_beyond_data_bytes'])} beyond "
        f"the rows written), against a bound of {mib(m['bound_bytes'])} = "
        f"{m['second_half_rows']:,} rows acknowledged in that half × {m['row_bytes']} bytes "
        f"(the unsealed tail holds every appended row by design) + {mib(m['slack_bytes'])} "
        f"(SQLite's cache and the heap filling once; "
        f"{m['slack_bytes'] / max(1, r['requests'] / 2) / 1024:,.1f} KiB per request of the half): "
        f"**{'stable' if m['stable'] else 'NOT stable'}**.",
        "",
        f"Afterwards: {chk['read_back']:,} points read back ({chk['count']:,} counted) against "
        f"the {chk['points']:,} the acknowledged writes define (per id the upsert with the highest "
        f"`seq`): {chk['missing']} missing, {chk['extra']} unexpected, {chk['wrong_vector']} "
        f"with another vector (compared bit for bit), {chk['wrong_payload']} with another payload; "
        f"{chk['queries']} exact searches ({chk['queries'] // 2} plain, {chk['queries'] // 2} "
        f"filtered) against numpy brute force over the final data: {chk['same']} identical, "
        f"{chk['near_tie']} near-ties, {chk['mismatch']} wrong.",
        "",
        "Raw figures, per-second counts and memory samples: `bench/results/load.json`.",
    ]
    return "\n".join(lines)
