"""Randomized ``kill -9`` crash campaign against a real ``innerspace serve`` (issue #11).

    python -m bench.crash [--trials 20] [--scenario upsert|build|compact|all|seal-fault]
        [--seed 0] [--out bench/results/crash.json] [--tiny] [--orphans kill|leave]

A trial (``--seed S --trials 1`` replays trial S's data and choices; the kill moment is wall
clock) starts a server on a temporary data directory, runs 2-5 writer threads, SIGKILLs the
server at a random moment (``build``/``compact``: while that job runs), restarts it and checks
every acknowledged write, every unacknowledged one (applied whole or not at all), counts and
exact search (:mod:`bench.crash_check`); then waits for the interrupted job, checks again,
writes, kills once more and checks a third time. ``seal-fault`` (not in ``all``) also makes
seals fail for a while, as a full disk or a late orphaned build worker would, before the kill.
``lost``, ``garbled``, ``resurrected``, ``phantom`` and ``torn_batches`` must all be 0; a
failed trial keeps its data directory and server log for a post-mortem.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.crash_check import CheckResult, Ledger, Op, PointId
from bench.crash_trial import (
    BUILD_SPEC,
    COMPACT_SPECS,
    DIM,
    ROOT,
    Config,
    Writers,
    await_kill,
    await_log,
    job_outcome,
    kill_workers,
    point,
    server,
    squat_next_segment,
    upsert_acked,
    verify,
    worker_pids,
)
from bench.report import git_commit, write_json
from tests.support import Server

SCENARIOS = ("upsert", "build", "compact")
#: Fault injection beyond ``kill -9``, run only when named: seals fail for a while, then
#: succeed again, then the server is killed.
EXTRA = ("seal-fault",)
COUNTERS = [f for f in CheckResult.__dataclass_fields__ if f != "problems"]
Rec = dict[str, Any]  # a trial's record, as it goes into the JSON


def run_trial(
    scenario: str, seed: int, work: Path, cfg: Config, job_guess_s: float
) -> dict[str, Any]:
    """One trial; returns its record (``ok`` false with ``problems`` when anything is off)."""
    rng = np.random.default_rng(seed)
    data = work / "data"
    work.mkdir(parents=True, exist_ok=True)
    srv = server(data, rng, scenario)
    rec: Rec = {"scenario": scenario, "seed": seed, "checks": {}, "problems": []}
    t0 = time.perf_counter()
    try:
        _trial(scenario, rng, srv, cfg, job_guess_s, rec)
    except Exception:  # a server that does not come back, an HTTP error, ...: a failed trial
        rec["problems"].append(traceback.format_exc(limit=4)[-1500:])
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill()
        kill_workers(data)
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    for name, check in rec["checks"].items():
        rec["problems"] += [f"{name}: {p}" for p in check["problems"]]
        rec["problems"] += [f"{name}: {f}={check[f]}" for f in CheckResult.BAD if check[f]]
    rec["ok"] = not rec["problems"]
    if not rec["ok"]:
        logs = sorted(work.glob("server-*.log"))
        rec["server_log_tail"] = logs[-1].read_text(errors="replace")[-3000:] if logs else ""
        rec["data_dir"] = str(data)
    return rec


def _trial(
    scenario: str, rng: np.random.Generator, srv: Server, cfg: Config, guess: float, rec: Rec
) -> None:
    ledger = Ledger()
    spec = str(rng.choice(COMPACT_SPECS)) if scenario == "compact" else "Flat"
    nw = int(rng.integers(2, 6))
    rec.update(writers=nw, spec=spec, env={k: v for k, v in srv.env.items() if k != "PYTHONPATH"})
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        c.post("/collections", json={"name": "c", "dim": DIM, "index": spec}).raise_for_status()
        owned = _preload(c, scenario, rng, ledger, cfg, nw)
        writers = Writers(srv.url, ledger, rng, cfg.max_batch)
        writers.start(owned)
        t0 = time.perf_counter()
        job_id = _until_kill(c, scenario, rng, srv, guess, rec)
    srv.kill()
    rec["kill_after_s"] = round(time.perf_counter() - t0, 3)
    writers.join()
    if cfg.orphans == "kill":
        rec["orphans_killed"] = kill_workers(srv.data_dir)
    else:
        rec["orphans_alive_at_restart"] = len(worker_pids(srv.data_dir))
    rec["problems"] += writers.errors  # a live server must accept every valid write
    rec["acked_writes"], rec["acked_deletes"] = ledger.acked_writes, ledger.acked_deletes
    rec["pending_at_kill"] = len(ledger.pending)
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        rec["checks"]["after_restart"] = verify(c, ledger, rng).as_dict()
        if job_id is not None:
            job_outcome(c, job_id, cfg, rec)
            rec["checks"]["after_job"] = verify(c, ledger, rng).as_dict()
        x = rng.standard_normal((5, DIM), dtype=np.float32)  # the log still takes writes
        upsert_acked(c, ledger, [point(f"final-{i}", v, {"n": -2}) for i, v in enumerate(x)])
    if cfg.second_kill:  # what recovery and the job left behind survives a crash too
        srv.kill()
        kill_workers(srv.data_dir)
        srv.start()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            rec["checks"]["after_second_kill"] = verify(c, ledger, rng).as_dict()
    srv.stop()


def _preload(
    c: httpx.Client, scenario: str, rng: np.random.Generator, ledger: Ledger, cfg: Config, nw: int
) -> list[list[PointId]]:
    """Sealed points for the job scenarios (``compact``: with dead rows, deleted and
    replaced points); returns each writer's share of them, to replace and delete."""
    owned: list[list[PointId]] = [[] for _ in range(nw)]
    if scenario not in ("build", "compact"):
        return owned
    n = int(rng.integers(*cfg.preload))
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    upsert_acked(c, ledger, [point(i, v, {"w": i % nw, "n": 0}) for i, v in enumerate(x)])
    for i in range(n):
        owned[i % nw].append(i)
    c.post("/collections/c/flush").raise_for_status()
    if scenario == "compact":
        gone = rng.choice(n, n // 4, replace=False).tolist()
        token = ledger.begin(Op("delete", dict.fromkeys(gone)))
        c.post("/collections/c/points/delete", json={"ids": gone}).raise_for_status()
        ledger.ack(token)
        again = rng.choice(n, n // 8, replace=False).tolist()
        y = rng.standard_normal((len(again), DIM), dtype=np.float32)
        pts = [point(i, v, {"w": i % nw, "n": -1}) for i, v in zip(again, y, strict=True)]
        upsert_acked(c, ledger, pts)
        c.post("/collections/c/flush").raise_for_status()
    return owned


def _until_kill(
    c: httpx.Client, scenario: str, rng: np.random.Generator, srv: Server, guess: float, rec: Rec
) -> str | None:
    """Let the writers run until the moment to kill; returns the job started meanwhile."""
    if scenario == "upsert":
        time.sleep(rng.uniform(0.2, 3.0))
        return None
    if scenario == "seal-fault":
        time.sleep(rng.uniform(0.2, 1.0))
        squatter = squat_next_segment(srv.data_dir)
        rec["seal_failures"] = await_log(srv, "sealing collection c failed", 20.0)
        squatter.unlink()  # the fault clears; later seals succeed
        squatter.parent.rmdir()
        time.sleep(rng.uniform(0.5, 2.0))
        return None
    time.sleep(rng.uniform(0.0, 0.5))  # writers under way before the job starts
    if scenario == "build":
        r = c.post("/collections/c/index", json={"spec": BUILD_SPEC})
    else:
        r = c.post("/collections/c/compact")
    job_id: str = r.raise_for_status().json()["id"]
    rec["kill_mode"] = str(rng.choice(["timed", "end-of-adding"]))
    job = await_kill(c, job_id, rec["kill_mode"], rng.uniform(0.0, 1.3 * guess))
    rec["kill_phase"] = f"{job['state']}/{job['phase']}"
    rec["worker_alive_at_kill"] = bool(worker_pids(srv.data_dir))
    return job_id


def summarize(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over trial records: counters from every check summed, the crash-time figures
    (unacknowledged writes seen applied or not) from the first check after the kill."""
    out: dict[str, Any] = {"trials": len(recs), "failed_trials": sum(not r["ok"] for r in recs)}
    out["acked_writes"] = sum(r.get("acked_writes", 0) for r in recs)
    out["acked_deletes"] = sum(r.get("acked_deletes", 0) for r in recs)
    first = [r["checks"]["after_restart"] for r in recs if "after_restart" in r["checks"]]
    for f in COUNTERS:
        if f in CheckResult.BAD:
            out[f] = sum(ch[f] for r in recs for ch in r["checks"].values())
        else:
            out[f] = sum(ch[f] for ch in first)
    out["kill_phases"] = _histogram(r.get("kill_phase") for r in recs)
    out["job_states"] = _histogram((r.get("job") or {}).get("state") for r in recs)
    out["wall_s"] = round(sum(r["wall_s"] for r in recs), 1)
    return out


def _histogram(values: Any) -> dict[str, int]:
    hist: dict[str, int] = {}
    for v in values:
        if v is not None:
            hist[v] = hist.get(v, 0) + 1
    return dict(sorted(hist.items()))


def run_campaign(
    scenarios: list[str], trials: int, seed: int = 0, cfg: Config | None = None, log: Any = None
) -> dict[str, Any]:
    """``trials`` trials of each scenario; the JSON summary (see the module docstring)."""
    cfg = cfg or Config()
    t0 = time.perf_counter()
    recs: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="innerspace-crash-"))
    for scenario in scenarios:
        durations: list[float] = []
        for t in range(trials):
            guess = statistics.median(durations) if durations else 2.0
            tdir = work / f"{scenario}-{seed + t}"
            rec = run_trial(scenario, seed + t, tdir, cfg, guess)
            if "job_s" in rec:
                durations.append(rec["job_s"])
            if rec["ok"]:
                shutil.rmtree(tdir, ignore_errors=True)
            recs.append(rec)
            if log:
                log(
                    f"{scenario} seed={seed + t} ok={rec['ok']} wall={rec['wall_s']}s "
                    f"acked={rec.get('acked_writes')} kill={rec.get('kill_phase', '-')} "
                    f"job={(rec.get('job') or {}).get('state', '-')} problems={rec['problems'][:2]}"
                )
    if not any(work.iterdir()):
        work.rmdir()
    return {
        "commit": git_commit(),
        "app_dirty": _dirty(),
        "seed": seed,
        "trials_per_scenario": trials,
        "config": {"tiny": cfg.tiny, "orphans": cfg.orphans, "second_kill": cfg.second_kill},
        "totals": summarize(recs),
        "scenarios": {s: summarize([r for r in recs if r["scenario"] == s]) for s in scenarios},
        "failures": [r for r in recs if not r["ok"]],
        "seeds": {s: [r["seed"] for r in recs if r["scenario"] == s] for s in scenarios},
        "trials": [
            {k: v for k, v in r.items() if k not in ("checks", "server_log_tail")} for r in recs
        ],
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def _dirty() -> bool:
    """Whether the code under test (app/, index/) differs from the recorded commit."""
    r = subprocess.run(
        ["git", "status", "--porcelain", "--", "app", "index"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return r.returncode != 0 or bool(r.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="trials per scenario")
    ap.add_argument("--scenario", choices=[*SCENARIOS, *EXTRA, "all"], default="all")
    ap.add_argument("--seed", type=int, default=0, help="trial t of a scenario uses seed + t")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crash.json")
    ap.add_argument("--tiny", action="store_true", help="small collections (tests)")
    ap.add_argument(
        "--orphans",
        choices=["kill", "leave"],
        default="kill",
        help="SIGKILL build workers the dead server leaves behind, or let them run",
    )
    args = ap.parse_args(argv)
    cfg = Config.small() if args.tiny else Config()
    cfg.orphans = args.orphans
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    result = run_campaign(scenarios, args.trials, args.seed, cfg, log=print)
    write_json(args.out, result)
    tot = result["totals"]
    print(
        f"wrote {args.out}: {tot['trials']} trials, {tot['acked_writes']} acked writes, "
        f"lost={tot['lost']} garbled={tot['garbled']} failed_trials={tot['failed_trials']}"
    )
    return 0 if tot["failed_trials"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
