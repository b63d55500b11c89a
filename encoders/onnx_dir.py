"""Local ONNX models: ``onnx:<dir>`` (dense) and ``onnx-tokens:<dir>`` (per-token vectors).

The directory holds ``model.onnx`` (inputs ``input_ids`` [+ ``attention_mask``,
``token_type_ids``], a ``(batch, seq, dim)`` float output) and the matching ``tokenizer.json``;
nothing is ever downloaded. ``dim`` is read from the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from encoders.base import EncoderError
from encoders.files import fingerprint, require_dir
from encoders.minilm import check_run_params
from encoders.onnx import OnnxEncoder, Pooling, RunConfig

FILES = ("model.onnx", "tokenizer.json")
#: Upper bound on max_tokens: the model's own position limit is unknown until it fails.
MAX_TOKENS = 8192


@dataclass(frozen=True)
class OnnxDirParams:
    """``onnx:<dir>`` parameters; ``pooling=cls`` for models trained on [CLS] (BGE, GTE)."""

    max_tokens: int = 256
    threads: int = 2
    batch_size: int = 32
    pooling: Pooling = "mean"

    def __post_init__(self) -> None:
        check_run_params(self.max_tokens, self.threads, self.batch_size, MAX_TOKENS)


@dataclass(frozen=True)
class OnnxDirTokensParams:
    """``onnx-tokens:<dir>`` parameters."""

    max_tokens: int = 256
    threads: int = 2
    batch_size: int = 32
    float16: bool = False

    def __post_init__(self) -> None:
        check_run_params(self.max_tokens, self.threads, self.batch_size, MAX_TOKENS)


class OnnxDir(OnnxEncoder):
    """``onnx:<dir>``: any ONNX sentence encoder with its ``tokenizer.json``, dense output."""

    Params: ClassVar[type[object]] = OnnxDirParams
    takes_path: ClassVar[bool] = True
    summary: ClassVar[str] = "local ONNX encoder directory (model.onnx + tokenizer.json), dense"

    @classmethod
    def build(cls, spec: str, name: str, params: OnnxDirParams, path: Path | None) -> OnnxDir:
        root = _root(path)
        return cls(
            spec=spec,
            name=name,
            model=root / "model.onnx",
            tokenizer=root / "tokenizer.json",
            fingerprint=fingerprint({f: root / f for f in FILES}),
            config=RunConfig(
                max_tokens=params.max_tokens,
                threads=params.threads,
                batch_size=params.batch_size,
                pooling=params.pooling,
            ),
        )


class OnnxDirTokens(OnnxEncoder):
    """``onnx-tokens:<dir>``: a local ONNX encoder's per-token states as multi-vectors."""

    Params: ClassVar[type[object]] = OnnxDirTokensParams
    takes_path: ClassVar[bool] = True
    summary: ClassVar[str] = "local ONNX encoder directory, one vector per token"

    @classmethod
    def build(
        cls, spec: str, name: str, params: OnnxDirTokensParams, path: Path | None
    ) -> OnnxDirTokens:
        root = _root(path)
        return cls(
            spec=spec,
            name=name,
            model=root / "model.onnx",
            tokenizer=root / "tokenizer.json",
            fingerprint=fingerprint({f: root / f for f in FILES}),
            config=RunConfig(
                max_tokens=params.max_tokens,
                threads=params.threads,
                batch_size=params.batch_size,
                multivector=True,
                float16=params.float16,
            ),
        )


def _root(path: Path | None) -> Path:
    if path is None:
        raise EncoderError("onnx encoders need a directory: onnx:/path/to/model")
    require_dir(path, FILES, "ONNX")
    return path
