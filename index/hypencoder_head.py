"""The Hypencoder hypernetwork head: a query's token embeddings -> its q-net's weights (numpy).

Every q-net tensor is generated as a ``(rows, cols)`` matrix: a hidden weight ``(h, h)`` as
``rows = h`` output units of ``cols = h`` inputs (then transposed to ``(in, out)``), the output
weight ``(h, 1)`` and each hidden bias ``(h,)`` as one row of ``h``. For each tensor ``j``, with
query tokens ``T (t, token_dim)``::

    K = T @ Wk + bk,  V = T @ Wv + bv                      (t, cols)
    A = softmax(Q @ K.T / sqrt(out_dim))                    (rows, t)  Q: learned hyper-queries
    G = layer_norm(relu(A @ V)) @ Wp + bp + B               (rows, cols)  B: learned base matrix

``out_dim`` is the generated tensor's output size (``h`` for hidden weights and biases, 1 for
the output weight): the reference code scales by it rather than by the key size. The layer norm
has no learned parameters. Only inference lives here (numpy); ``index.hypencoder_train`` trains
the same parameters with torch, an optional extra.

A head is saved as a directory: ``config.json`` (shapes, seed, training summary, sha256 of the
arrays) and ``head.safetensors`` (float32 or float16 arrays named ``<tensor>.<param>``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import safetensors.numpy

from index.base import F32
from index.hypencoder import QNet, layer_norm

__all__ = [
    "ARRAYS",
    "FORMAT",
    "PARAM_NAMES",
    "HeadConfig",
    "HyperHead",
    "TensorShape",
    "arrays_file",
]

#: ``config.json`` "format" value; a directory with another one is refused.
FORMAT = "innerspace-hypencoder-head/2"
#: The first format: the same arrays in ``head.npz`` (still read).
FORMAT_NPZ = "innerspace-hypencoder-head/1"
#: The arrays' file name in a head directory.
ARRAYS = "head.safetensors"
#: Learned arrays of each generated tensor.
PARAM_NAMES = ("query", "key_w", "key_b", "value_w", "value_b", "proj_w", "proj_b", "base")


@dataclass(frozen=True)
class TensorShape:
    """One generated q-net tensor: ``rows`` hyper-queries of ``cols`` values each."""

    name: str
    rows: int
    cols: int
    out_dim: int  # sets the attention scale sqrt(out_dim)
    transpose: bool  # hidden weights: (out, in) generated, (in, out) used


@dataclass(frozen=True)
class HeadConfig:
    """Shapes of a head. ``dim``: document dimension ``h``; ``token_dim``: query token size;
    ``n_hidden``: q-net hidden layers; ``seed``: initialisation seed."""

    dim: int = 384
    token_dim: int = 384
    n_hidden: int = 2
    residual_last: bool = False
    seed: int = 0
    encoder: str = ""  # the token encoder spec the head was trained on (informational)
    doc_encoder: str = ""  # the document encoder spec (informational)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.token_dim < 1:
            raise ValueError(f"dim and token_dim must be >= 1, got {self.dim}, {self.token_dim}")
        if self.n_hidden < 0:
            raise ValueError(f"n_hidden must be >= 0, got {self.n_hidden}")

    def tensors(self) -> list[TensorShape]:
        """Generated tensors in q-net order: hidden weights, output weight, hidden biases."""
        h = self.dim
        out = [TensorShape(f"w{i}", h, h, h, True) for i in range(self.n_hidden)]
        out.append(TensorShape("out", 1, h, 1, False))
        out += [TensorShape(f"b{i}", 1, h, h, False) for i in range(self.n_hidden)]
        return out

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every learned array's name and shape."""
        shapes: dict[str, tuple[int, ...]] = {}
        for t in self.tensors():
            c = t.cols
            shapes.update(
                {
                    f"{t.name}.query": (t.rows, c),
                    f"{t.name}.key_w": (self.token_dim, c),
                    f"{t.name}.key_b": (c,),
                    f"{t.name}.value_w": (self.token_dim, c),
                    f"{t.name}.value_b": (c,),
                    f"{t.name}.proj_w": (c, c),
                    f"{t.name}.proj_b": (c,),
                    f"{t.name}.base": (t.rows, c),
                }
            )
        return shapes


def init_params(config: HeadConfig) -> dict[str, F32]:
    """Seeded initial arrays: generated hidden weights start near He-initialised base matrices
    plus a smaller query-dependent part; the output weight starts fully query-dependent."""
    rng = np.random.default_rng(config.seed)
    h, td = config.dim, config.token_dim
    out: dict[str, F32] = {}

    def normal(shape: tuple[int, ...], std: float) -> F32:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    for t in config.tensors():
        c = t.cols
        hidden_w = t.name.startswith("w")
        # std of one generated entry: He for hidden weights, 1/sqrt(h) for the output weight,
        # small for biases; the query-dependent part is half that (LN output has unit variance).
        entry = math.sqrt(2 / h) if hidden_w else (1 / math.sqrt(h) if t.name == "out" else 0.02)
        out[f"{t.name}.query"] = normal((t.rows, c), 1.0)
        out[f"{t.name}.key_w"] = normal((td, c), 1 / math.sqrt(td))
        out[f"{t.name}.key_b"] = np.zeros(c, np.float32)
        out[f"{t.name}.value_w"] = normal((td, c), 1 / math.sqrt(td))
        out[f"{t.name}.value_b"] = np.zeros(c, np.float32)
        scale = 0.5 if hidden_w else 1.0
        out[f"{t.name}.proj_w"] = normal((c, c), scale * entry / math.sqrt(c))
        out[f"{t.name}.proj_b"] = np.zeros(c, np.float32)
        base = normal((t.rows, c), entry) if hidden_w else np.zeros((t.rows, c), np.float32)
        out[f"{t.name}.base"] = base
    return out


def _softmax_rows(x: F32) -> F32:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


@dataclass
class HyperHead:
    """A hypernetwork head with its arrays; :meth:`qnet` builds a query's q-net."""

    config: HeadConfig
    params: dict[str, F32]
    info: dict[str, Any] = field(default_factory=dict)  # training summary, saved with the head

    def __post_init__(self) -> None:
        want = self.config.param_shapes()
        if set(self.params) != set(want):
            missing = sorted(set(want) - set(self.params))
            extra = sorted(set(self.params) - set(want))
            raise ValueError(
                f"head arrays do not match the config: missing {missing}, extra {extra}"
            )
        for name, shape in want.items():
            a = self.params[name]
            if a.dtype != np.float32 or a.shape != shape:
                raise ValueError(f"{name} must be float32 {shape}, got {a.dtype} {a.shape}")

    @classmethod
    def init(cls, config: HeadConfig) -> HyperHead:
        """A freshly initialised head (deterministic in ``config.seed``)."""
        return cls(config, init_params(config))

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def token_dim(self) -> int:
        return self.config.token_dim

    def qnet(self, tokens: npt.ArrayLike) -> QNet:
        """The q-net of one query from its token embeddings ``(t >= 1, token_dim)``."""
        tok = np.ascontiguousarray(tokens, dtype=np.float32)
        if tok.ndim != 2 or tok.shape[1] != self.token_dim or tok.shape[0] == 0:
            raise ValueError(
                f"query tokens must be (t >= 1, {self.token_dim}) float32, got {tok.shape}"
            )
        if not np.isfinite(tok).all():
            raise ValueError("query tokens must be finite")
        p = self.params
        generated: dict[str, F32] = {}
        for t in self.config.tensors():
            n = t.name
            keys = tok @ p[f"{n}.key_w"] + p[f"{n}.key_b"]
            values = tok @ p[f"{n}.value_w"] + p[f"{n}.value_b"]
            logits = (p[f"{n}.query"] @ keys.T) / np.float32(math.sqrt(t.out_dim))
            att = _softmax_rows(logits.astype(np.float32, copy=False))
            ctx = np.maximum(att @ values, 0)
            g = layer_norm(ctx) @ p[f"{n}.proj_w"] + p[f"{n}.proj_b"] + p[f"{n}.base"]
            generated[n] = np.ascontiguousarray(g.T if t.transpose else g, dtype=np.float32)
        nh = self.config.n_hidden
        weights = tuple(generated[f"w{i}"] for i in range(nh)) + (generated["out"].T.copy(),)
        biases = tuple(generated[f"b{i}"][0] for i in range(nh))
        return QNet(weights, biases, self.config.residual_last)

    def qnets(self, queries: list[F32]) -> QNet:
        """The q-nets of several queries (ragged token matrices), stacked."""
        return QNet.stack([self.qnet(q) for q in queries])

    def save(self, path: Path, float16: bool = False) -> None:
        """Write ``config.json`` + ``head.safetensors`` into directory ``path`` (each file
        atomically, arrays first, so a reader never sees a config without its arrays);
        ``float16`` stores the arrays as float16 (:meth:`load` widens them back to float32),
        halving the file at a relative rounding of ~5e-4."""
        path.mkdir(parents=True, exist_ok=True)
        dtype = np.float16 if float16 else np.float32
        arrays = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in self.params.items()}
        # safetensors: a flat, mmap-able format that cannot execute code on load (unlike
        # pickle), read by torch, numpy and the other frameworks alike.
        blob = safetensors.numpy.save(arrays, metadata={"format": FORMAT})
        digest = hashlib.sha256(blob).hexdigest()
        _write_atomic(path / ARRAYS, blob)
        info = {**self.info, "storage": "float16"} if float16 else self.info
        meta = {
            "format": FORMAT,
            "config": asdict(self.config),
            "sha256": digest,
            "info": info,
        }
        _write_atomic(path / "config.json", json.dumps(meta, indent=1, sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path) -> HyperHead:
        """Read a head saved by :meth:`save` (or an earlier ``head.npz`` one); refuses another
        format or arrays whose sha256 differs from the config's."""
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"no Hypencoder head at {path} (missing config.json)")
        meta = json.loads(cfg_file.read_text())
        fmt = meta.get("format")
        if fmt not in (FORMAT, FORMAT_NPZ):
            raise ValueError(f"{cfg_file}: format {fmt!r}, expected {FORMAT!r}")
        arrays = path / (ARRAYS if fmt == FORMAT else "head.npz")
        blob = arrays.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise ValueError(f"{arrays} does not match the sha256 in config.json")
        config = HeadConfig(**meta["config"])
        if fmt == FORMAT:
            raw = safetensors.numpy.load(blob)
        else:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in raw.items()}
        return cls(config, params, dict(meta.get("info", {})))


def arrays_file(path: Path) -> Path:
    """The arrays file of the head directory ``path`` (either format)."""
    npz = path / "head.npz"
    return npz if npz.is_file() and not (path / ARRAYS).is_file() else path / ARRAYS


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
