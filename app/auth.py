"""API-key authentication and authorisation.

Model:

* A key has one **role**, ``read < write < admin``; a role includes the ones below it.
  ``read``: GET routes, search, scroll, count, encode, job progress. ``write``: upserts,
  deletes of points, uploaded imports, index builds, compaction, flush, job cancel, creating a
  collection. ``admin``: deleting a collection, importing a file already on the server (it
  reads the server's file system), managing keys.
* A key may be **scoped** to one collection: it then reaches only routes about that collection
  (``/collections/{name}/...``, that collection's jobs), sees only it in ``GET /collections``,
  and cannot manage keys. An unscoped key reaches every collection.
* Keys travel as ``Authorization: Bearer <key>`` or ``api-key: <key>``. No key, or an unknown
  or revoked one: 401. A valid key outside its role or scope: 403.
* Whether keys are required (``INNERSPACE_AUTH``): ``on``; ``off``; ``auto`` (default) = only
  when the server binds a non-loopback address (``INNERSPACE_HOST`` / ``serve --host``).
  Health routes are always open; ``/metrics`` is open unless ``INNERSPACE_METRICS_AUTH``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass
from typing import Literal

from app.config import Settings
from app.errors import Forbidden, Unauthorized
from app.store.keys import ApiKey, KeyStore

log = logging.getLogger(__name__)

Role = Literal["read", "write", "admin"]
ROLES: tuple[Role, ...] = ("read", "write", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}

#: The key id reported for the static ``INNERSPACE_ADMIN_KEY``.
STATIC_ADMIN_ID = "admin-key"


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``...; ``0.0.0.0``, ``""`` and names are not."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    """Whether requests need a key under ``settings`` (see the module docstring)."""
    if settings.auth == "auto":
        return not is_loopback(settings.host)
    return settings.auth == "on"


def check_role(role: str) -> Role:
    for r in ROLES:
        if r == role:
            return r
    raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key, or the anonymous caller when auth is off."""

    role: Role
    key_id: str | None = None
    collection: str | None = None
    client: str = "?"

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    @property
    def rate_key(self) -> str:
        """What a rate limit counts by: the key, else the client address."""
        return f"key:{self.key_id}" if self.key_id else f"addr:{self.client}"

    def allows(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def may_use(self, collection: str) -> bool:
        return self.collection is None or self.collection == collection

    def check_collection(self, collection: str) -> None:
        """403 unless the key's scope covers ``collection``."""
        if not self.may_use(collection):
            raise Forbidden(
                f"this API key is limited to collection {self.collection!r}, not {collection!r}",
                {"key_id": self.key_id, "collection": self.collection},
            )

    def check(self, role: Role, collection: str | None = None, unscoped: bool = False) -> None:
        """403 unless the key has ``role`` (or above) and its scope allows the request."""
        if not self.allows(role):
            raise Forbidden(
                f"this API key has role {self.role!r}; this request needs {role!r}",
                {"key_id": self.key_id, "role": self.role, "required": role},
            )
        if unscoped and self.collection is not None:
            raise Forbidden(
                f"this API key is limited to collection {self.collection!r}; this request "
                "needs a key without a collection scope",
                {"key_id": self.key_id, "collection": self.collection},
            )
        if collection is not None:
            self.check_collection(collection)


def principal_of(key: ApiKey, client: str) -> Principal:
    return Principal(check_role(key.role), key.id, key.collection, client)


class Authenticator:
    """Turns a request's credentials into a :class:`Principal` (or 401)."""

    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        self.required = auth_required(settings)
        self.keys = keys
        secret = settings.admin_key
        self._admin_key = secret.get_secret_value() if secret is not None else None

    def describe(self, settings: Settings) -> str:
        if not self.required:
            return f"auth off (INNERSPACE_AUTH={settings.auth}, host {settings.host})"
        why = "INNERSPACE_AUTH=on" if settings.auth == "on" else f"{settings.host} is not loopback"
        return f"auth on ({why}): requests need an API key"

    def authenticate(self, token: str | None, client: str) -> Principal:
        if not self.required:
            return Principal("admin", client=client)
        if not token:
            raise Unauthorized(
                "this server requires an API key: send 'Authorization: Bearer <key>' or "
                "'api-key: <key>'"
            )
        if self._admin_key is not None and hmac.compare_digest(
            token.encode(), self._admin_key.encode()
        ):
            return Principal("admin", STATIC_ADMIN_ID, None, client)
        key = self.keys.verify(token)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        return principal_of(key, client)


def pick_token(bearer: str | None, api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (given as ``bearer``) or ``api-key``;
    the former wins when both are sent."""
    for value in (bearer, api_key):
        if value and value.strip():
            return value.strip()
    return None
