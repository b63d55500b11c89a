"""The FastAPI application: routers, the one error handler, middlewares, lifespan.

Middlewares, outermost first: :class:`~app.logs.RequestLog` (request ids, access log),
:class:`~app.metrics.MetricsMiddleware` (request counts and latencies), :class:`BodyLimit`
(413), :class:`ValidUnicode` (400 for a lone surrogate escaped in a JSON body).
Authentication, roles and rate limits are route dependencies (:mod:`app.api.deps`).
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
from app.api.schemas import ErrorBody
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


#: What the OpenAPI document says about errors: the one shape every 4xx has (in place of
#: FastAPI's default 422 body, which this app never sends).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The request was refused; `error` says why."}
}

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
        await self.app(scope, _replaying(b"".join(chunks), receive), send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(
            f"request body is over the {self.limit}-byte limit (INNERSPACE_MAX_BODY_BYTES)"
        )
        await _error(exc)(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an app after a middleware read the whole ``body``: the body as one
    message, then the client's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


#: A JSON escape of a UTF-16 surrogate, ``\ud800``-``\udfff`` (a literal first: fast to scan).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
#: A surrogate encoded as UTF-8 (not valid UTF-8, but ``json.loads`` decodes "surrogatepass").
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")


def unicode_problem(body: bytes) -> str | None:
    """Why JSON ``body`` would decode to strings with no UTF-8 form, or None.

    ``json.loads`` turns a lone surrogate (escaped, or raw in bytes it decodes with
    "surrogatepass", or in a UTF-16 body) into a ``str`` that orjson, SQLite, the tokenizers
    and the file system all refuse, deep inside whichever route got it: a 500.
    """
    if (nul := body.find(b"\x00")) >= 0:  # never in JSON as UTF-8 text; in UTF-16 it is
        return f"request body is not valid JSON as UTF-8 text (a NUL byte at {nul})"
    if (raw := _RAW_SURROGATE.search(body)) is not None:
        return f"request body is not valid UTF-8: an encoded surrogate at byte {raw.start()}"
    high = -1  # where an escaped high surrogate ends, while it waits for its low half
    for m in _SURROGATE_ESCAPE.finditer(body):
        at = start = m.start()
        while start and body[start - 1] == 0x5C:  # backslashes before it
            start -= 1
        if (at - start) % 2:
            continue  # the backslash is escaped: plain text "\\u..." follows
        low = m.group()[3] in b"cdefCDEF"
        if high >= 0 and low and at == high:
            high = -1  # the pair is complete
        elif high >= 0 or low:
            return _lone(body, high - 6 if high >= 0 else at)
        else:
            high = m.end()
    return _lone(body, high - 6) if high >= 0 else None


def _lone(body: bytes, at: int) -> str:
    return (
        f"request body has an unpaired UTF-16 surrogate escape {body[at : at + 6].decode()} at "
        f"byte {at}: JSON strings must be valid Unicode (a surrogate only as half of a pair)"
    )


class ValidUnicode:
    """Refuse (400) a JSON body that would decode to strings with no UTF-8 form, before any
    route parses it (see :func:`unicode_problem`). Runs inside :class:`BodyLimit`, which
    bounds what it reads."""

    def __init__(self, app: ASGIApp, exempt: re.Pattern[str]) -> None:
        self.app, self.exempt = app, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        if (problem := unicode_problem(body)) is not None:
            await _error(BadRequest(problem))(scope, receive, send)
            return
        await self.app(scope, _replaying(body, receive), send)


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
    api.add_middleware(ValidUnicode, exempt=UPLOAD_ROUTE)
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes, exempt=UPLOAD_ROUTE)
    api.add_middleware(MetricsMiddleware, metrics=api.state.metrics)
    api.add_middleware(RequestLog)
    for module in (health, metrics, collections, points, search, jobs, encode, keys):
        api.include_router(module.router, responses=ERROR_RESPONSES)
    api.include_router(query_routes.router, responses=ERROR_RESPONSES)
    api.include_router(snapshot_routes.router, responses=ERROR_RESPONSES)
    return api
