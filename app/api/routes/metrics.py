"""Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import MetricsKey
from app.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: MetricsKey) -> Response:
    """Prometheus text format; open unless ``INNERSPACE_METRICS_AUTH=true``."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)
