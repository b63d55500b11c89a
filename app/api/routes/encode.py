"""Text to vectors without storing anything."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ReadKey, ServiceDep
from app.api.schemas import EncodeRequest, EncodeResponse

router = APIRouter(tags=["encode"])


@router.post("/encode", response_model=EncodeResponse)
def encode(body: EncodeRequest, service: ServiceDep, _: ReadKey) -> EncodeResponse:
    """Encode texts as queries or documents with an encoder spec (default: the server's)."""
    return EncodeResponse(**service.encode(body.texts, body.encoder, body.kind))
