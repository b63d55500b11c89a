"""``st:<dir>``: a local sentence-transformers model directory (optional ``[torch]`` extra).

sentence-transformers and torch are imported on first use only, with the Hugging Face hub
switched offline first: a directory that is missing or incomplete is an error, never a download.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from encoders.base import Encoded, EncoderError, check_texts, l2_normalize
from encoders.files import fingerprint
from encoders.minilm import check_run_params

INSTALL_HINT = "pip install 'innerspace[torch]'"
MAX_TOKENS = 8192
_lock = threading.Lock()


def _import_st() -> Any:
    # Set before the first import: huggingface_hub reads these once, at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import sentence_transformers  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise EncoderError(
            f"st: encoders need sentence-transformers and torch: {INSTALL_HINT}"
        ) from None
    return sentence_transformers


@dataclass(frozen=True)
class STParams:
    """``st:<dir>`` parameters; ``threads`` sets torch's (process-wide) intra-op threads."""

    max_tokens: int = 256
    threads: int = 2
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_run_params(self.max_tokens, self.threads, self.batch_size, MAX_TOKENS)


class STEncoder:
    """Dense vectors from a sentence-transformers directory, L2-normalised, on CPU."""

    Params: ClassVar[type[STParams]] = STParams
    takes_path: ClassVar[bool] = True
    summary: ClassVar[str] = "local sentence-transformers directory (needs innerspace[torch])"

    def __init__(self, spec: str, name: str, params: STParams, path: Path) -> None:
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EncoderError(
                f"sentence-transformers model directory {path} does not exist or lacks "
                "modules.json/config.json"
            )
        st = _import_st()
        import torch  # type: ignore[import-not-found,unused-ignore]

        torch.set_num_threads(params.threads)
        try:
            model = st.SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/its own types
            raise EncoderError(f"cannot load sentence-transformers model {path}: {exc}") from None
        model.max_seq_length = params.max_tokens
        # sentence-transformers >= 6 renamed the method; keep working on both sides.
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        if not isinstance(dim, int) or dim <= 0:
            raise EncoderError(f"{path}: cannot tell the embedding dimension ({dim!r})")
        files = {
            p.relative_to(path).as_posix(): p
            for p in sorted(path.rglob("*"))
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
        }
        self._spec, self._name, self._p, self._dim = spec, name, params, dim
        self._model = model
        self._fingerprint = fingerprint(files)

    @classmethod
    def build(cls, spec: str, name: str, params: STParams, path: Path | None) -> STEncoder:
        if path is None:
            raise EncoderError("st encoders need a directory: st:/path/to/model")
        if not path.is_dir():
            raise EncoderError(f"sentence-transformers model directory {path} does not exist")
        with _lock:  # torch thread settings and model loading are process-global
            return cls(spec, name, params, path)

    @property
    def spec(self) -> str:
        return self._spec

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def multivector(self) -> bool:
        return False

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def max_tokens(self) -> int:
        return self._p.max_tokens

    def __repr__(self) -> str:
        return f"STEncoder({self._spec!r}, dim={self._dim})"

    def encode_queries(self, texts: Sequence[str]) -> Encoded:
        return self._encode(texts, "encode_query")

    def encode_documents(self, texts: Sequence[str]) -> Encoded:
        return self._encode(texts, "encode_document")

    def _encode(self, texts: Sequence[str], method: str) -> Encoded:
        items = check_texts(texts)
        if not items:
            return Encoded(np.zeros((0, self._dim), np.float32), 0, [])
        # encode_query/encode_document apply the model's own prompts (e5, bge); older releases
        # only have encode.
        encode = getattr(self._model, method, self._model.encode)
        out = encode(
            items,
            batch_size=self._p.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        vectors = np.asarray(out, dtype=np.float32)
        if vectors.shape != (len(items), self._dim):
            raise EncoderError(f"{self._name}: output {vectors.shape}, expected (n, {self._dim})")
        # Untruncated lengths tell what was cut; verbose=False: long inputs are expected here.
        tokenized = self._model.tokenizer(items, truncation=False, verbose=False)
        lengths = [len(ids) for ids in tokenized["input_ids"]]
        counts = [min(n, self._p.max_tokens) for n in lengths]
        truncated = sum(n > self._p.max_tokens for n in lengths)
        return Encoded(l2_normalize(vectors), truncated, counts)
