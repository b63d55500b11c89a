"""Per-key rate limits: one token bucket per (key, read|write), refilled continuously.

``INNERSPACE_READ_RATE_LIMIT`` / ``INNERSPACE_WRITE_RATE_LIMIT`` are requests per minute (Qdrant
strict-mode names). A bucket holds at most one minute's worth, so a key may burst up to its
per-minute limit and then proceeds at the steady rate. An empty bucket answers 429 with
``Retry-After``: whole seconds until one request's worth has refilled.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal

from app.errors import TooManyRequests

Kind = Literal["read", "write"]

#: Above this many buckets, full (idle) ones are dropped.
_PRUNE_AT = 10_000


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` tokens per second."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens, self.stamp = capacity, now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token; 0.0 on success, else the seconds until one is available."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Buckets for every caller; ``hit`` spends one request or raises 429."""

    def __init__(
        self,
        read_per_minute: int | None,
        write_per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits: dict[Kind, int | None] = {"read": read_per_minute, "write": write_per_minute}
        self.clock = clock
        self._buckets: dict[tuple[str, Kind], TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in self.limits.values())

    def hit(self, who: str, kind: Kind) -> None:
        limit = self.limits[kind]
        if limit is None:
            return
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((who, kind))
            if bucket is None:
                if len(self._buckets) >= _PRUNE_AT:
                    self._prune(now)
                bucket = self._buckets[(who, kind)] = TokenBucket(limit, limit / 60.0, now)
            wait = bucket.take(now)
        if wait > 0:
            raise TooManyRequests(
                f"rate limit of {limit} {kind} requests per minute reached; "
                f"retry in {math.ceil(wait)} s",
                math.ceil(wait),
                {"limit_per_minute": limit, "kind": kind},
            )

    def _prune(self, now: float) -> None:
        for key, b in list(self._buckets.items()):
            b.refill(now)
            if b.tokens >= b.capacity:
                del self._buckets[key]
