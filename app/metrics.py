"""Prometheus metrics: one registry per app, served at ``GET /metrics``.

* ``innerspace_http_requests_total{method,route,status}`` and
  ``innerspace_http_request_duration_seconds{method,route}``: ``route`` is the route template
  (``/collections/{name}/search``), never the raw path, so labels stay few; unmatched paths
  are ``<unmatched>``. A streamed response (job events) counts until its stream ends.
* ``innerspace_search_stage_duration_seconds{stage}``: stages of a search, observed through
  :func:`stage` / :func:`observe_stage`, which any code running inside a request may call
  (the current request's registry is found through a context variable; outside a request
  they do nothing). The search routes report ``prepare`` (validation, text encoding),
  ``execute`` (the scan and merge, ``took_ms``) and ``respond`` (building the response).
* ``innerspace_jobs{state}``, ``innerspace_collection_points{collection}`` (and indexed points,
  segments, bytes in memory and on disk), ``innerspace_vector_memory_bytes``,
  ``innerspace_memory_budget_bytes``, ``innerspace_ready``, ``innerspace_rate_limited_total``,
  ``innerspace_recall{collection,pipeline,k}`` and ``innerspace_recall_samples`` (the recall
  sampler, :mod:`app.pipeline.quality`), plus the standard ``process_*`` (resident memory,
  CPU, open fds) and ``python_*`` metrics.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from app.service import SearchService

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "<unmatched>"
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# ``*_created`` samples double the exposition and Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_current: ContextVar[Metrics | None] = ContextVar("innerspace_metrics", default=None)


class Metrics:
    """The app's registry and the instruments the middleware and routes record into."""

    def __init__(
        self,
        service: Callable[[], SearchService | None] = lambda: None,
        memory_budget: int | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "innerspace_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "innerspace_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "innerspace_http_requests_in_flight", "Requests being served now.", registry=r
        )
        self.search_stage = Histogram(
            "innerspace_search_stage_duration_seconds",
            "Time spent in each stage of a search request.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "innerspace_rate_limited",
            "Requests refused with 429 by the per-key rate limit.",
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        r.register(_ServiceCollector(service, memory_budget))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status == 429:
            self.rate_limited.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def observe_stage(name: str, seconds: float) -> None:
    """Record ``seconds`` spent in search stage ``name`` (no-op outside a request)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.search_stage.labels(name).observe(max(0.0, seconds))


@contextmanager
def stage(name: str) -> Iterator[None]:
    """``with stage("scan"): ...`` times the block as search stage ``name``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        observe_stage(name, time.perf_counter() - t0)


class _ServiceCollector(Collector):
    """Gauges read from the service at scrape time."""

    def __init__(self, service: Callable[[], SearchService | None], budget: int | None) -> None:
        self.service, self.budget = service, budget

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        svc = self.service()
        ready = GaugeMetricFamily("innerspace_ready", "1 once every collection is loaded.")
        ready.add_metric([], 1.0 if svc is not None and svc.ready.is_set() else 0.0)
        yield ready
        if self.budget is not None:
            yield GaugeMetricFamily(
                "innerspace_memory_budget_bytes",
                "INNERSPACE_MEMORY_BUDGET_BYTES: bound on vectors and indexes in memory.",
                value=float(self.budget),
            )
        if svc is None:
            return
        yield from _collections(svc)
        yield _jobs(svc)
        yield from _recall(svc)


def _collections(svc: SearchService) -> Iterator[Metric]:
    families = {
        "count": GaugeMetricFamily(
            "innerspace_collection_points", "Live points per collection.", labels=["collection"]
        ),
        "indexed_count": GaugeMetricFamily(
            "innerspace_collection_indexed_points",
            "Points in sealed segments per collection (the rest is the exact tail).",
            labels=["collection"],
        ),
        "segments": GaugeMetricFamily(
            "innerspace_collection_segments",
            "Sealed segments per collection.",
            labels=["collection"],
        ),
        "bytes_in_memory": GaugeMetricFamily(
            "innerspace_collection_memory_bytes",
            "Bytes of vectors and indexes held in memory per collection.",
            labels=["collection"],
        ),
        "bytes_on_disk": GaugeMetricFamily(
            "innerspace_collection_disk_bytes",
            "Bytes on disk per collection.",
            labels=["collection"],
        ),
    }
    total = 0.0
    if svc.ready.is_set():
        try:
            infos = svc.list_collections()
        except Exception:  # a collection mid-delete: skip this scrape's collection gauges
            log.debug("collection gauges skipped", exc_info=True)
            infos = []
        for info in infos:
            for field, family in families.items():
                family.add_metric([str(info["name"])], float(info[field]))
            total += float(info["bytes_in_memory"])
    yield from families.values()
    yield GaugeMetricFamily(
        "innerspace_vector_memory_bytes",
        "Bytes of vectors and indexes in memory, all collections (what the budget bounds).",
        value=total,
    )


def _jobs(svc: SearchService) -> Metric:
    family = GaugeMetricFamily("innerspace_jobs", "Background jobs by state.", labels=["state"])
    counts = dict.fromkeys(JOB_STATES, 0)
    db = Path(svc.settings.data_dir) / "catalog.sqlite"
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            for state, n in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                counts[str(state)] = int(n)
        finally:
            conn.close()
    except sqlite3.Error:
        log.debug("job counts unavailable", exc_info=True)
    for state, n in counts.items():
        family.add_metric([state], float(n))
    return family


class MetricsMiddleware:
    """Counts and times every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _current.set(self.metrics)
        status = 500
        t0 = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            elapsed = time.perf_counter() - t0
            self.metrics.observe_request(scope.get("method", "?"), route, status, elapsed)
            _current.reset(token)


def _recall(svc: SearchService) -> Iterator[Metric]:
    """The recall sampler's figures (``INNERSPACE_RECALL_SAMPLE_RATE``)."""
    sampler = svc.pipelines.sampler
    recall = GaugeMetricFamily(
        "innerspace_recall",
        "Mean recall@k of sampled live queries against exact search, latest samples.",
        labels=["collection", "pipeline", "k"],
    )
    samples = GaugeMetricFamily(
        "innerspace_recall_samples",
        "Live queries re-run exactly by the recall sampler since start.",
        labels=["collection", "pipeline"],
    )
    for f in sampler.figures():
        if f.recall is not None:
            recall.add_metric([f.collection, f.pipeline, str(f.k)], f.recall)
        samples.add_metric([f.collection, f.pipeline], float(f.samples))
    yield recall
    yield samples
