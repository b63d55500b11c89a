"""milvus-lite and txtai adapters for ``bench.peers`` (the contract is ``bench.peers_base``).

- **milvus-lite** (3.x) through ``pymilvus.MilvusClient`` on a local ``.db`` path: pymilvus
  starts milvus-lite's gRPC server on a thread of the calling process and speaks gRPC to it (the
  documented embedded use; ``milvus-lite server`` runs the same server as its own process, which
  ``bench.peers_http`` uses). One collection ``(id INT64 primary, vector FLOAT_VECTOR)``, metric
  ``IP``, index ``FLAT`` (exact) or ``HNSW`` at the shared M / efConstruction. An insert returns
  once the rows are in its write-ahead log (written to the OS, not fsynced); ``build`` is
  ``flush``: memtable to a Parquet segment plus the segment's index file, manifest fsynced. Until
  then the rows sit in the memtable, which is scanned exactly, so the flush is what makes the
  HNSW searchable.
- **txtai** (9.x) ``Embeddings(method="external")``: vectors are handed over precomputed (arrays
  skip the transform; no model is loaded), ``content`` off, so txtai keeps our ids. ``backend``
  ``numpy`` (exact scan) or ``faiss`` with txtai's own components (``IVF{cells},Flat`` above 5,000
  rows; ``IDMap,Flat`` below) and its derived ``nprobe`` default, swept. txtai builds an index
  in one ``index()`` call over a stream of documents (``upsert`` appends to an index already
  built, so batch-by-batch upserts would freeze the first batch's small flat layout): ``add``
  only collects the batches, ``build`` streams them to ``index()`` and ``save()``\\ s the index
  (files written, not fsynced); nothing is on disk before that. txtai L2-normalises every vector
  it indexes (queries handed over as arrays are not), so it ranks by cosine: the same as inner
  product on unit-norm data (the Debian MiniLM set), not on the Gaussian set. Importing txtai
  imports torch and transformers (about 15 s here).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.peers_base import (
    EF_DEFAULT,
    EF_SWEEP,
    F32,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    I64,
    System,
    pad,
)

COLLECTION = "bench"


# -- milvus-lite ---------------------------------------------------------------------------------


def milvus_index_params(client: Any, hnsw: bool) -> Any:
    """Index parameters for the vector field: ``HNSW`` at the shared M / efConstruction, or
    ``FLAT``; metric ``IP`` either way."""
    params = client.prepare_index_params()
    if hnsw:
        # pymilvus 3 sends an index's params as top-level key/value pairs, milvus-lite 3.2 reads
        # them from a "params" key only (and silently builds with its defaults, M=16 and
        # efConstruction=200, otherwise): nest them once more so that key exists.
        build = {"params": {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}}
        params.add_index("vector", index_type="HNSW", metric_type="IP", params=build)
    else:
        params.add_index("vector", index_type="FLAT", metric_type="IP")
    return params


def milvus_create(client: Any, dim: int, hnsw: bool) -> None:
    """The benchmark collection: int64 primary key ``id`` and a ``dim`` float vector."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = milvus_index_params(client, hnsw)
    client.create_collection(COLLECTION, schema=schema, index_params=index)


def milvus_rows(ids: I64, x: F32) -> list[dict[str, Any]]:
    """Rows as ``MilvusClient.insert`` takes them."""
    return [{"id": i, "vector": v} for i, v in zip(ids.tolist(), x, strict=True)]


def milvus_search(client: Any, q: F32, k: int, ef: int | None) -> I64:
    """Top-``k`` ids of each query; ``ef`` for HNSW (None for FLAT)."""
    params = {"params": {"ef": ef}} if ef else {}
    hits = client.search(COLLECTION, data=list(q), limit=k, search_params=params)
    return pad([[int(h["id"]) for h in row] for row in hits], k)


class MilvusFlat(System):
    name, exact, durable = "milvus-flat", True, "flush"
    packages = ("milvus_lite", "pymilvus")
    hnsw = False

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        from pymilvus import MilvusClient

        self.path = str(workdir / "milvus.db")
        self.client: Any = MilvusClient(self.path)
        milvus_create(self.client, dim, self.hnsw)
        self.ef: int | None = self.default_knob

    @property
    def settings(self) -> str:
        return "`MilvusClient('….db')` (server thread in-process), index `FLAT`, metric `IP`"

    def add(self, ids: I64, x: F32) -> None:
        self.client.insert(COLLECTION, milvus_rows(ids, x))

    def build(self) -> None:
        self.client.flush(COLLECTION)

    def search(self, q: F32, k: int) -> I64:
        return milvus_search(self.client, q, k, self.ef)

    def close(self) -> None:
        from milvus_lite import server_manager_instance

        self.client.close()
        server_manager_instance.release_server(self.path)
        super().close()


class MilvusHNSW(MilvusFlat):
    name, exact, hnsw = "milvus-hnsw", False, True
    knobs, default_knob = EF_SWEEP, EF_DEFAULT

    @property
    def settings(self) -> str:
        return (
            f"`MilvusClient('….db')`, index `HNSW` M={HNSW_M}, efConstruction="
            f"{HNSW_EF_CONSTRUCTION} (milvus-lite's defaults: 16, 200), metric `IP`"
        )

    def knob(self, value: int) -> None:
        self.ef = value


# -- txtai ---------------------------------------------------------------------------------------


def txtai_cells(n: int) -> int:
    """txtai's IVF cell count for ``n`` rows (``ann/dense/faiss.py``)."""
    return max(min(round(4 * math.sqrt(n)), int(n / 39)), 1)


class TxtaiNumpy(System):
    name, exact, durable = "txtai-numpy", True, "save"
    packages = ("txtai", "torch")
    backend = "numpy"

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        from txtai import Embeddings

        self.emb: Any = Embeddings({"method": "external", "backend": self.backend})
        self.parts: list[tuple[I64, F32]] = []

    @property
    def settings(self) -> str:
        return "`Embeddings(method='external', backend='numpy')`, vectors passed as arrays"

    def add(self, ids: I64, x: F32) -> None:
        self.parts.append((ids, x))

    def _stream(self) -> Iterator[tuple[int, F32, None]]:
        for ids, x in self.parts:
            yield from zip(ids.tolist(), x, [None] * len(ids), strict=True)

    def build(self) -> None:
        self.emb.index(self._stream())
        self.parts = []
        self.emb.save(str(self.workdir / "txtai"))

    def search(self, q: F32, k: int) -> I64:
        rows = [self.emb.search(q[0], k)] if len(q) == 1 else self.emb.batchsearch(list(q), k)
        return pad([[int(i) for i, _ in row] for row in rows], k)

    def close(self) -> None:
        self.emb.close()
        super().close()


class TxtaiFaiss(TxtaiNumpy):
    name, exact, backend = "txtai-faiss", False, "faiss"
    knobs = (8, 16, 32, 64, 128)

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        #: txtai's own nprobe for n rows (cells / 16), used until the sweep sets one.
        self.default_knob = round(txtai_cells(n) / 16) if n > 5000 else None

    @property
    def settings(self) -> str:
        if self.n <= 5000:
            return "`Embeddings(method='external', backend='faiss')`: `IDMap,Flat` (≤ 5,000 rows)"
        return (
            f"`Embeddings(method='external', backend='faiss')`: txtai's default `IVF"
            f"{txtai_cells(self.n)},Flat`, nprobe {self.default_knob} (its default, cells / 16)"
        )

    def knob(self, value: int) -> None:
        self.emb.config.setdefault("faiss", {})["nprobe"] = value
