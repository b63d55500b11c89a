"""Named dependency types for the routes; tests swap them with ``app.dependency_overrides``.

Every route that is not a health check declares who may call it with one of the key types
below (``ReadKey``, ``WriteKey``, ``AdminKey``, ``KeyAdmin``): the dependency authenticates the
request (401), checks the key's role and, for ``/collections/{name}/...``, its collection
scope (403), then spends one request of the key's rate limit (429). See :mod:`app.auth`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.auth import Authenticator, Principal, Role, pick_token
from app.ratelimit import RateLimiter
from app.service import SearchService


async def get_service(request: Request) -> SearchService:
    """``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per
    request for one attribute read."""
    service: SearchService = request.app.state.service
    return service


ServiceDep = Annotated[SearchService, Depends(get_service)]

#: Every digit as ``0``, a dot as itself, anything else as a space (:func:`loads`).
_DIGITS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x2E if c == 0x2E else 0x20 for c in range(256))
_RUN = b"0" * 19


def loads(body: bytes) -> Any:
    """``json.loads(body)``: the same value and the same errors, about ten times faster on a
    body of floats. orjson reads what it reads exactly as ``json`` does (RFC 8259, integers up
    to 64 bits, finite floats, correctly rounded); what it refuses (``NaN``, ``1e400``, UTF-16,
    a lone surrogate, invalid JSON) goes to ``json``, which answers as before, and so does a
    body with 19 digits in a row not after a dot (an integer orjson may turn into a float
    beyond 64 bits, where ``json`` keeps an ``int``; a fraction's digits come after a dot)."""
    digits = body.translate(_DIGITS)
    if not digits.startswith(_RUN) and b" " + _RUN not in digits:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


class _JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`loads` (FastAPI reads it with ``json``, the
    largest cost of a search request before this)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_JSONRequest(request.scope, request.receive))

        return route_handler


_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")
_api_key = APIKeyHeader(name="api-key", auto_error=False, description="an API key")


class Require:
    """Dependency: the caller holds a key of ``role`` or above.

    ``unscoped``: the key must not be limited to one collection (key management, metrics).
    ``only_if``: the name of a boolean setting; when it is false the route stays open.
    """

    def __init__(self, role: Role, unscoped: bool = False, only_if: str | None = None) -> None:
        self.role, self.unscoped, self.only_if = role, unscoped, only_if

    def __repr__(self) -> str:
        return f"Require({self.role!r}, unscoped={self.unscoped})"

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        client = request.client.host if request.client else "?"
        if self.only_if is not None and not getattr(request.app.state.settings, self.only_if):
            return Principal("read", client=client)
        auth: Authenticator = request.app.state.auth
        token = pick_token(bearer.credentials if bearer else None, api_key)
        principal = auth.authenticate(token, client)
        principal.check(self.role, request.path_params.get("name"), self.unscoped)
        limiter: RateLimiter = request.app.state.limiter
        limiter.hit(principal.rate_key, "read" if self.role == "read" else "write")
        request.state.principal = principal
        return principal


ReadKey = Annotated[Principal, Depends(Require("read"))]
WriteKey = Annotated[Principal, Depends(Require("write"))]
AdminKey = Annotated[Principal, Depends(Require("admin"))]
#: Admin without a collection scope: key management.
KeyAdmin = Annotated[Principal, Depends(Require("admin", unscoped=True))]
#: ``/metrics``: open, or any unscoped key with ``INNERSPACE_METRICS_AUTH=true``.
MetricsKey = Annotated[Principal, Depends(Require("read", unscoped=True, only_if="metrics_auth"))]
