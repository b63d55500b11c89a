"""The systems ``bench.peers`` compares: one small adapter per system, one registry.

The contract and the shared HNSW parameters are in ``bench.peers_base``; milvus-lite and txtai
are in ``bench.peers_milvus_txtai``. Inner product everywhere (faiss/ours
``METRIC_INNER_PRODUCT``, hnswlib and chroma ``ip``, qdrant ``Dot``, lancedb ``dot``, milvus
``IP``; txtai scores by inner product but L2-normalises what it indexes).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers_base import (
    EF_DEFAULT,
    EF_SWEEP,
    F32,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    I64,
    System,
    dir_bytes,
    pad,
)
from bench.peers_milvus_txtai import MilvusFlat, MilvusHNSW, TxtaiFaiss, TxtaiNumpy
from bench.peers_service import OursService

__all__ = ["EF_DEFAULT", "EF_SWEEP", "F32", "HNSW_M", "I64", "System", "dir_bytes"]


# -- ours: the index layer ----------------------------------------------------------------------


class OursFlat(System):
    name, side, exact = "ours-flat", "ours", True

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        from index.spec import index_factory

        self.index = index_factory(dim, self.spec)

    spec = "Flat"

    @property
    def settings(self) -> str:
        return f"`{self.index.spec}` (index layer)"

    def add(self, ids: I64, x: F32) -> None:
        self.index.add(ids, x)

    def search(self, q: F32, k: int) -> I64:
        return self.index.search(q, k).ids


class OursHNSW(OursFlat):
    name, exact = "ours-hnsw", False
    knobs, default_knob = EF_SWEEP, EF_DEFAULT
    spec = f"HNSW(m={HNSW_M},ef_construction={HNSW_EF_CONSTRUCTION},ef_search={EF_DEFAULT})"

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        self.ef = EF_DEFAULT

    def knob(self, value: int) -> None:
        self.ef = value

    def search(self, q: F32, k: int) -> I64:
        return self.index.search(q, k, ef_search=self.ef).ids  # type: ignore[call-arg]


# -- faiss, called directly ---------------------------------------------------------------------


class FaissFlat(System):
    """faiss as a user would call it; the runner hands ids 0..n-1 in order, so faiss's own row
    numbers are the ids (no ``IndexIDMap`` layer)."""

    name, exact, packages = "faiss-flat", True, ("faiss",)

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        import faiss

        self.index: Any = faiss.IndexFlatIP(dim)

    @property
    def settings(self) -> str:
        return "`IndexFlatIP`"

    def add(self, ids: I64, x: F32) -> None:
        if ids[0] != self.index.ntotal:
            raise ValueError("faiss adapters take ids 0..n-1 in order")
        self.index.add(x)

    def search(self, q: F32, k: int) -> I64:
        return np.asarray(self.index.search(q, k)[1], dtype=np.int64)


class FaissHNSW(FaissFlat):
    name, exact = "faiss-hnsw", False
    knobs, default_knob = EF_SWEEP, EF_DEFAULT

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        System.__init__(self, dim, n, workdir)
        import faiss

        self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.index.hnsw.efSearch = EF_DEFAULT

    @property
    def settings(self) -> str:
        return f"`IndexHNSWFlat(M={HNSW_M})`, efConstruction={HNSW_EF_CONSTRUCTION}"

    def knob(self, value: int) -> None:
        self.index.hnsw.efSearch = value


# -- hnswlib ------------------------------------------------------------------------------------


class Hnswlib(System):
    name, packages = "hnswlib", ("hnswlib",)
    knobs, default_knob = EF_SWEEP, EF_DEFAULT

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        import hnswlib

        self.index: Any = hnswlib.Index(space="ip", dim=dim)
        self.index.init_index(max_elements=n, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        self.index.set_ef(EF_DEFAULT)

    @property
    def settings(self) -> str:
        return f"`space='ip'`, M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}"

    def add(self, ids: I64, x: F32) -> None:
        self.index.add_items(x, ids)

    def knob(self, value: int) -> None:
        self.index.set_ef(value)

    def search(self, q: F32, k: int) -> I64:
        labels, _ = self.index.knn_query(q, k=k)
        return np.asarray(labels, dtype=np.int64)


# -- chroma (embedded, persistent) --------------------------------------------------------------


def chroma_config(ef: int = EF_DEFAULT) -> dict[str, Any]:
    return {
        "hnsw": {
            "space": "ip",
            "max_neighbors": HNSW_M,
            "ef_construction": HNSW_EF_CONSTRUCTION,
            "ef_search": ef,
        }
    }


class Chroma(System):
    name, durable, packages = "chroma", "each add", ("chromadb",)
    knobs, default_knob = EF_SWEEP, EF_DEFAULT

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        import chromadb

        self.client: Any = chromadb.PersistentClient(path=str(workdir / "chroma"))
        self.col: Any = self.client.create_collection("bench", configuration=chroma_config())

    @property
    def settings(self) -> str:
        return (
            f"`PersistentClient`, hnsw space=ip, max_neighbors={HNSW_M}, "
            f"ef_construction={HNSW_EF_CONSTRUCTION}"
        )

    def add(self, ids: I64, x: F32) -> None:
        self.col.add(ids=[str(i) for i in ids.tolist()], embeddings=x)

    def knob(self, value: int) -> None:
        self.col.modify(configuration={"hnsw": {"ef_search": value}})
        # A loaded HNSW segment keeps the ef it was opened with: reopen the client to apply it.
        import chromadb
        from chromadb.api.client import SharedSystemClient

        self.col = self.client = None
        SharedSystemClient.clear_system_cache()
        self.client = chromadb.PersistentClient(path=str(self.workdir / "chroma"))
        self.col = self.client.get_collection("bench")

    def search(self, q: F32, k: int) -> I64:
        r = self.col.query(query_embeddings=q, n_results=k, include=[])
        return pad([[int(s) for s in row] for row in r["ids"]], k)

    def close(self) -> None:
        self.col = None
        self.client = None
        super().close()


# -- qdrant-client local mode --------------------------------------------------------------------


class QdrantLocal(System):
    """qdrant-client's local mode in memory: an exact numpy scan (it has no HNSW). Its on-disk
    local mode (``path=``) persisted 20k x 384 points at ~40 points/s here, too slow to run."""

    name, exact, packages = "qdrant-local", True, ("qdrant_client",)

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        from qdrant_client import QdrantClient, models

        self.models: Any = models
        self.client: Any = QdrantClient(":memory:")
        self.client.create_collection(
            "bench", vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT)
        )

    @property
    def settings(self) -> str:
        return "`QdrantClient(':memory:')`, Distance.DOT (exact scan)"

    def add(self, ids: I64, x: F32) -> None:
        batch = self.models.Batch(ids=ids.tolist(), vectors=x.tolist())
        self.client.upsert("bench", points=batch, wait=True)

    def search(self, q: F32, k: int) -> I64:
        if len(q) == 1:
            pts = [self.client.query_points("bench", query=q[0], limit=k).points]
        else:
            reqs = [self.models.QueryRequest(query=v.tolist(), limit=k) for v in q]
            pts = [r.points for r in self.client.query_batch_points("bench", requests=reqs)]
        return pad([[int(p.id) for p in row] for row in pts], k)

    def close(self) -> None:
        self.client.close()
        super().close()


# -- lancedb -------------------------------------------------------------------------------------


class LanceFlat(System):
    """lancedb without a vector index: an exact scan of the Lance files."""

    name, exact, durable, packages = "lancedb-flat", True, "each add", ("lancedb",)

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        import lancedb
        import pyarrow as pa

        self.pa: Any = pa
        self.db: Any = lancedb.connect(str(workdir / "lance"))
        self.table: Any = None

    @property
    def settings(self) -> str:
        return "no index, `distance_type('dot')`"

    def add(self, ids: I64, x: F32) -> None:
        pa = self.pa
        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), self.dim)
        batch = pa.table({"id": pa.array(ids), "vector": vec})
        if self.table is None:
            self.table = self.db.create_table("bench", batch)
        else:
            self.table.add(batch)

    def _query(self, v: F32, k: int) -> Any:
        return self.table.search(v).distance_type("dot").limit(k).select(["id", "_distance"])

    def search(self, q: F32, k: int) -> I64:
        rows = [self._query(v, k).to_arrow()["id"].to_numpy().tolist() for v in q]
        return pad(rows, k)


class LanceIVFPQ(LanceFlat):
    """lancedb's default vector index (IVF_PQ, default partitions and sub-vectors), re-ranked
    exactly on ``refine_factor`` x k candidates; ``nprobes`` is swept."""

    name, exact = "lancedb-ivfpq", False
    knobs, default_knob = (10, 20, 50, 100), 20
    REFINE = 10

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        self.nprobes = self.default_knob

    @property
    def settings(self) -> str:
        return f"`create_index(metric='dot')` (IVF_PQ defaults), refine_factor={self.REFINE}"

    def build(self) -> None:
        from lancedb.index import IvfPq

        self.table.create_index("vector", config=IvfPq(distance_type="dot"))

    def knob(self, value: int) -> None:
        self.nprobes = value

    def _query(self, v: F32, k: int) -> Any:
        return super()._query(v, k).nprobes(self.nprobes).refine_factor(self.REFINE)


#: Every system, ours first; ``--systems`` picks by these names.
REGISTRY: dict[str, type[System]] = {
    s.name: s
    for s in (
        OursFlat,
        OursHNSW,
        OursService,
        FaissFlat,
        FaissHNSW,
        Hnswlib,
        Chroma,
        QdrantLocal,
        LanceFlat,
        LanceIVFPQ,
        MilvusFlat,
        MilvusHNSW,
        TxtaiNumpy,
        TxtaiFaiss,
    )
}

#: Systems measured side by side in one process. Embedded databases run their own thread pools
#: (chroma's runtime kept faiss's OpenMP threads waiting for a core, 10-100x slower single
#: queries on this 2-core box), so each peer family gets its own process with our counterpart.
GROUPS: dict[str, list[str]] = {
    "libraries": ["ours-flat", "ours-hnsw", "faiss-flat", "faiss-hnsw", "hnswlib"],
    "chroma": ["ours-hnsw", "chroma"],
    "qdrant": ["ours-flat", "qdrant-local"],
    "lancedb": ["ours-flat", "ours-hnsw", "lancedb-flat", "lancedb-ivfpq"],
    "milvus": ["ours-flat", "ours-hnsw", "milvus-flat", "milvus-hnsw"],
    "txtai": ["ours-flat", "ours-hnsw", "txtai-numpy", "txtai-faiss"],
}

#: Which of ours each peer is compared against.
COUNTERPART = {
    "faiss-flat": "ours-flat",
    "qdrant-local": "ours-flat",
    "lancedb-flat": "ours-flat",
    "faiss-hnsw": "ours-hnsw",
    "hnswlib": "ours-hnsw",
    "chroma": "ours-hnsw",
    "lancedb-ivfpq": "ours-hnsw",
    "milvus-flat": "ours-flat",
    "milvus-hnsw": "ours-hnsw",
    "txtai-numpy": "ours-flat",
    "txtai-faiss": "ours-hnsw",
}


def available(names: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """``(names that can run, {name: why not})``; an unknown name lists the known ones."""
    names = list(REGISTRY) if names is None else names
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; known: {', '.join(REGISTRY)}")
    ok, missing = [], {}
    for n in names:
        absent = [p for p in REGISTRY[n].packages if importlib.util.find_spec(p) is None]
        if absent:
            missing[n] = f"package {absent[0]!r} is not installed (pip install '.[bench]')"
        else:
            ok.append(n)
    return ok, missing


@contextmanager
def opened(names: list[str], dim: int, n: int, workdir: Path) -> Iterator[dict[str, System]]:
    """Fresh systems ``names`` (see :func:`make`), closed on the way out."""
    systems = {name: make(name, dim, n, workdir) for name in names}
    try:
        yield systems
    finally:
        for s in systems.values():
            s.close()


def make(name: str, dim: int, n: int, workdir: Path) -> System:
    """A fresh ``name`` system for ``n`` vectors of ``dim``, keeping its files under
    ``workdir``."""
    path = workdir / name
    os.makedirs(path, exist_ok=True)
    return REGISTRY[name](dim, n, path)


Factory = Callable[[int, int, Path], System]
