"""API key management (admin keys without a collection scope)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from app.api.deps import KeyAdmin
from app.api.schemas import KeyCreate, KeyCreated, KeyInfo, KeyList
from app.errors import NotFound
from app.store.keys import KeyStore

router = APIRouter(prefix="/keys", tags=["keys"])


def _store(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, request: Request, _: KeyAdmin) -> KeyCreated:
    """Create a key; the response is the only time the key itself is shown."""
    key, token = _store(request).create(body.role, body.collection, body.name)
    return KeyCreated(**key.public(), key=token)


@router.get("", response_model=KeyList)
def list_keys(request: Request, _: KeyAdmin) -> KeyList:
    """Every key, revoked ones included (never the secrets)."""
    return KeyList(keys=[KeyInfo(**k.public()) for k in _store(request).list()])


@router.delete("/{key_id}", response_model=KeyInfo)
def revoke_key(key_id: str, request: Request, _: KeyAdmin) -> KeyInfo:
    """Revoke a key at once; revoking twice is harmless."""
    key = _store(request).revoke(key_id)
    if key is None:
        raise NotFound(f"API key {key_id!r} not found")
    return KeyInfo(**key.public())
