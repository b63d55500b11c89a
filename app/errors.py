"""Domain errors carry their HTTP status; one handler (``app.api.app``) turns them into JSON.

::

    InnerspaceError (500 internal)
     ├── InvalidInput (422 invalid_input)       bad vector, id, filter, spec, k ...
     ├── BadRequest (400 bad_request)           unparseable body
     ├── NotFound (404 not_found)               unknown collection, point or route
     ├── AlreadyExists (409 already_exists)     collection name taken
     ├── Conflict (409 conflict)                request disagrees with the collection's config
     ├── Unauthorized (401 unauthorized)        no API key, or an unknown/revoked one
     ├── Forbidden (403 forbidden)              the key's role or collection does not allow it
     ├── PayloadTooLarge (413 payload_too_large)
     ├── TooManyRequests (429 rate_limited)     the key's rate limit; ``Retry-After`` says when
     ├── Unavailable (503 unavailable)          still loading, shutting down
     └── InsufficientStorage (507 insufficient_storage)  would exceed the memory budget

Every error renders as ``{"error": code, "message": sentence, "details": ...?}``.
"""

from __future__ import annotations

from typing import Any


class InnerspaceError(Exception):
    """Base of every error the service raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After``, ``WWW-Authenticate``)."""
        return {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class InvalidInput(InnerspaceError):
    """The request is well-formed JSON but a value is not acceptable."""

    status, code = 422, "invalid_input"


class BadRequest(InnerspaceError):
    """The request body cannot be parsed."""

    status, code = 400, "bad_request"


class NotFound(InnerspaceError):
    """A named collection, point or job does not exist."""

    status, code = 404, "not_found"


class AlreadyExists(InnerspaceError):
    """Creating something whose name is taken."""

    status, code = 409, "already_exists"


class Conflict(InnerspaceError):
    """The request contradicts the collection's configuration."""

    status, code = 409, "conflict"


class Unauthorized(InnerspaceError):
    """No API key was sent, or the one sent is unknown or revoked."""

    status, code = 401, "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="innerspace"'}


class Forbidden(InnerspaceError):
    """The API key is valid but its role or collection scope does not cover the request."""

    status, code = 403, "forbidden"


class PayloadTooLarge(InnerspaceError):
    """The request body exceeds the configured limit."""

    status, code = 413, "payload_too_large"


class Unavailable(InnerspaceError):
    """The service cannot answer yet (loading) or any more (stopping)."""

    status, code = 503, "unavailable"


class TooManyRequests(InnerspaceError):
    """The API key spent its rate limit; retry after ``retry_after`` seconds."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InsufficientStorage(InnerspaceError):
    """Doing this would take the process past its configured memory budget."""

    status, code = 507, "insufficient_storage"
