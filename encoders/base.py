"""The encoder contract: text in, dense or multi-vector float arrays out.

Shapes: a dense encoder returns ``(n, dim) float32`` rows, L2-normalised. A multi-vector encoder
returns one ``(t_i, dim)`` array per text (``float32``, or ``float16`` where configured), one
L2-normalised row per content token (special and padding tokens dropped). Encoders are stateless
after construction and safe to call from several threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
#: One text's token vectors: ``(t, dim)`` float32 or float16.
TokenVectors = npt.NDArray[np.float32] | npt.NDArray[np.float16]


class EncoderError(ValueError):
    """A bad encoder spec, a missing or corrupt model path, or input an encoder cannot take."""


@dataclass(frozen=True)
class Encoded:
    """The output of one encode call.

    Attributes:
        vectors: dense ``(n, dim) float32``, or for multi-vector encoders a list of n
            ``(t_i, dim)`` arrays.
        truncated: how many input texts were cut to the encoder's ``max_tokens``.
        token_counts: per text, the tokens the model read (after truncation, special tokens
            included); for multi-vector output ``vectors[i].shape[0]`` is the content tokens.
    """

    vectors: F32 | list[TokenVectors]
    truncated: int
    token_counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.token_counts)
        if isinstance(self.vectors, np.ndarray):
            if self.vectors.ndim != 2 or self.vectors.dtype != np.float32:
                raise ValueError(
                    f"dense vectors must be (n, dim) float32, got {self.vectors.shape} "
                    f"{self.vectors.dtype}"
                )
            rows = self.vectors.shape[0]
        else:
            dims = {v.shape[1] for v in self.vectors if v.ndim == 2}
            if any(v.ndim != 2 for v in self.vectors) or len(dims) > 1:
                raise ValueError("token vectors must be (t_i, dim) arrays of one dim")
            if any(v.dtype not in (np.float32, np.float16) for v in self.vectors):
                raise ValueError("token vectors must be float32 or float16")
            rows = len(self.vectors)
        if rows != n:
            raise ValueError(f"{rows} vectors for {n} token counts")
        if not 0 <= self.truncated <= n:
            raise ValueError(f"truncated={self.truncated} outside [0, {n}]")

    def __len__(self) -> int:
        return len(self.token_counts)

    @property
    def dense(self) -> F32:
        """The ``(n, dim) float32`` matrix; ``TypeError`` for multi-vector output."""
        if not isinstance(self.vectors, np.ndarray):
            raise TypeError("multi-vector output has no dense matrix; use .multi")
        return self.vectors

    @property
    def multi(self) -> list[TokenVectors]:
        """The per-text ``(t_i, dim)`` arrays; ``TypeError`` for dense output."""
        if isinstance(self.vectors, np.ndarray):
            raise TypeError("dense output has no token vectors; use .dense")
        return self.vectors


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors. ``spec`` rebuilds it; ``fingerprint`` pins its weights."""

    @property
    def spec(self) -> str:
        """Canonical spec string: ``encoder_factory(e.spec).spec == e.spec``."""
        ...

    @property
    def name(self) -> str:
        """The registered name (``minilm``, ``onnx:/models/e5``, ...), without parameters."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def multivector(self) -> bool: ...

    @property
    def fingerprint(self) -> str:
        """sha256 hex of the weights (or, for test encoders, of the parameters)."""
        ...

    @property
    def max_tokens(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> Encoded: ...

    def encode_documents(self, texts: Sequence[str]) -> Encoded: ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list or raise :class:`EncoderError` naming the bad item.

    A bare ``str`` is refused: iterating it would encode one character per "text".
    """
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise EncoderError(f"texts must be a sequence of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise EncoderError(f"texts[{i}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise EncoderError(f"texts[{i}] is empty or whitespace only")
    return out


def l2_normalize(x: F32) -> F32:
    """Rows of ``x (n, d) float32`` scaled to unit norm (zero rows stay zero).

    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: F32 = (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return out
