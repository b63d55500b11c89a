"""Our whole service embedded in the benchmark process, and the durable-ingest comparison.

``ours-flat`` / ``ours-hnsw`` are the index layer: vectors in RAM, nothing on disk. The embedded
databases (chroma's ``PersistentClient``, lancedb, milvus-lite's ``MilvusClient('x.db')``,
txtai with ``save``) write what they are given, so the like-for-like counterpart is the service
itself: ``ours-service`` is a :class:`~app.service.SearchService` on a data directory, one
``Flat`` collection, each ``upsert`` answered once its write-ahead-log record is fsynced and
searchable (exactly) at that moment. :func:`run_ingest` times every durable system from the
first add to searchable (their post-ingest flush / index / save included), batches interleaved,
which is the measure of the issue's "ingest >= 2x the best peer" for the embedded databases
(the servers are compared over the network by ``bench.peers_http``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

from bench.peers_base import F32, I64, System, described, pad
from bench.peers_workloads import dataset, ingest


class OursService(System):
    """:class:`~app.service.SearchService` in-process, a ``Flat`` collection."""

    name, side, exact, durable = "ours-service", "ours", True, "each add"
    packages: ClassVar[tuple[str, ...]] = ("numpy", "faiss")

    def __init__(self, dim: int, n: int, workdir: Path) -> None:
        super().__init__(dim, n, workdir)
        from app.config import Settings
        from app.service import SearchService

        self.svc = SearchService(Settings(data_dir=workdir / "data"))
        self.svc.open()
        self.svc.create_collection("bench", dim)

    @property
    def settings(self) -> str:
        return (
            "`SearchService` in-process, a `Flat` collection: each upsert answered once its "
            "WAL record is fsynced, searchable (exact) at that moment"
        )

    def add(self, ids: I64, x: F32) -> None:
        from app.service import PointWrite

        points = [PointWrite(i, v) for i, v in zip(ids.tolist(), x, strict=True)]
        self.svc.upsert("bench", points)

    def search(self, q: F32, k: int) -> I64:
        from app.search import Query

        found = self.svc.search("bench", [Query(vector=v.tolist(), k=k) for v in q])
        return pad([[int(h.id) for h in o.hits] for o in found], k)

    def close(self) -> None:
        self.svc.close()
        super().close()


#: The durable systems of the ingest comparison, ours first.
DURABLE = [
    "ours-service",
    "chroma",
    "lancedb-flat",
    "lancedb-ivfpq",
    "milvus-flat",
    "milvus-hnsw",
    "txtai-numpy",
    "txtai-faiss",
]


def run_ingest(data: str, names: list[str], n: int, dim: int, batch: int) -> dict[str, Any]:
    """Ingest to searchable for ``names`` (durable systems), batches interleaved; per system
    seconds of adds, of the post-ingest build, the rate to searchable and the bytes on disk."""
    from bench.peers_systems import opened

    x, _ = dataset(data, n, dim, 1)
    n, dim = x.shape
    out: dict[str, Any] = {"n": n, "dim": dim, "batch": batch, "systems": names}
    with (
        tempfile.TemporaryDirectory(prefix="innerspace-peers-ingest-") as work,
        opened(names, dim, n, Path(work)) as systems,
    ):
        out["ingest"] = ingest(systems, x, batch)
        out |= described(systems)
    return out
