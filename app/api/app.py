"""The FastAPI application: routers, the one error handler, middlewares, lifespan.

Middlewares, outermost first: :class:`~app.logs.RequestLog` (request ids, access log),
:class:`~app.metrics.MetricsMiddleware` (request counts and latencies), :class:`BodyLimit`
(413). Authentication, roles and rate limits are route dependencies (:mod:`app.api.deps`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app as app_pkg
from app.api.routes import collections, encode, health, jobs, keys, metrics, points, search
from app.api.routes import query as query_routes
from app.api.routes import snapshots as snapshot_routes
from app.auth import Authenticator
from app.config import Settings, get_settings
from app.errors import BadRequest, InnerspaceError, InvalidInput, PayloadTooLarge
from app.logs import RequestLog
from app.metrics import Metrics, MetricsMiddleware
from app.ratelimit import RateLimiter
from app.service import SearchService
from app.store.keys import KeyStore

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _error(exc: InnerspaceError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers() or None)


async def _on_domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InnerspaceError)
    return _error(exc)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(BadRequest("request body is not valid JSON"))
    details = [
        {"loc": _loc(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]
    first = details[0] if details else {"loc": "body", "message": "invalid request"}
    message = f"{first['loc']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more problems)"
    return _error(InvalidInput(message, details))


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = {"error": code, "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": "internal", "message": f"internal error: {type(exc).__name__}"}
    return JSONResponse(body, status_code=500)


#: Streams to disk under its own, larger limit (``max_upload_bytes``).
UPLOAD_ROUTE = re.compile(r"^/collections/[^/]+/import/upload$")


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before the route parses them."""

    def __init__(self, app: ASGIApp, limit: int, exempt: re.Pattern[str]) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._reject(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): buffer up to the limit, then replay.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(
            f"request body is over the {self.limit}-byte limit (INNERSPACE_MAX_BODY_BYTES)"
        )
        await _error(exc)(scope, receive, send)


def create_app(settings: Settings | None = None, service: SearchService | None = None) -> FastAPI:
    """Build the app; the service opens in the background so ``/healthz`` answers at once and
    ``/readyz`` turns 200 when every collection is loaded."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or SearchService(settings)
        keystore = KeyStore(Path(settings.data_dir) / "catalog.sqlite")
        auth = Authenticator(settings, keystore)
        log.info(auth.describe(settings))
        if auth.required and settings.admin_key is None and keystore.active_count() == 0:
            log.warning(
                "API keys are required but none exist: create one with "
                "`innerspace keys create --role admin --data-dir %s`",
                settings.data_dir,
            )
        app.state.service, app.state.keys, app.state.auth = svc, keystore, auth
        loader = threading.Thread(target=svc.open, name="innerspace-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            loader.join()
            svc.close()
            keystore.close()

    api = FastAPI(
        title="Innerspace",
        version=app_pkg.__version__,
        description="Maximum inner product search over durable collections.",
        lifespan=lifespan,
    )
    api.add_exception_handler(InnerspaceError, _on_domain)
    api.add_exception_handler(RequestValidationError, _on_validation)
    api.add_exception_handler(StarletteHTTPException, _on_http)
    api.add_exception_handler(Exception, _on_unexpected)
    api.state.settings = settings
    api.state.limiter = RateLimiter(settings.read_rate_limit, settings.write_rate_limit)
    budget = settings.memory_budget_bytes
    api.state.metrics = Metrics(
        lambda: getattr(api.state, "service", None), None if budget is None else int(budget)
    )
    # Added innermost first: RequestLog ends up outermost.
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes, exempt=UPLOAD_ROUTE)
    api.add_middleware(MetricsMiddleware, metrics=api.state.metrics)
    api.add_middleware(RequestLog)
    for module in (health, metrics, collections, points, search, jobs, encode, keys):
        api.include_router(module.router)
    api.include_router(query_routes.router)
    api.include_router(snapshot_routes.router)
    return api
