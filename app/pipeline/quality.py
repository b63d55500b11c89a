"""Measured quality: a background recall sampler over live queries, and recall@k, which it and
``POST /collections/{name}/evaluate`` share (nDCG is :func:`encoders.evaluation.ndcg`).

The sampler re-runs a random ``rate`` fraction of live queries exactly (brute force, same
filter) on one background thread and keeps, per collection and pipeline, the recall@k of what
was returned against that exact answer over the last :data:`WINDOW` samples. A query is
re-run shortly after it was answered, so a write landing in between can cost a little
measured recall; the sampler never delays the query itself, and when its queue is full a
sample is dropped (counted) rather than queued without bound.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from app.pipeline.base import Candidate, Context
from app.pipeline.generators import exact_top

__all__ = [
    "WINDOW",
    "Figure",
    "Recall",
    "RecallSampler",
    "recall_at",
]

WINDOW = 1000


@dataclass
class Recall:
    """Recall@k samples of one (collection, pipeline)."""

    k: int
    samples: int = 0
    window: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    @property
    def mean(self) -> float:
        return sum(self.window) / len(self.window) if self.window else float("nan")


class Figure(NamedTuple):
    collection: str
    pipeline: str
    k: int
    samples: int
    window: int
    recall: float | None


class RecallSampler:
    """Samples ``rate`` of the queries offered; see the module docstring."""

    def __init__(self, rate: float, seed: int | None = None, max_pending: int = 64) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.rate = rate
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="recall-sampler")
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()
        self.max_pending = max_pending
        self.dropped = 0
        self.stats: dict[tuple[str, str], Recall] = {}

    def offer(
        self, pipeline: str, context: Callable[[], Context | None], hits: list[Candidate], k: int
    ) -> bool:
        """Maybe schedule an exact re-run of this query; True when it was scheduled.
        ``context`` builds the query's context and is called only when the coin says sample,
        so unsampled queries pay for nothing but the coin."""
        if self.rate <= 0:
            return False
        with self._lock:
            if self._rng.random() >= self.rate:
                return False
        ctx = context()
        if ctx is None or ctx.vector is None or ctx.col.multivector:
            return False
        got = [pid for pid, _ in hits]
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                return False
            fut = self._pool.submit(self._measure, pipeline, ctx, got, k)
            self._pending.add(fut)
        fut.add_done_callback(self._done)
        return True

    def _done(self, fut: Future[None]) -> None:
        with self._lock:
            self._pending.discard(fut)

    def _measure(self, pipeline: str, ctx: Context, got: list[int | str], k: int) -> None:
        truth = [pid for pid, _ in exact_top(ctx, k)]
        value = recall_at(got, set(truth), k) if truth else 1.0
        with self._lock:
            rec = self.stats.setdefault((ctx.col.config.name, pipeline), Recall(k))
            rec.k = k
            rec.samples += 1
            rec.window.append(value)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for every scheduled re-run (tests, shutdown)."""
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            fut.result(timeout)

    def figures(self, collection: str | None = None) -> list[Figure]:
        """Consistent copies of the figures, sorted, of one collection or all."""
        with self._lock:
            return sorted(
                Figure(c, p, r.k, r.samples, len(r.window), r.mean if r.window else None)
                for (c, p), r in self.stats.items()
                if collection is None or c == collection
            )

    def forget(self, collection: str) -> None:
        with self._lock:
            for key in [key for key in self.stats if key[0] == collection]:
                del self.stats[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def recall_at(got: Sequence[int | str], relevant: AbstractSet[int | str], k: int) -> float:
    """Share of ``relevant`` found in the first ``k`` of ``got`` (of at most ``k`` relevant).

    >>> recall_at([1, 2, 3], {1, 3, 9}, 2)
    0.5
    """
    if not relevant:
        return 0.0
    return len(set(got[:k]) & relevant) / min(len(relevant), k)
