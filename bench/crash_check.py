"""The crash campaign's oracle: what was written, and whether a recovered store is consistent
with it. Pure functions over plain data, so tests can feed them hand-made states.

Writers record every write in a :class:`Ledger` before sending it and acknowledge it when the
server answers 2xx. Each point id belongs to one writer, which stops at its first failed
request, so per id the acknowledged writes are totally ordered and at most one unacknowledged
write follows them. After a crash a point must therefore hold its last acknowledged state or
the state of that one pending write, and a pending batch must be applied whole or not at all.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

PointId = int | str
#: A stored point: its float32 vector bytes (``b""`` when the store returned none) and its
#: payload as canonical JSON. ``None`` as a state means "absent" (never written or deleted).
Row = tuple[bytes, str]
State = Row | None
MAX_DETAILS = 20


def make_row(vector: Any, payload: Any) -> Row:
    vec = b"" if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
    return vec, json.dumps(payload, sort_keys=True)


@dataclass
class Op:
    """One request: the state it gives each of its points."""

    kind: Literal["upsert", "delete"]
    states: dict[PointId, State]


class Ledger:
    """Every write of a trial: the acknowledged state per id, and the writes still pending."""

    def __init__(self) -> None:
        self.acked: dict[PointId, State] = {}
        self.pending: dict[int, Op] = {}
        self.acked_writes = 0  # point upserts acknowledged, replacements included
        self.acked_deletes = 0
        self._lock = threading.Lock()
        self._next = 0

    def begin(self, op: Op) -> int:
        with self._lock:
            self._next += 1
            self.pending[self._next] = op
            return self._next

    def ack(self, token: int) -> None:
        with self._lock:
            op = self.pending.pop(token)
            self.acked.update(op.states)
            if op.kind == "upsert":
                self.acked_writes += len(op.states)
            else:
                self.acked_deletes += len(op.states)

    def never_sent(self, token: int) -> None:
        """The request never reached the server (connection refused): it cannot apply."""
        with self._lock:
            del self.pending[token]


@dataclass
class CheckResult:
    """Counts of one check; every field after ``unacked_deletes_skipped`` must stay 0."""

    acked_live: int = 0  # ids whose last acknowledged write left them present: all checked
    unacked_present: int = 0  # points of pending upserts found with their new vector
    unacked_absent: int = 0  # ... found in their previous state
    unacked_deletes_applied: int = 0
    unacked_deletes_skipped: int = 0
    lost: int = 0  # acknowledged point missing, or present without its vector
    garbled: int = 0  # present, but matching no state it may be in (vector, payload)
    resurrected: int = 0  # acknowledged delete undone
    phantom: int = 0  # present, never written
    torn_batches: int = 0  # pending batch partly applied
    problems: list[str] = field(default_factory=list)

    BAD = ("lost", "garbled", "resurrected", "phantom", "torn_batches")

    @property
    def ok(self) -> bool:
        return not self.problems and all(getattr(self, f) == 0 for f in self.BAD)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_DETAILS:
            self.problems.append(text)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(state: State) -> str:
    if state is None:
        return "absent"
    vec, payload = state
    return f"payload {payload}, {len(vec) // 4} floats" if vec else f"payload {payload}, NO vector"


def check_state(ledger: Ledger, observed: dict[PointId, Row]) -> CheckResult:
    """Compare what a recovered server holds (``observed``: every present point) with what
    ``ledger`` says may be there."""
    res = CheckResult()
    pending_of: dict[PointId, Op] = {}
    for op in ledger.pending.values():
        for pid in op.states:
            if pid in pending_of:  # writers own their ids and stop at a failure
                raise ValueError(f"id {pid!r} has two pending writes: the ledger is misused")
            pending_of[pid] = op
    for pid in ledger.acked.keys() | pending_of.keys() | observed.keys():
        acked, obs = ledger.acked.get(pid), observed.get(pid)
        pending = pending_of.get(pid)
        res.acked_live += acked is not None
        if obs == acked or (pending is not None and obs == pending.states[pid]):
            continue
        if pid not in ledger.acked and pending is None:
            res.phantom += 1
        elif acked is not None and (obs is None or not obs[0]):
            res.lost += 1  # gone, or only its payload is left
        elif acked is None and obs is not None and _well_formed(pid, obs):
            res.resurrected += 1
        else:
            res.garbled += 1
        res.problem(f"id {pid!r}: found {_describe(obs)}; acked {_describe(acked)}")
    for op in ledger.pending.values():
        _classify_pending(op, ledger, observed, res)
    return res


def _well_formed(pid: PointId, obs: Row) -> bool:
    """A whole row of ``pid`` (a vector, and a payload naming it): an old version, not junk."""
    vec, payload = obs
    return bool(vec) and json.loads(payload).get("id") == pid


def _classify_pending(
    op: Op, ledger: Ledger, observed: dict[PointId, Row], res: CheckResult
) -> None:
    new = old = 0
    for pid, state in op.states.items():
        before, obs = ledger.acked.get(pid), observed.get(pid)
        if state == before:
            continue  # e.g. deleting an absent id: says nothing about the batch
        new += obs == state
        old += obs == before
    if new and old:
        res.torn_batches += 1
        res.problem(f"pending {op.kind} of {len(op.states)} points: {new} applied, {old} not")
    if op.kind == "upsert":
        res.unacked_present += new
        res.unacked_absent += old
    else:
        res.unacked_deletes_applied += new
        res.unacked_deletes_skipped += old


def check_search(
    observed: dict[PointId, Row], query: np.ndarray, k: int, hits: list[dict[str, Any]]
) -> list[str]:
    """Problems with ``hits`` as an exact top-``k`` by inner product over ``observed``: every
    hit present with its true score, descending, none missing above the k-th best score."""
    ids = [pid for pid, (vec, _) in observed.items() if vec]
    if not ids:
        return [] if not hits else [f"{len(hits)} hits from an empty collection"]
    x = np.stack([np.frombuffer(observed[pid][0], dtype=np.float32) for pid in ids])
    scores = x.astype(np.float64) @ query.astype(np.float64)
    true = dict(zip(ids, scores.tolist(), strict=True))
    kth = float(np.sort(scores)[::-1][min(k, len(ids)) - 1])
    tol = 1e-4 * (1.0 + float(np.abs(scores).max()))
    out = []
    if len(hits) != min(k, len(ids)):
        out.append(f"{len(hits)} hits, expected {min(k, len(ids))}")
    got = [h["id"] for h in hits]
    if len(set(got)) != len(got):
        out.append(f"duplicate ids in hits {got}")
    for h in hits:
        if h["id"] not in true:
            out.append(f"hit {h['id']!r} is not a stored point")
        elif abs(h["score"] - true[h["id"]]) > tol:
            out.append(f"hit {h['id']!r} scored {h['score']}, true {true[h['id']]}")
        elif true[h["id"]] < kth - tol:
            out.append(f"hit {h['id']!r} ({true[h['id']]}) is below the true k-th {kth}")
    if any(a["score"] < b["score"] - tol for a, b in zip(hits, hits[1:], strict=False)):
        out.append("hits are not in descending score order")
    return out
