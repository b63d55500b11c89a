"""Pure numerics for maximum inner product search: numpy + faiss, no HTTP, no storage policy."""

from __future__ import annotations

from index.base import IdSelector, Index, Reranker, SearchResult
from index.params import SpecError
from index.spec import REGISTRY, IndexSpec, index_factory, parse_spec

__all__ = [
    "IdSelector",
    "Index",
    "IndexSpec",
    "REGISTRY",
    "Reranker",
    "SearchResult",
    "SpecError",
    "index_factory",
    "parse_spec",
]
