"""The systems ``bench.peers`` compares: one small adapter per system, one registry.

Every adapter speaks the same contract (:class:`System`): ``add`` batches of ``(ids (n,) int64,
vectors (n, d) float32)``, ``build`` whatever is built after the last add, ``search`` queries
``(nq, d) float32`` for ``(nq, k) int64`` ids (``-1`` pads), and ``knob`` sets the one search-time
accuracy parameter of an approximate system (HNSW ``ef``, IVF ``nprobes``). Peers import lazily,
so a missing package only drops that system (:func:`available` says why).

Settings (stated in the report): every HNSW runs at the same build parameters, M=16 and
ef_construction=100 (chroma's documented defaults; hnswlib's README uses M=16 too), with ef swept
at search time; inner product everywhere (faiss/ours ``METRIC_INNER_PRODUCT``, hnswlib and
chroma ``ip``, qdrant ``Dot``, lancedb ``dot``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

#: Shared HNSW build parameters (see the module docstring).
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100
#: ef values swept at search time (every value is raised to k by the systems themselves).
EF_SWEEP = (16, 32, 64, 128, 256)
#: The ef quoted in the latency / QPS tables.
EF_DEFAULT = 64


def dir_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path`` (0 when it does not exist)."""
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class System:
    """The adapter contract; subclasses override what they support."""

    #: Registry name, e.g. ``"hnswlib"``.
    name: ClassVar[str] = ""
    #: ``"ours"`` or ``"peer"``.
    side: ClassVar[str] = "peer"
    #: True when search returns the exact top-k.
    exact: ClassVar[bool] = False
    #: True when ``add`` returns only once the data is on disk.
    durable: ClassVar[bool] = False
    #: The search-time knob swept for the recall/QPS curve (empty when exact).
    knobs: ClassVar[tuple[int, ...]] = ()
    #: Import name of the package this adapter needs.
    package: ClassVar[str] = "numpy"

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        self.dim, self.n, self.workdir = dim, n, workdir

    @property
    def settings(self) -> str:
        """The parameters this system runs with, for the report."""
        return ""

    def add(self, ids: I64, x: F32) -> None:
        raise NotImplementedError

    def build(self) -> None:
        """Build what is built after the last add (nothing for systems that index on add)."""

    def search(self, q: F32, k: int) -> I64:
        raise NotImplementedError

    def knob(self, value: int) -> None:
        """Set the search-time accuracy knob (approximate systems only)."""

    def disk_bytes(self) -> int:
        return dir_bytes(self.workdir)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _pad(rows: list[list[int]], k: int) -> I64:
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r[:k]
    return out


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
    knobs = EF_SWEEP
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

    name, exact, package = "faiss-flat", True, "faiss"

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
    knobs = EF_SWEEP

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
    name, package = "hnswlib", "hnswlib"
    knobs = EF_SWEEP

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
    name, durable, package = "chroma", True, "chromadb"
    knobs = EF_SWEEP

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
        return _pad([[int(s) for s in row] for row in r["ids"]], k)

    def close(self) -> None:
        self.col = None
        self.client = None
        super().close()


# -- qdrant-client local mode --------------------------------------------------------------------


class QdrantLocal(System):
    """qdrant-client's local mode in memory: an exact numpy scan (it has no HNSW). Its on-disk
    local mode (``path=``) persisted 20k x 384 points at ~40 points/s here, too slow to run."""

    name, exact, package = "qdrant-local", True, "qdrant_client"

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
        return _pad([[int(p.id) for p in row] for row in pts], k)

    def close(self) -> None:
        self.client.close()
        super().close()


# -- lancedb -------------------------------------------------------------------------------------


class LanceFlat(System):
    """lancedb without a vector index: an exact scan of the Lance files."""

    name, exact, durable, package = "lancedb-flat", True, True, "lancedb"

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
        return _pad(rows, k)


class LanceIVFPQ(LanceFlat):
    """lancedb's default vector index (IVF_PQ, default partitions and sub-vectors), re-ranked
    exactly on ``refine_factor`` x k candidates; ``nprobes`` is swept."""

    name, exact = "lancedb-ivfpq", False
    knobs = (10, 20, 50, 100)
    REFINE = 10

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        self.nprobes = 20

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
        FaissFlat,
        FaissHNSW,
        Hnswlib,
        Chroma,
        QdrantLocal,
        LanceFlat,
        LanceIVFPQ,
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
}


def available(names: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """``(names that can run, {name: why not})``; an unknown name lists the known ones."""
    names = list(REGISTRY) if names is None else names
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; known: {', '.join(REGISTRY)}")
    ok, missing = [], {}
    for n in names:
        pkg = REGISTRY[n].package
        if importlib.util.find_spec(pkg) is None:
            missing[n] = f"package {pkg!r} is not installed (pip install '.[bench]')"
        else:
            ok.append(n)
    return ok, missing


def make(name: str, dim: int, n: int, workdir: Path) -> System:
    """A fresh ``name`` system for ``n`` vectors of ``dim``, keeping its files under
    ``workdir``."""
    path = workdir / name
    os.makedirs(path, exist_ok=True)
    return REGISTRY[name](dim, n, path)


Factory = Callable[[int, int, Path], System]
