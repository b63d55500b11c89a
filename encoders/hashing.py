"""FOR TESTS ONLY: ``test-hash`` and ``test-hash-tokens``, deterministic encoders without a model.

Each lower-cased word or punctuation mark is hashed (blake2b, with the seed) to a seeded
standard-normal vector. ``test-hash`` sums a text's token vectors and L2-normalises (texts
sharing words score higher, nothing more); ``test-hash-tokens`` returns the token vectors
themselves, normalised. Fast and identical on every machine, so service tests need no weights.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from encoders.base import F32, Encoded, TokenVectors, check_texts, l2_normalize

_TOKEN = re.compile(r"\w+|[^\w\s]")
#: Bump when the hashing changes: it is part of the fingerprint.
VERSION = "test-hash/1"


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks.

    >>> tokenize("Hello, World!")
    ['hello', ',', 'world', '!']
    """
    return _TOKEN.findall(text.lower())


@functools.lru_cache(maxsize=65536)
def token_vector(token: str, dim: int, seed: int) -> F32:
    """The fixed ``(dim,) float32`` vector of one token (read-only, shared)."""
    digest = hashlib.blake2b(f"{seed}\0{token}".encode(), digest_size=8).digest()
    vec = np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(dim)
    out = vec.astype(np.float32)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class HashParams:
    """``test-hash`` parameters."""

    dim: int = 64
    seed: int = 0
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.dim <= 4096:
            raise ValueError(f"dim must be in [1, 4096], got {self.dim}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True)
class HashTokensParams(HashParams):
    """``test-hash-tokens`` parameters."""

    float16: bool = False


class HashEncoder:
    """``test-hash``: FOR TESTS ONLY, a dense bag-of-hashed-words encoder."""

    Params: ClassVar[type[HashParams]] = HashParams
    takes_path: ClassVar[bool] = False
    summary: ClassVar[str] = "FOR TESTS ONLY: deterministic hashed bag of words, no model"
    multi: ClassVar[bool] = False

    def __init__(self, spec: str, name: str, params: HashParams) -> None:
        self._spec, self._name, self._p = spec, name, params
        ident = f"{VERSION} dim={params.dim} seed={params.seed}"
        self._fingerprint = hashlib.sha256(ident.encode()).hexdigest()

    @classmethod
    def build(cls, spec: str, name: str, params: HashParams, path: Path | None) -> HashEncoder:
        return cls(spec, name, params)

    @property
    def spec(self) -> str:
        return self._spec

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._p.dim

    @property
    def multivector(self) -> bool:
        return self.multi

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def max_tokens(self) -> int:
        return self._p.max_tokens

    def __repr__(self) -> str:
        return f"HashEncoder({self._spec!r})"

    def encode_queries(self, texts: Sequence[str]) -> Encoded:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str]) -> Encoded:
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> Encoded:
        items = check_texts(texts)
        p = self._p
        token_lists = [tokenize(t) for t in items]
        truncated = sum(len(toks) > p.max_tokens for toks in token_lists)
        token_lists = [toks[: p.max_tokens] for toks in token_lists]
        mats = [np.stack([token_vector(t, p.dim, p.seed) for t in toks]) for toks in token_lists]
        counts = [len(toks) for toks in token_lists]
        if self.multi:
            half = isinstance(p, HashTokensParams) and p.float16
            multi: list[TokenVectors] = [
                l2_normalize(m).astype(np.float16) if half else l2_normalize(m) for m in mats
            ]
            return Encoded(multi, truncated, counts)
        sums = np.stack([m.sum(axis=0) for m in mats]) if mats else np.zeros((0, p.dim))
        return Encoded(l2_normalize(sums.astype(np.float32)), truncated, counts)


class HashTokensEncoder(HashEncoder):
    """``test-hash-tokens``: FOR TESTS ONLY, one hashed vector per word."""

    Params: ClassVar[type[HashParams]] = HashTokensParams
    summary: ClassVar[str] = "FOR TESTS ONLY: deterministic hashed word vectors, multi-vector"
    multi: ClassVar[bool] = True
