"""The adapter contract of ``bench.peers`` and the parameters every adapter shares.

Every adapter speaks :class:`System`: ``add`` batches of ``(ids (n,) int64, vectors (n, d)
float32)``, ``build`` whatever is built after the last add, ``search`` queries ``(nq, d) float32``
for ``(nq, k) int64`` ids (``-1`` pads), and ``knob`` sets the one search-time accuracy parameter
of an approximate system (HNSW ``ef``, IVF ``nprobe(s)``). Peers import lazily, so a missing
package only drops that system.

Shared settings (stated in the report): every HNSW runs at the same build parameters, M=16 and
ef_construction=100 (chroma's documented defaults; hnswlib's README uses M=16 too), with ef swept
at search time; inner product everywhere.
"""

from __future__ import annotations

import shutil
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


def pad(rows: list[list[int]], k: int) -> I64:
    """Ragged id lists as one ``(len(rows), k)`` array, ``-1`` where a row is short."""
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r[:k]
    return out


class System:
    """The adapter contract; subclasses override what they support."""

    #: Registry name, e.g. ``"hnswlib"``.
    name: ClassVar[str] = ""
    #: ``"ours"`` or ``"peer"``.
    side: ClassVar[str] = "peer"
    #: True when search returns the exact top-k.
    exact: ClassVar[bool] = False
    #: When the data is on disk: ``"no"`` (memory only), ``"each add"`` (every add returns
    #: once written), ``"flush"`` / ``"save"`` (an explicit call after the last add, which is
    #: timed as part of ``build``).
    durable: ClassVar[str] = "no"
    #: The search-time knob swept for the recall/QPS curve (empty when exact).
    knobs: ClassVar[tuple[int, ...]] = ()
    #: The knob value of the latency / QPS tables (None: exact, or the system's own default).
    default_knob: int | None = None
    #: Import names this adapter needs (the first is the one named when missing).
    packages: ClassVar[tuple[str, ...]] = ("numpy",)

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


def described(systems: dict[str, System]) -> dict[str, dict[str, Any]]:
    """What the report prints beside each system's figures: bytes on disk, settings, when the
    data is durable, whether search is exact."""
    return {
        "disk_bytes": {name: s.disk_bytes() for name, s in systems.items()},
        "settings": {name: s.settings for name, s in systems.items()},
        "durable": {name: s.durable for name, s in systems.items()},
        "exact": {name: s.exact for name, s in systems.items()},
    }
