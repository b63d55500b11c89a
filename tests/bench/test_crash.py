"""The ``kill -9`` crash campaign (``bench.crash``): its oracle catches every kind of damage,
a short campaign passes on every default run, and the full one (20 trials per scenario) is
``slow``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import Server

from bench.crash import run_campaign
from bench.crash_check import (
    CheckResult,
    Ledger,
    Op,
    PointId,
    Row,
    check_search,
    check_state,
    make_row,
)
from bench.crash_trial import ROOT, Config, point, upsert_acked, verify

BAD = CheckResult.BAD


def _ledger() -> tuple[Ledger, dict[PointId, Row]]:
    """Three acknowledged points (one later deleted) and the store that matches them."""
    ledger = Ledger()
    ids: tuple[PointId, ...] = (1, 2, "3")
    rows = {pid: make_row(np.full(4, k, np.float32), {"id": pid}) for k, pid in enumerate(ids, 1)}
    ledger.ack(ledger.begin(Op("upsert", dict(rows))))
    ledger.ack(ledger.begin(Op("delete", {2: None})))
    return ledger, {1: rows[1], "3": rows["3"]}


def test_check_state_passes_a_consistent_store() -> None:
    ledger, store = _ledger()
    res = check_state(ledger, store)
    assert res.ok and res.acked_live == 2, res
    assert ledger.acked_writes == 3 and ledger.acked_deletes == 1


@pytest.mark.parametrize(
    "damage, field",
    [
        (lambda s: s.pop(1), "lost"),
        (lambda s: s.update({1: (b"", s[1][1])}), "lost"),  # payload kept, vector gone
        (lambda s: s.update({1: make_row(np.zeros(4), {"id": 1})}), "garbled"),
        (lambda s: s.update({1: make_row(np.full(4, 1.0), {"id": 9})}), "garbled"),
        (lambda s: s.update({2: make_row(np.full(4, 2.0), {"id": 2})}), "resurrected"),
        (lambda s: s.update({7: make_row(np.ones(4), {"id": 7})}), "phantom"),
        (lambda s: s.update({3: s["3"]}), "phantom"),  # 3 and "3" are different points
    ],
)
def test_check_state_catches_damage(
    damage: Callable[[dict[PointId, Row]], object], field: str
) -> None:
    ledger, store = _ledger()
    damage(store)
    res = check_state(ledger, store)
    assert not res.ok and getattr(res, field) == 1, res
    assert sum(getattr(res, f) for f in BAD) == 1 and res.problems


def test_pending_batches_are_all_or_nothing() -> None:
    ledger, store = _ledger()
    new: dict[PointId, Row] = {
        i: make_row(np.full(4, 10 + i, np.float32), {"id": i}) for i in (1, 5, 6)
    }
    ledger.begin(Op("upsert", dict(new)))
    ledger.begin(Op("delete", {"3": None}))
    assert check_state(ledger, store).unacked_absent == 3  # neither applied: fine
    applied = {**store, **new}
    del applied["3"]
    res = check_state(ledger, applied)
    assert res.ok and res.unacked_present == 3 and res.unacked_deletes_applied == 1, res
    torn = {**store, 5: new[5]}  # one point of the three-point batch
    res = check_state(ledger, torn)
    assert res.torn_batches == 1 and not res.ok, res


def test_check_search_wants_the_exact_top_k() -> None:
    x = np.random.default_rng(0).standard_normal((50, 8), dtype=np.float32)
    store: dict[PointId, Row] = {i: make_row(v, {"id": i}) for i, v in enumerate(x)}
    q = x[3]
    s = x.astype(np.float64) @ q.astype(np.float64)
    top = np.argsort(-s)[:5]
    hits = [{"id": int(i), "score": float(s[i])} for i in top]
    assert check_search(store, q, 5, hits) == []
    assert check_search(store, q, 5, hits[:4])  # one short
    assert check_search(store, q, 5, [*hits[:4], {"id": int(np.argsort(-s)[9]), "score": 0}])
    worse = [*hits[:4], {"id": int(np.argsort(-s)[9]), "score": float(s[np.argsort(-s)[9]])}]
    assert any("below the true k-th" in p for p in check_search(store, q, 5, worse))
    assert check_search(store, q, 5, hits[::-1])  # order


def test_verify_catches_a_lost_acknowledged_write(tmp_path: Path) -> None:
    """End to end: tear the last acknowledged WAL record (as a lying fsync would) and the
    campaign's check reports exactly that batch lost."""
    env = {"PYTHONPATH": str(ROOT), "INNERSPACE_SEAL_THRESHOLD": "100000"}
    srv = Server(tmp_path / "data", **env).start()
    ledger = Ledger()
    x = np.random.default_rng(1).standard_normal((30, 32), dtype=np.float32)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        c.post("/collections", json={"name": "c", "dim": 32}).raise_for_status()
        for b in range(3):
            pts = [point(i, x[i], {"b": b}) for i in range(b * 10, b * 10 + 10)]
            upsert_acked(c, ledger, pts)
    srv.kill()
    wal = sorted((tmp_path / "data" / "collections" / "c" / "wal").glob("*.wal"))[-1]
    wal.write_bytes(wal.read_bytes()[:-1])
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        res = verify(c, ledger, np.random.default_rng(2))
    srv.stop()
    assert res.lost == 10 and res.acked_live == 30 and not res.ok, res


def _assert_clean(result: dict[str, Any], trials: int) -> None:
    totals = result["totals"]
    assert totals["trials"] == trials and totals["failed_trials"] == 0, result["failures"]
    assert all(totals[f] == 0 for f in BAD), totals
    assert totals["acked_writes"] > 0 and totals["acked_live"] > 0


def test_campaign_short() -> None:
    """Two small trials: writers killed mid-upsert, and killed during a compaction job."""
    result = run_campaign(["upsert", "compact"], trials=1, seed=3, cfg=Config.small())
    _assert_clean(result, 2)
    assert result["totals"]["job_states"] == {"succeeded": 1}


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 60 trials of 10-30 s each
def test_campaign_full() -> None:
    result = run_campaign(["upsert", "build", "compact"], trials=20, seed=0)
    _assert_clean(result, 60)


@pytest.mark.slow
def test_seal_failure_loses_nothing() -> None:
    """Seals fail for a while (a squatted segment directory), then succeed, then kill -9."""
    result = run_campaign(["seal-fault"], trials=2, seed=0, cfg=Config.small())
    _assert_clean(result, 2)
