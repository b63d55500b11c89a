"""Contenders and data sets of :mod:`bench.binary`: our ``BinaryIndex`` specs, faiss's RaBitQ and
binary indexes used directly, the real Debian MiniLM set and the seeded clustered synthetic set."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from bench.binary_report import KNOBBED, OURS
from bench.datasets import DEBIAN_DOCS, DEBIAN_QUERIES, load_debian
from index.binary import BinaryIndex
from index.codes import random_orthogonal
from index.spec import index_factory

#: How to build the real set when its cache is missing.
BUILD_REAL = (
    f"no cached Debian MiniLM embeddings ({DEBIAN_DOCS}, {DEBIAN_QUERIES}): build them with "
    "`python -m bench.datasets` (encodes ../shared/data/debian with the bundled MiniLM, minutes "
    "on 2 cores)"
)


# -- contenders -----------------------------------------------------------------------------------


class Ours:
    """``index.binary.BinaryIndex`` from a spec; ids are row numbers."""

    kind = "ours"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.index: BinaryIndex | None = None
        self.knobs: dict[str, int] = {}

    def build(self, x: np.ndarray) -> None:
        index = index_factory(x.shape[1], self.spec)
        assert isinstance(index, BinaryIndex)
        index.add(np.arange(len(x), dtype=np.int64), x)
        self.index = index

    def share_store(self, x: np.ndarray) -> None:
        """Point the float32 re-scoring store at the benchmark's one copy of ``x`` (the same
        rows, so the same results): at 1M x 384 each index's own copy is 1.5 GB. Called after
        the build is timed, so the encode rate still pays for the copy."""
        assert self.index is not None
        store = self.index._store
        if store.dtype == np.float32 and not store.mapped and len(store) == len(x):
            store._x = x

    def search(self, q: np.ndarray, k: int, oversample: float) -> np.ndarray:
        assert self.index is not None
        return self.index.search(q, k, oversample=oversample, **self.knobs).ids

    def sizes(self) -> dict[str, float]:
        assert self.index is not None
        per = self.index.bytes_per_vector()
        return {
            "codes": per["codes"],
            "index_ram": per["ram"] - per["store"],  # codes + factors + id + tombstones
            "rescore_store": per["store"],
        }


class Knobbed(Ours):
    """Another contender's index searched with other per-search ``knobs`` (nothing is built:
    its encode rate and sizes are the other's)."""

    kind = "ours-knobs"

    def __init__(self, base: Ours, knobs: dict[str, int]) -> None:
        super().__init__(base.spec + " " + ",".join(f"{k}={v}" for k, v in knobs.items()))
        self.base, self.knobs = base, knobs

    def build(self, x: np.ndarray) -> None:
        self.index = self.base.index


class FaissRefined:
    """A faiss RaBitQ index (behind a random rotation) re-scored by ``IndexRefine`` over a shared
    ``IndexFlatIP`` (``k_factor = oversample``)."""

    kind = "faiss"

    def __init__(self, label: str, make: Callable[[int], Any]) -> None:
        self.spec, self.make = label, make
        self.base: Any = None
        self.index: Any = None

    def build(self, x: np.ndarray) -> None:
        base = self.make(x.shape[1])
        base.train(x)
        base.add(x)
        self.base = base

    def attach(self, refine: Any) -> None:
        self.index = faiss.IndexRefine(self.base, refine)

    def search(self, q: np.ndarray, k: int, oversample: float) -> np.ndarray:
        params = faiss.IndexRefineSearchParameters(k_factor=float(oversample))
        return np.asarray(self.index.search(q, k, params=params)[1])

    def sizes(self) -> dict[str, float]:
        inner = faiss.downcast_index(self.base.index) if hasattr(self.base, "index") else self.base
        codes = float(inner.codes.size()) / max(1, int(inner.ntotal))
        # faiss labels are the row numbers: no id array; no tombstones
        return {"codes": codes, "index_ram": codes, "rescore_store": 4.0 * self.base.d}


def rabitq(bits: int, fast: bool) -> Callable[[int], Any]:
    def make(d: int) -> Any:
        ip = faiss.METRIC_INNER_PRODUCT
        inner = (
            faiss.IndexRaBitQFastScan(d, ip, 32, bits) if fast else faiss.IndexRaBitQ(d, ip, bits)
        )
        # faiss's wrapper keeps references to the constructor's arguments
        return faiss.IndexPreTransform(faiss.RandomRotationMatrix(d, d), inner)

    return make


class FaissBinary:
    """faiss ``IndexBinaryFlat`` over ``sign(R (x - mean))`` (query: ``sign(R q)``), depth
    ``k * oversample`` by Hamming distance, re-scored exactly in numpy."""

    kind = "faiss"
    spec = "IndexBinaryFlat(sign of centred rotated x) + numpy re-score"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.x: np.ndarray = np.empty((0, 0), dtype=np.float32)

    def build(self, x: np.ndarray) -> None:
        d = x.shape[1]
        self.rot = random_orthogonal(np.random.default_rng(self.seed), d).astype(np.float32)
        self.mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.index = faiss.IndexBinaryFlat(d)
        for s in range(0, len(x), 65536):
            self.index.add(np.packbits((x[s : s + 65536] - self.mean) @ self.rot.T > 0, axis=1))
        self.x = x

    def search(self, q: np.ndarray, k: int, oversample: float) -> np.ndarray:
        depth = min(len(self.x), math.ceil(k * oversample))
        _, rows = self.index.search(np.packbits(q @ self.rot.T > 0, axis=1), depth)
        s = np.einsum("qcd,qd->qc", self.x[rows], q)
        o = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(rows, o, axis=1)

    def sizes(self) -> dict[str, float]:
        d = float(self.x.shape[1])
        return {"codes": d / 8, "index_ram": d / 8, "rescore_store": 4 * d}


def contenders(seed: int, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {name: Ours(spec) for name, spec in OURS.items()}
    for name, (base, knobs) in KNOBBED.items():
        out[name] = Knobbed(out[base], knobs)
    out["faiss-rabitq-1"] = FaissRefined(
        "RR,IndexRaBitQ(1 bit),IndexRefine(Flat)", rabitq(1, False)
    )
    if label == "real":  # 2 bits: recall on the real set only (its encoder runs ~10k/s)
        out["faiss-rabitq-2"] = FaissRefined(
            "RR,IndexRaBitQ(2 bits),IndexRefine(Flat)", rabitq(2, False)
        )
    out["faiss-fastscan-1"] = FaissRefined(
        "RR,IndexRaBitQFastScan(1 bit),IndexRefine(Flat)", rabitq(1, True)
    )
    out["faiss-binary"] = FaissBinary(seed)
    return out


def clustered(n: int, nq: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded embedding-like MIPS data (see the module docstring); queries drawn alike."""
    rng = np.random.default_rng(seed)
    sub = min(32, d)
    basis = np.linalg.qr(rng.standard_normal((d, sub)))[0].astype(np.float32)
    centres = (rng.standard_normal((64, sub)) * 2).astype(np.float32)
    out = np.empty((n + nq, d), dtype=np.float32)
    for s in range(0, n + nq, 100_000):
        m = min(100_000, n + nq - s)
        z = centres[rng.integers(0, 64, m)] + rng.standard_normal((m, sub), dtype=np.float32)
        v = z @ basis.T + 0.5 * rng.standard_normal((m, d), dtype=np.float32)
        out[s : s + m] = v * rng.uniform(0.5, 1.5, (m, 1)).astype(np.float32)
    return out[:n], out[n:].copy()


def debian(nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The real set: every Debian description embedding and every synopsis embedding except
    ``nq`` seeded held-out synopses, which are the queries (57,417 + 56,417 = 113,834 rows at
    ``nq = 1000``; both texts encoded by the same MiniLM)."""
    loaded = load_debian()
    if loaded is None:
        raise SystemExit(BUILD_REAL)
    docs, synopses = loaded
    pick = np.sort(np.random.default_rng(seed).choice(len(synopses), nq, replace=False))
    rest = np.ones(len(synopses), dtype=bool)
    rest[pick] = False
    x = np.concatenate([docs, synopses[rest]]).astype(np.float32, copy=False)
    return np.ascontiguousarray(x), synopses[pick].copy()
