"""Client-side errors: one ``ApiError`` subclass per HTTP status family, built from the
API's error body ``{error, message, details}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from app.api.schemas import (
    JobOut,
)


class ClientError(Exception):
    """Base of everything this module raises on purpose."""


class ApiError(ClientError):
    """The server answered with an error: ``status``, ``code`` (the body's ``error``),
    ``message`` and ``details`` as the server sent them."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = dict(headers or {})


class BadRequestError(ApiError):
    """400: the body could not be parsed."""


class UnauthorizedError(ApiError):
    """401: no API key, or an unknown or revoked one."""


class ForbiddenError(ApiError):
    """403: the key's role or collection scope does not allow the request."""


class NotFoundError(ApiError):
    """404: unknown collection, point, job, key or route."""


class ConflictError(ApiError):
    """409: the request contradicts the current state."""


class AlreadyExistsError(ConflictError):
    """409: the name is taken."""


class PayloadTooLargeError(ApiError):
    """413: the body is over the server's limit."""


class InvalidInputError(ApiError):
    """422: a value is not acceptable; ``details`` names the failing items."""


class RateLimitedError(ApiError):
    """429: the key's rate limit; retry after ``retry_after`` seconds."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return None if value is None else float(value)
        except ValueError:
            return None


class ServerError(ApiError):
    """500 or another unexpected status."""


class UnavailableError(ApiError):
    """503: still loading, or stopping."""


class InsufficientStorageError(ApiError):
    """507: the work would pass the server's memory budget."""


class JobFailedError(ClientError):
    """``wait`` saw the job end other than ``succeeded``; ``job`` is its final state."""

    def __init__(self, job: JobOut) -> None:
        super().__init__(f"job {job.id} ({job.kind} on {job.collection}) {job.state}: {job.error}")
        self.job = job


_BY_CODE: dict[str, type[ApiError]] = {
    "bad_request": BadRequestError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "conflict": ConflictError,
    "payload_too_large": PayloadTooLargeError,
    "invalid_input": InvalidInputError,
    "rate_limited": RateLimitedError,
    "unavailable": UnavailableError,
    "insufficient_storage": InsufficientStorageError,
    "internal": ServerError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidInputError,
    429: RateLimitedError,
    503: UnavailableError,
    507: InsufficientStorageError,
}


def error_from(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (its body must have been read)."""
    code, message, details = "http_error", response.text or response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        code = str(body["error"])
        message = str(body.get("message", message))
        details = body.get("details")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code, ServerError)
    return cls(response.status_code, code, message, details, response.headers)
