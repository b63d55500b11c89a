"""MUVERA multi-vector retrieval: FDE candidates from a dense MIPS index, exact MaxSim re-rank.

Spec: ``Muvera(k_sim=5,d_proj=16,r_reps=20,fill=zero,d_final=0,store_dtype=float32,seed=42),
<inner>,MaxSim(candidates=100)`` where ``<inner>`` is any registered dense index spec (``Flat``,
``HNSW(...)``, ...) or ``PQ(m=...,nbits=8)`` (:mod:`index.muvera_pq`: 32x smaller FDEs) built
over the FDEs. Each document's token set is encoded once, at ``add``, into a document FDE
(:mod:`index.fde`) that goes into the inner index; its tokens go into a
:class:`~index.maxsim.TokenStore`. A query's FDE fetches ``candidates`` documents from the inner
index, which are then re-ranked by exact MaxSim over the stored tokens: FDE scores only pick
candidates and are never returned. ``exact=True`` scans every document by MaxSim instead.

Presets (``PRESETS``): ``default`` 20 x 32 buckets x 16 = 10,240 dims (the paper's setting);
``wide`` k_sim=4, d_proj=32: 20 x 16 x 32 = 10,240 dims, more recall per candidate;
``compact`` k_sim=3, d_proj=16: 20 x 8 x 16 = 2,560 dims, 4x smaller FDEs. ``d_final``
count-sketches the FDE further. ``store_dtype=float16`` halves the token store (re-rank scores
then come from float16 tokens). Adds are incremental: new documents are encoded with the same
saved matrices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from index.base import F32, I64, IdSelector, Index, SearchResult, check_ids
from index.fde import FDEMatrices, draw_matrices, encode_documents, encode_queries
from index.fde_kernel import Fill
from index.flat import _blas
from index.maxsim import MaxSimParams, MaxSimReranker, StoreDtype, TokenStore, pack
from index.muvera_pq import inner_class, inner_factory
from index.params import SpecError, canonical_part
from index.spec import Part, parse_spec, stage_params

__all__ = ["PRESETS", "MuveraIndex", "MuveraParams"]

FORMAT = 1


@dataclass(frozen=True)
class MuveraParams:
    """FDE parameters (see :func:`index.fde.draw_matrices`), fill rule, final count-sketch
    dimension (0: none), token store dtype and the seed of every random matrix.

    ``fill`` also takes the issue's boolean spelling: ``fill=true`` is ``nearest``, ``fill=false``
    is ``zero`` (the canonical spec prints ``nearest``/``zero``). The default is ``zero`` (empty
    buckets stay zero, the reference implementation's default ``fill_empty_partitions=false``):
    measured better than the paper's nearest-token fill on every data set and candidate count
    here, SciFact ``minilm-tokens`` included (``index/MUVERA_NOTES.md``). Specs stored with
    ``fill=nearest`` keep it: the canonical spec prints the fill.
    """

    k_sim: int = 5
    d_proj: int = 16
    r_reps: int = 20
    fill: Literal["nearest", "zero", "true", "false"] = "zero"
    d_final: int = 0
    store_dtype: Literal["float32", "float16"] = "float32"
    seed: int = 42

    def __post_init__(self) -> None:
        aliases = {"true": "nearest", "false": "zero", True: "nearest", False: "zero"}
        if self.fill in aliases:
            object.__setattr__(self, "fill", aliases[self.fill])
        if self.fill not in ("nearest", "zero"):
            raise ValueError(f"fill must be nearest or zero (or true/false), got {self.fill!r}")
        if not 0 <= self.k_sim <= 10:
            raise ValueError(f"k_sim must be in [0, 10], got {self.k_sim}")
        if self.d_proj < 1 or self.r_reps < 1:
            raise ValueError("d_proj and r_reps must be >= 1")
        if self.d_final < 0 or self.seed < 0:
            raise ValueError("d_final and seed must be >= 0")

    @property
    def fde_dim(self) -> int:
        return self.d_final or self.r_reps * (1 << self.k_sim) * self.d_proj


#: Named parameter sets: the paper's default (10,240 dims), ``wide`` (the same 10,240 dims as
#: 16 buckets x 32 projected dims: higher recall per candidate on 128- and 384-dim tokens, about
#: 1.6x the encoding cost) and ``compact`` (2,560 dims: 8 buckets x 16, measured better than
#: 16 buckets x 8 on both data sets). See ``index/MUVERA_NOTES.md``.
PRESETS: dict[str, MuveraParams] = {
    "default": MuveraParams(),
    "wide": MuveraParams(k_sim=4, d_proj=32, r_reps=20),
    "compact": MuveraParams(k_sim=3, d_proj=16, r_reps=20),
}

Docs = Sequence[npt.ArrayLike]


class MuveraIndex:
    """Multi-vector MaxSim search: MUVERA FDE candidates, exact MaxSim re-ranking.

    Documents and queries are sequences of ``(t_i, dim)`` token arrays (``dim`` = token
    dimension); ids are ``(n,) int64`` and unique among live documents.
    """

    Params = MuveraParams
    multivector: ClassVar[bool] = True
    persist: ClassVar[bool] = True
    exact: ClassVar[bool] = False
    #: Per-call search parameters (keywords of :meth:`search`).
    KNOBS: ClassVar[tuple[str, ...]] = ("candidates", "exact", "tau")

    def __init__(
        self,
        dim: int,
        params: MuveraParams | None = None,
        inner: str = "Flat",
        maxsim: MaxSimParams | None = None,
        *,
        matrices: FDEMatrices | None = None,
    ) -> None:
        self.params = params or MuveraParams()
        p = self.params
        if p.d_proj > dim:
            raise SpecError(f"Muvera: d_proj={p.d_proj} exceeds the token dimension {dim}")
        self._dim = dim
        self.maxsim = maxsim or MaxSimParams()
        self.matrices = matrices or draw_matrices(
            dim, p.k_sim, p.d_proj, p.r_reps, p.seed, p.d_final
        )
        if (self.matrices.dim, self.matrices.fde_dim) != (dim, p.fde_dim):
            raise ValueError("matrices do not match the parameters")
        self.inner: Index = inner_factory(p.fde_dim, inner)
        if getattr(type(self.inner), "multivector", False):
            raise SpecError("Muvera: the inner index must be a dense index: Flat, HNSW, PQ, ...")
        self.store = TokenStore(dim, p.store_dtype)
        self.reranker = MaxSimReranker(self.store)

    @classmethod
    def compose(cls, dim: int, params: MuveraParams, rest: list[Part]) -> MuveraIndex:
        """``Muvera(...),<inner parts>,MaxSim(...)``: inner defaults to Flat, MaxSim to its
        defaults."""
        maxsim = MaxSimParams()
        if rest and rest[-1].name == "MaxSim":
            maxsim = stage_params(rest[-1])
            rest = rest[:-1]
        names = [part.name for part in rest]
        if "MaxSim" in names or "Muvera" in names:
            raise SpecError("Muvera: expected Muvera(...),<dense index>,MaxSim(...)")
        inner = ",".join(str(part) for part in rest) or "Flat"
        return cls(dim, params, inner, maxsim)

    # -- identity -------------------------------------------------------------------------------

    @property
    def spec(self) -> str:
        parts = (canonical_part("Muvera", self.params), self.inner.spec)
        return ",".join((*parts, canonical_part("MaxSim", self.maxsim)))

    @property
    def dim(self) -> int:
        """Token dimension."""
        return self._dim

    @property
    def fde_dim(self) -> int:
        return self.matrices.fde_dim

    def __len__(self) -> int:
        """Live documents."""
        return len(self.store)

    # -- encoding -------------------------------------------------------------------------------

    def encode_documents(self, docs: Docs) -> F32:
        """``(n, fde_dim) float32`` document FDEs of ``docs`` (``(t_i, dim)`` arrays)."""
        tokens, offsets = pack(docs, self._dim, "document")
        return encode_documents(self.matrices, tokens, offsets, self._fill)

    def encode_queries(self, queries: Docs) -> F32:
        """``(nq, fde_dim) float32`` query FDEs of ``queries`` (``(t_i, dim)`` arrays)."""
        tokens, offsets = pack(queries, self._dim, "query")
        return encode_queries(self.matrices, tokens, offsets)

    @property
    def _fill(self) -> Fill:
        return "nearest" if self.params.fill == "nearest" else "zero"  # aliases are normalised

    # -- mutation -------------------------------------------------------------------------------

    def add(self, ids: I64, docs: Docs) -> None:
        """Add documents ``docs`` (``(t_i, dim)`` token arrays) under ``ids (n,) int64``.

        Raises ``ValueError`` naming the first empty, ragged or wrongly sized document, and for
        ids that are repeated or already live.
        """
        tokens, offsets = pack(docs, self._dim, "document")
        ids = check_ids(ids, len(offsets) - 1)
        if len(ids) == 0:
            return
        fde = encode_documents(self.matrices, tokens, offsets, self._fill)
        self.store.add(ids, tokens, offsets)  # validates ids before the inner index sees them
        self.inner.add(ids, fde)

    def remove(self, ids: I64) -> int:
        """Tombstone ``ids``; returns how many live documents were removed."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        removed = self.store.remove(ids)
        if removed:
            self.inner.remove(ids)
        return removed

    # -- search ---------------------------------------------------------------------------------

    def search(
        self,
        queries: Docs,
        k: int,
        selector: IdSelector | None = None,
        *,
        candidates: int | None = None,
        exact: bool = False,
        tau: float | None = None,
    ) -> SearchResult:
        """Top-``k`` documents by MaxSim for each query (a ``(t_q, dim)`` token array).

        Args:
            queries: ``nq`` query token sets.
            k: hits per query.
            selector: only these ids may be returned.
            candidates: FDE candidates re-ranked per query (default: the spec's MaxSim
                ``candidates``; raised to ``k``).
            exact: score every document by MaxSim (brute force, the ground truth).
            tau: ball-carve each query's tokens at cosine ``tau`` in ``(0, 1]`` before the
                re-rank (:func:`index.maxsim.carve`): fewer tokens to score, approximate
                scores; FDE candidates still come from every token. Ignored with ``exact``.

        Returns:
            ``(nq, k)`` MaxSim scores and ids, (score desc, id asc), ``-1``/``-inf`` padded.
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if tau is not None and not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        tokens, offsets = pack(queries, self._dim, "query")
        nq = len(offsets) - 1
        if exact:
            return self.reranker.search(tokens, offsets, k, selector)
        if candidates is not None and candidates < 1:
            raise ValueError(f"candidates must be positive, got {candidates}")
        c = max(k, self.maxsim.candidates if candidates is None else candidates)
        out = SearchResult(
            np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
        )
        if nq == 0 or len(self) == 0:
            return out
        fde = encode_queries(self.matrices, tokens, offsets)
        found = self.inner.search(fde, c, selector).ids
        with _blas.single_threaded():  # one switch for the whole batch of small re-ranks
            for i in range(nq):
                q = tokens[offsets[i] : offsets[i + 1]]
                hit = self.reranker.rerank(q, found[i], k, tau=tau)
                out.scores[i], out.ids[i] = hit.scores[0], hit.ids[0]
        return out

    # -- size and persistence -------------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes held: the inner FDE index, the token store and the random matrices."""
        return sum(self.nbytes_by_part().values())

    def nbytes_by_part(self) -> dict[str, int]:
        """Bytes held per part: ``fde_index`` (the inner index), ``tokens`` (the token store,
        growth slack included) and ``matrices`` (the random matrices)."""
        return {
            "fde_index": int(self.inner.nbytes()),
            "tokens": self.store.nbytes(),
            "matrices": self.matrices.nbytes(),
        }

    def save(self, path: Path) -> None:
        """Write ``index.json``, ``matrices.npz``, the token store (``*.npy``) and ``inner/``."""
        path.mkdir(parents=True, exist_ok=True)
        m = self.matrices
        matrices: dict[str, Any] = {"planes": m.planes, "seed": np.int64(self.params.seed)}
        for name in ("signs", "sketch_index", "sketch_sign"):
            value = getattr(m, name)
            if value is not None:
                matrices[name] = value
        np.savez(path / "matrices.npz", **matrices)
        for name, array in self.store.arrays().items():
            np.save(path / f"{name}.npy", array)
        self.inner.save(path / "inner")
        meta = {
            "format": FORMAT,
            "spec": self.spec,
            "dim": self._dim,
            "fde_dim": self.fde_dim,
            "n": len(self.store.ids),
            "params": asdict(self.params),
            "maxsim": asdict(self.maxsim),
            "inner": self.inner.spec,
        }
        (path / "index.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: Path) -> Self:
        meta = json.loads((path / "index.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown Muvera format {meta.get('format')!r}")
        params = MuveraParams(**meta["params"])
        with np.load(path / "matrices.npz") as z:
            saved = {name: z[name] for name in z.files}
        matrices = FDEMatrices(
            planes=saved["planes"],
            signs=saved.get("signs"),
            sketch_index=saved.get("sketch_index"),
            sketch_sign=saved.get("sketch_sign"),
            d_final=params.d_final,
        )
        dim = int(meta["dim"])
        index = cls(dim, params, "Flat", MaxSimParams(**meta["maxsim"]), matrices=matrices)
        inner_cls = inner_class(parse_spec(meta["inner"]).parts[0].name)
        index.inner = inner_cls.load(path / "inner")
        arrays = {name: np.load(path / f"{name}.npy") for name in ("tokens", "offsets", "ids")}
        arrays["dead"] = np.load(path / "dead.npy")
        store_dtype: StoreDtype = params.store_dtype
        index.store = TokenStore.from_arrays(dim, store_dtype, arrays)
        index.reranker = MaxSimReranker(index.store)
        if len(index.store) != len(index.inner) or index.inner.spec != meta["inner"]:
            raise ValueError(f"{path}: token store and FDE index disagree")
        return index
