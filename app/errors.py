"""Domain errors carry their HTTP status; one handler (``app.api.app``) turns them into JSON.

::

    InnerspaceError (500 internal)
     ├── InvalidInput (422 invalid_input)       bad vector, id, filter, spec, k ...
     ├── BadRequest (400 bad_request)           unparseable body
     ├── NotFound (404 not_found)               unknown collection, point or route
     ├── AlreadyExists (409 already_exists)     collection name taken
     ├── Conflict (409 conflict)                request disagrees with the collection's config
     ├── PayloadTooLarge (413 payload_too_large)
     └── Unavailable (503 unavailable)          still loading, shutting down

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


class PayloadTooLarge(InnerspaceError):
    """The request body exceeds the configured limit."""

    status, code = 413, "payload_too_large"


class Unavailable(InnerspaceError):
    """The service cannot answer yet (loading) or any more (stopping)."""

    status, code = 503, "unavailable"
