"""Text -> vectors: the Encoder contract, the registry of spec strings and the bundled models.

>>> enc = encoder_factory("test-hash(dim=8)")
>>> enc.encode_queries(["hello world"]).dense.shape
(1, 8)
"""

from __future__ import annotations

from encoders.base import Encoded, Encoder, EncoderError, TokenVectors
from encoders.registry import (
    DEFAULT_SPEC,
    REGISTRY,
    canonical,
    clear_cache,
    encoder_factory,
    known,
)

__all__ = [
    "DEFAULT_SPEC",
    "REGISTRY",
    "Encoded",
    "Encoder",
    "EncoderError",
    "TokenVectors",
    "canonical",
    "clear_cache",
    "encoder_factory",
    "known",
]
