"""Text -> vectors inside the service: encoder look-up, pinning and bounded concurrency.

Encoders are CPU-heavy and hold their own thread pools (onnxruntime), so at most
``encode_concurrency`` encode calls run at once; the rest wait. Every call runs in the caller's
worker thread, never on the event loop (routes are sync).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

from app.errors import Conflict, InvalidInput
from app.store.catalog import CollectionConfig
from encoders import Encoded, Encoder, EncoderError, encoder_factory
from encoders.registry import canonical

Kind = Literal["query", "document"]


class Encoding:
    """The service's gateway to ``encoders/``."""

    def __init__(self, concurrency: int) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)

    def load(self, spec: str) -> Encoder:
        try:
            return encoder_factory(spec)
        except EncoderError as exc:
            raise InvalidInput(f"encoder {spec!r}: {exc}") from None

    def canonical(self, spec: str) -> str:
        try:
            return canonical(spec)
        except EncoderError as exc:
            raise InvalidInput(f"encoder {spec!r}: {exc}") from None

    def encode(self, encoder: Encoder, texts: Sequence[str], kind: Kind) -> Encoded:
        try:
            with self._slots:
                if kind == "query":
                    return encoder.encode_queries(texts)
                return encoder.encode_documents(texts)
        except EncoderError as exc:
            raise InvalidInput(str(exc)) from None

    def _same(self, asked: str, pinned: str) -> bool:
        """Same vectors? Threads and batch sizes differ freely; weights and truncation may not."""
        if self.canonical(asked) == pinned:
            return True
        a, b = self.load(asked), self.load(pinned)
        key = ("name", "dim", "multivector", "fingerprint", "max_tokens")
        return all(getattr(a, k) == getattr(b, k) for k in key)

    def for_collection(self, config: CollectionConfig, asked: str | None = None) -> Encoder:
        """The collection's pinned encoder; 409 when ``asked`` names another one or the weights
        on disk no longer match the fingerprint recorded at creation."""
        if config.encoder is None:
            raise InvalidInput(
                f"collection {config.name!r} has no encoder: send vectors, or create the "
                'collection with one (e.g. "encoder": "minilm")'
            )
        if asked is not None and not self._same(asked, config.encoder):
            raise Conflict(
                f"collection {config.name!r} is encoded with {config.encoder!r}, not "
                f"{self.canonical(asked)!r}",
                {"collection_encoder": config.encoder, "requested": self.canonical(asked)},
            )
        encoder = self.load(config.encoder)
        if config.encoder_fingerprint and encoder.fingerprint != config.encoder_fingerprint:
            raise Conflict(
                f"the weights of encoder {config.encoder!r} changed since collection "
                f"{config.name!r} was created (fingerprint {encoder.fingerprint[:12]} != "
                f"{config.encoder_fingerprint[:12]}); re-create the collection to re-encode"
            )
        return encoder
