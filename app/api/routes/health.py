"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServiceDep
from app.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(service: ServiceDep) -> Health | JSONResponse:
    """The catalog is open and every collection is loaded."""
    if not service.ready.is_set():
        status = "failed: " + service.load_error if service.load_error else "loading"
        return JSONResponse({"status": status}, status_code=503)
    return Health(status="ready", collections=len(service.list_collections()))
