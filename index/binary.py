"""Binary hashing index: compact codes in RAM pick candidates, exact float32 products re-score.

Spec::

    Binary(encoding=rabitq|sign|itq,bits=1,seed=42,backend=flat|hnsw|ivf,centroids=1,
           nprobe=128,m=32,ef_search=64,rescore_store=ram|mmap,
           store_dtype=float32|float16|int8),Rescore(oversample=4.0)

* ``encoding``: ``rabitq`` (:mod:`index.rabitq`: seeded rotation, centring, RaBitQ codes of
  ``bits`` per dimension, unbiased inner-product estimator, faiss fast-scan kernel), ``sign``
  (random hyperplanes, ``bits * d`` bits) or ``itq`` (learned hyperplanes, ``d`` bits); sign
  and ITQ codes are of norm-augmented residuals, so Hamming distance ranks by inner product
  whatever the norms (:mod:`index.codes`, :mod:`index.itq`).
* ``backend`` generates the candidates: ``flat`` scans every code; ``ivf`` scans the
  ``nprobe`` (per search too) of ``centroids`` k-means cells with the largest ``<q, c_j>``
  (RaBitQ: faiss ``IndexIVFRaBitQFastScan``, codes of residuals against the cell centroid;
  sign/ITQ: ``IndexBinaryIVF``, Hamming k-means); ``hnsw`` (sign/ITQ only) walks a faiss
  ``IndexBinaryHNSW`` graph of ``m`` links over the codes with ``efSearch = max(depth,
  ef_search)`` (per search too). ``centroids > 1`` with ``backend=flat`` (RaBitQ) codes
  residuals against the cells as ivf does and scans them all. ``centroids`` left out is 1
  for flat and :data:`IVF_LISTS` for ivf; fewer cells are trained when the training rows
  are under 39 per cell (the count used is in ``index.json``).
* ``Rescore(oversample)``: ``ceil(max(k, MIN_DEPTH) * oversample)`` candidates by estimate,
  re-scored exactly against the float store; the top-k is then exact *among the candidates*
  and ordered (score desc, id asc). ``Binary`` alone means ``Rescore(oversample=4.0)``: the
  printed spec always shows the stage. The floor ``MIN_DEPTH`` exists because the estimator's
  error does not shrink with ``k``: ``k=1`` at ``oversample=4`` would re-score only 4 rows.
* Per search: ``oversample=`` overrides the stage's, ``nprobe=`` / ``ef_search=`` the
  spec's, ``rescore=False`` returns the estimator's
  scores (``k`` candidates, no float reads). The index is never ``exact``.
* Float store: ``rescore_store=ram`` keeps the rows in RAM; ``mmap`` maps ``store.npy`` of the
  index directory once saved or loaded (rows added after that are copied back into RAM).
  ``store_dtype=float16`` halves it, ``int8`` (vector-wise absmax, LLM.int8 style) quarters it;
  both make re-scored values approximate (error reported in ``index/BINARY_NOTES.md``).
* Filters and tombstones: allowed sets of at most ``max(EXACT_ROWS, EXACT_SQRT * sqrt(n))``
  rows are scored exactly from the float store; larger ones are filtered during the code
  scan, and any query left with fewer than ``min(k, allowed)`` hits is redone exactly.

Training (:meth:`BinaryIndex.train`, or the first :meth:`~BinaryIndex.add`) learns the mean,
the rotations / ITQ matrices and the norm scale on at most ``TRAIN_SAMPLE`` seeded rows; every
learned matrix is saved with the index.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import faiss as _faiss
import numpy as np

from index.base import F32, I64, IdSelector, SearchResult, check_vectors
from index.binary_store import FloatStore, write_npy
from index.flat import scan
from index.hnsw import EXACT_ROWS, EXACT_SQRT, FaissIndex, _padding
from index.itq import HammingCodec
from index.params import SpecError, canonical_part
from index.rabitq import RaBitQCodec
from index.spec import Part, stage_params
from index.tombstones import Tombstones

#: faiss as ``Any`` (partial stubs since 1.15; see :mod:`index.hnsw`).
faiss: Any = _faiss

#: Re-scored candidates are ``ceil(max(k, MIN_DEPTH) * oversample)`` (capped at the rows).
MIN_DEPTH = 10
#: Rows the codes are trained on, at most (a seeded sample).
TRAIN_SAMPLE = 100_000
#: Rows encoded per step of ``add`` (bounds the float64 temporaries).
ADD_CHUNK = 32_768
#: Candidates re-scored per gather (bounds the temporary float rows).
RESCORE_BLOCK = 32_768
#: Bits per dimension when the spec gives none (see ``index/BINARY_NOTES.md`` for why 2).
DEFAULT_BITS = {"rabitq": 2, "sign": 1, "itq": 1}
#: ``centroids`` when the spec gives none: one centre for flat, ``IVF_LISTS`` cells for ivf.
IVF_LISTS = 1024
_ID_LAST = np.iinfo(np.int64).max


def _positive(name: str, value: object, default: int) -> int:
    """A per-search integer knob (``None``: the spec's ``default``)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class RescoreParams:
    """``oversample``: candidates per result (``>= 1``) re-scored exactly."""

    oversample: float = 4.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.oversample) and self.oversample >= 1):
            raise ValueError(f"oversample must be >= 1, got {self.oversample}")


@dataclass(frozen=True)
class BinaryParams:
    """See the module docstring. ``bits`` is per dimension; left out (or 0) it is the
    encoding's :data:`DEFAULT_BITS`, and the spec prints the value used."""

    encoding: Literal["rabitq", "sign", "itq"] = "rabitq"
    bits: int = 0
    seed: int = 42
    backend: Literal["flat", "hnsw", "ivf"] = "flat"
    centroids: int = 0
    nprobe: int = 128
    m: int = 32
    ef_search: int = 64
    rescore_store: Literal["ram", "mmap"] = "ram"
    store_dtype: Literal["float32", "float16", "int8"] = "float32"

    def __post_init__(self) -> None:
        if self.bits == 0:
            object.__setattr__(self, "bits", DEFAULT_BITS[self.encoding])
        top = 1 if self.encoding == "itq" else 8
        if not 1 <= self.bits <= top:
            raise ValueError(f"bits must be in [1, {top}] for {self.encoding}, got {self.bits}")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be in [0, 2**31), got {self.seed}")
        if self.centroids == 0:
            object.__setattr__(self, "centroids", IVF_LISTS if self.backend == "ivf" else 1)
        if self.centroids < 1 or self.nprobe < 1 or self.ef_search < 1 or not 2 <= self.m <= 256:
            raise ValueError("centroids, nprobe and ef_search must be >= 1, m in [2, 256]")
        if self.centroids > 1 and self.backend != "ivf" and self.encoding != "rabitq":
            raise ValueError("centroids > 1 needs encoding=rabitq or backend=ivf")
        if self.backend == "hnsw" and (self.encoding == "rabitq" or self.centroids > 1):
            raise ValueError("backend=hnsw walks a Hamming graph: encoding=sign|itq, one centre")


class BinaryIndex(FaissIndex):
    """Binary codes + exact re-scoring over tombstoned rows (see the module docstring)."""

    NAME: ClassVar[str] = "Binary"
    Params: ClassVar[type[Any]] = BinaryParams
    KNOBS: ClassVar[tuple[str, ...]] = ("oversample", "rescore", "nprobe", "ef_search")
    persist: ClassVar[bool] = True
    exact: ClassVar[bool] = False

    def __init__(
        self, dim: int, params: BinaryParams | None = None, rescore: RescoreParams | None = None
    ) -> None:
        super().__init__(dim, params)
        self.rescore = rescore or RescoreParams()
        p: BinaryParams = self.params
        self._codec: RaBitQCodec | HammingCodec = (
            RaBitQCodec(dim, p.bits, p.seed, p.centroids, p.backend == "flat")
            if p.encoding == "rabitq"
            else HammingCodec(dim, p.encoding, p.bits, p.seed, p.backend, p.centroids, p.m)
        )
        self._store = FloatStore(dim, p.store_dtype, p.rescore_store == "mmap")

    @classmethod
    def compose(cls, dim: int, params: BinaryParams, rest: list[Part]) -> Self:
        """``Binary(...),Rescore(...)``: exactly one ``Rescore`` stage may follow."""
        if len(rest) != 1 or rest[0].name != "Rescore":
            got = ",".join(str(p) for p in rest)
            raise SpecError(f"Binary takes one further part, Rescore(oversample=...); got {got!r}")
        return cls(dim, params, stage_params(rest[0]))

    @property
    def spec(self) -> str:
        return f"{canonical_part('Binary', self.params)},{canonical_part('Rescore', self.rescore)}"

    @property
    def trained(self) -> bool:
        return self._codec.trained

    # -- building -------------------------------------------------------------------------------

    def train(self, vectors: F32, n_total: int | None = None) -> None:
        """Learn the codes' mean, rotations and scales from ``vectors (m, d)`` (at most
        ``TRAIN_SAMPLE`` seeded rows of them). ``n_total`` is accepted for the build worker's
        protocol and unused. Must come before the first :meth:`add`."""
        vectors = check_vectors(vectors, self._dim)
        if self._n:
            raise ValueError("Binary: train() after add(): the codes are already written")
        if len(vectors) == 0:
            raise ValueError("Binary: train() needs at least one vector")
        if len(vectors) > TRAIN_SAMPLE:
            rng = np.random.default_rng(self.params.seed)
            vectors = vectors[np.sort(rng.choice(len(vectors), TRAIN_SAMPLE, replace=False))]
        self._codec.train(np.ascontiguousarray(vectors))

    def _add_vectors(self, vectors: F32) -> None:
        self._store.check(vectors)
        if not self.trained:
            self.train(vectors)
        self._store.reserve(len(vectors))
        for start in range(0, len(vectors), ADD_CHUNK):
            chunk = vectors[start : start + ADD_CHUNK]
            self._codec.add(chunk)
            self._store.append(chunk)

    # -- search ---------------------------------------------------------------------------------

    def search(  # type: ignore[override]
        self,
        queries: F32,
        k: int,
        selector: IdSelector | None = None,
        *,
        oversample: float | None = None,
        rescore: bool | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> SearchResult:
        """Top-``k`` of ``queries (nq, d) float32``: candidates by code, re-scored exactly
        unless ``rescore=False``; ``oversample``, ``nprobe`` (ivf) and ``ef_search`` (hnsw)
        override the spec's for this call."""
        queries = check_vectors(queries, self._dim, "queries")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        factor = self._oversample(oversample)
        p: BinaryParams = self.params
        probe = _positive("nprobe", nprobe, p.nprobe)
        ef = _positive("ef_search", ef_search, p.ef_search)
        if rescore is not None and not isinstance(rescore, bool):
            raise ValueError(f"rescore must be true or false, got {rescore!r}")
        exact_scores = rescore is not False
        nq, n = len(queries), self._n
        if nq == 0 or len(self) == 0 or not self.trained:
            return _padding(nq, k)
        # The (n,) allowed mask is built per search from the tombstones (transient: the index
        # keeps 8 bytes per dead row or a bit per row, not a byte; index.tombstones).
        mask = None
        m = len(self)
        if selector is None and self._ndead:
            mask = self.alive_mask()
        elif selector is not None:
            rows = self._live(selector.rows_in(self.ids, self._sorted))
            m = len(rows)
            if m == 0:
                return _padding(nq, k)
            if m <= max(EXACT_ROWS, EXACT_SQRT * math.sqrt(n)):
                return self._exact(queries, rows, k)
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
        kk = min(k, m)
        depth = min(m, math.ceil(max(kk, MIN_DEPTH) * factor)) if exact_scores else kk
        if exact_scores and depth >= m:  # every allowed row is a candidate anyway
            return self._exact(queries, None if mask is None else np.flatnonzero(mask), k)
        est, cand = self._codec.search(
            queries, depth, mask, m, ef if p.backend == "hnsw" else probe
        )
        scores = self._rescore(queries, cand) if exact_scores else est
        out = self._top(scores, cand, k)
        short = np.flatnonzero((out.ids >= 0).sum(axis=1) < kk)
        if len(short):
            allowed = np.arange(n) if mask is None else np.flatnonzero(mask)
            redo = self._exact(np.ascontiguousarray(queries[short]), allowed, k)
            out.scores[short], out.ids[short] = redo.scores, redo.ids
        return out

    def _oversample(self, value: object) -> float:
        if value is None:
            return self.rescore.oversample
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"oversample must be a number >= 1, got {value!r}")
        if not (math.isfinite(value) and value >= 1):
            raise ValueError(f"oversample must be a number >= 1, got {value!r}")
        return float(value)

    def _rescore(self, queries: F32, cand: I64) -> F32:
        """Exact ``<query, row>`` of every candidate ``cand (nq, c)`` (``-inf`` at pads)."""
        out = np.full(cand.shape, -np.inf, dtype=np.float32)
        qi, ci = np.nonzero(cand >= 0)
        for s in range(0, len(qi), RESCORE_BLOCK):
            q, c = qi[s : s + RESCORE_BLOCK], ci[s : s + RESCORE_BLOCK]
            x = self._store.gather(cand[q, c])
            out[q, c] = np.einsum("ij,ij->i", x, queries[q])
        return out

    def _top(self, scores: F32, rows: I64, k: int) -> SearchResult:
        """Best ``k`` of the candidates by (score desc, id asc), padded to ``k`` columns."""
        found = (rows >= 0) & (scores > -np.inf)
        ids = np.where(found, self._ids[np.maximum(rows, 0)], -1)
        s = np.where(found, scores, -np.inf).astype(np.float32)
        o = np.lexsort((np.where(found, ids, _ID_LAST), -s))[:, :k]
        out = _padding(len(rows), k)
        w = o.shape[1]
        out.scores[:, :w] = np.take_along_axis(s, o, axis=1)
        out.ids[:, :w] = np.take_along_axis(ids, o, axis=1)
        return out

    def _exact(self, queries: F32, rows: I64 | None, k: int) -> SearchResult:
        """Exact top-``k`` over ``rows`` of the float store (``None``: every row, all live)."""
        ids = self.ids if rows is None else self._ids[rows]
        res = scan(queries, self._store.gather(rows), ids, min(k, len(ids)))
        out = _padding(len(queries), k)
        out.scores[:, : res.k], out.ids[:, : res.k] = res.scores, res.ids
        return out

    # -- size and persistence -------------------------------------------------------------------

    def bytes_per_vector(self) -> dict[str, float]:
        """Bytes per stored row: ``ram`` (codes + factors (+ graph links or list ids) + id, +
        the tombstones' share (``tombstones``: ``min(8 * dead, n / 8) / n``, see
        :mod:`index.tombstones`), + the float store unless memory-mapped) and ``disk``
        (the same with the float store, and 8 bytes per removed row in ``dead_rows.npy``)."""
        n = max(self._n, 1)
        codes = self._codec.code_bytes() if self.trained else 0.0
        dead, dead_disk = self._dead.nbytes / n, 8.0 * self._ndead / n
        store = self._store.row_bytes()
        ram_store = 0.0 if self._store.mapped else store
        return {
            "ram": codes + 8 + dead + ram_store,
            "disk": codes + 8 + dead_disk + store,
            "codes": codes,
            "store": store,
            "tombstones": dead,
        }

    def nbytes(self) -> int:
        codes = self._codec.code_bytes() * self._n if self.trained else 0.0
        mats = sum(a.nbytes for a in vars(self._codec).values() if isinstance(a, np.ndarray))
        dead = self._dead.nbytes
        return int(codes + mats + self._ids.nbytes + dead + self._store.ram_bytes())

    def save(self, path: Path) -> None:
        """Write codes, learned matrices, ids, the removed rows (``dead_rows.npy``), the float
        store and ``index.json``."""
        path.mkdir(parents=True, exist_ok=True)
        self._codec.save(path, write_npy)
        self._store.save(path)
        write_npy(path / "ids.npy", self.ids)
        self._dead.save(path, write_npy)
        meta = {
            "spec": self.spec,
            "dim": self._dim,
            "n": self._n,
            "params": asdict(self.params),
            "rescore": asdict(self.rescore),
            "codec": self._codec.meta(),
            "faiss": faiss.__version__,
        }
        tmp = path / "index.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, path / "index.json")

    @classmethod
    def load(cls, path: Path) -> Self:
        meta = json.loads((path / "index.json").read_text())
        index = cls(
            int(meta["dim"]), BinaryParams(**meta["params"]), RescoreParams(**meta["rescore"])
        )
        index._codec.load(path, meta["codec"])
        index._store.load(path)
        ids = np.load(path / "ids.npy").astype(np.int64)
        n = len(ids)
        coded = int(index._codec.index.ntotal) if index.trained else 0
        if n != int(meta["n"]) or n != coded or n != len(index._store):
            raise ValueError(f"{path}: ids, codes and float store disagree")
        index._ids, index._n = ids, n
        index._dead = Tombstones.load(path, n)  # or an older dead.npy
        index._sorted = bool(n < 2 or np.all(ids[1:] > ids[:-1]))
        return index
