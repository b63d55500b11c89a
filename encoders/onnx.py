"""Transformer encoders run with onnxruntime + HF ``tokenizers`` (no torch).

One :class:`OnnxEncoder` serves every ONNX model whose graph takes ``input_ids`` (plus optionally
``attention_mask`` and ``token_type_ids``) and returns per-token states ``(batch, seq, dim)``:
dense output pools them (mean over the attention mask, or [CLS]) and L2-normalises; multi-vector
output keeps the content tokens, each L2-normalised.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]
from tokenizers import Encoding, Tokenizer  # type: ignore[import-untyped,unused-ignore]

from encoders.base import F32, Encoded, EncoderError, TokenVectors, check_texts, l2_normalize

Pooling = Literal["mean", "cls"]
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
I64 = npt.NDArray[np.int64]

#: Padded tokens per model run. Long texts run in small batches: at 256 tokens a batch of 32
#: is ~25% slower per text than batches of 2 (attention scratch falls out of cache), while short
#: sentences still batch 16-32 at a time (bench/encoders.py, encoders/NOTES.md).
TOKENS_PER_RUN = 512

_lock = threading.Lock()
#: One session per (model file, threads): ``minilm`` and ``minilm-tokens`` share theirs.
_sessions: dict[tuple[str, int], Any] = {}


@dataclass(frozen=True)
class RunConfig:
    """How to run a model: limits and output form (not part of the weights)."""

    max_tokens: int
    threads: int
    batch_size: int
    multivector: bool = False
    float16: bool = False
    pooling: Pooling = "mean"


def session(model: Path, threads: int) -> Any:
    """The process-wide onnxruntime session for ``model`` with ``threads`` intra-op threads."""
    key = (str(model.resolve()), threads)
    with _lock:
        if key not in _sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            # One graph runs at a time per call; parallelism is inside the matmuls.
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            try:
                _sessions[key] = ort.InferenceSession(
                    str(model), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise EncoderError(f"cannot load ONNX model {model}: {exc}") from None
        return _sessions[key]


def clear_sessions() -> None:
    """Drop cached sessions (the next :func:`session` call loads the file again)."""
    with _lock:
        _sessions.clear()


def load_tokenizer(path: Path, max_tokens: int) -> tuple[Tokenizer, int]:
    """A fresh tokenizer truncating to ``max_tokens`` without padding, and its pad id.

    Fresh per encoder because truncation is mutable tokenizer state.
    """
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise EncoderError(f"cannot load tokenizer {path}: {exc}") from None
    pad = tok.padding["pad_id"] if tok.padding else tok.token_to_id("[PAD]") or 0
    specials = tok.num_special_tokens_to_add(False)
    if max_tokens <= specials:
        raise EncoderError(f"max_tokens={max_tokens} leaves no room beside {specials} specials")
    # tokenizer.json files often ship with fixed padding (MiniLM's pads to 128): we pad per batch.
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    return tok, int(pad)


class OnnxEncoder:
    """Text encoder over an ONNX transformer; see the module docstring for the output forms."""

    def __init__(
        self,
        *,
        spec: str,
        name: str,
        model: Path,
        tokenizer: Path,
        fingerprint: str,
        config: RunConfig,
    ) -> None:
        self._spec, self._name, self._fingerprint, self._cfg = spec, name, fingerprint, config
        self._session = session(model, config.threads)
        self._tokenizer, self._pad_id = load_tokenizer(tokenizer, config.max_tokens)
        names = [i.name for i in self._session.get_inputs()]
        unknown = [n for n in names if n not in _INPUTS]
        if "input_ids" not in names or unknown:
            raise EncoderError(
                f"{model}: inputs {names} are not a text encoder's (expected input_ids, "
                "attention_mask, token_type_ids)"
            )
        self._inputs = names
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        rank3 = [n for n, shape in outputs.items() if len(shape) == 3]
        if not rank3:
            raise EncoderError(f"{model}: no (batch, seq, dim) output among {list(outputs)}")
        self._output = "last_hidden_state" if "last_hidden_state" in rank3 else rank3[0]
        dim = outputs[self._output][2]
        # Exported models may leave dim symbolic; one tiny run settles it.
        self._dim = dim if isinstance(dim, int) else self._states(["dim probe"])[0][0].shape[1]

    @property
    def spec(self) -> str:
        return self._spec

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return int(self._dim)

    @property
    def multivector(self) -> bool:
        return self._cfg.multivector

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def max_tokens(self) -> int:
        return self._cfg.max_tokens

    def __repr__(self) -> str:
        return f"OnnxEncoder({self._spec!r}, dim={self.dim})"

    def encode_queries(self, texts: Sequence[str]) -> Encoded:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str]) -> Encoded:
        # Symmetric models (MiniLM): queries and documents are encoded alike.
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> Encoded:
        items = check_texts(texts)
        states, encodings = self._states(items)
        counts = [len(e.ids) for e in encodings]
        truncated = sum(1 for e in encodings if e.overflowing)
        if self._cfg.multivector:
            return Encoded(self._tokens(states, encodings), truncated, counts)
        if not states:
            return Encoded(np.zeros((0, self.dim), np.float32), 0, [])
        if self._cfg.pooling == "cls":
            pooled = np.stack([s[0] for s in states])
        else:
            # Rows hold only real tokens, so the mean is over the attention mask by construction.
            pooled = np.stack([s.mean(axis=0, dtype=np.float32) for s in states])
        return Encoded(l2_normalize(pooled.astype(np.float32, copy=False)), truncated, counts)

    def _tokens(self, states: list[F32], encodings: list[Encoding]) -> list[TokenVectors]:
        out: list[TokenVectors] = []
        for i, (s, e) in enumerate(zip(states, encodings, strict=True)):
            keep = np.asarray(e.special_tokens_mask, dtype=np.int8) == 0
            if not keep.any():
                raise EncoderError(f"texts[{i}] has no content tokens for {self._name}")
            vecs = l2_normalize(np.ascontiguousarray(s[keep]))
            out.append(vecs.astype(np.float16) if self._cfg.float16 else vecs)
        return out

    def _states(self, texts: list[str]) -> tuple[list[F32], list[Encoding]]:
        """Per text, the ``(tokens, dim) float32`` model states of its real tokens."""
        encodings: list[Encoding] = self._tokenizer.encode_batch(texts)
        # Longest first: each batch pads to similar lengths, and a too-big batch fails early.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        states: list[F32] = [np.empty((0, 0), np.float32)] * len(texts)
        start = 0
        while start < len(order):
            width = len(encodings[order[start]].ids)
            step = max(1, min(self._cfg.batch_size, TOKENS_PER_RUN // width))
            rows = order[start : start + step]
            start += step
            out = self._run([encodings[i] for i in rows])
            for r, i in enumerate(rows):
                states[i] = out[r, : len(encodings[i].ids)]
        return states, encodings

    def _run(self, batch: list[Encoding]) -> F32:
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for r, e in enumerate(batch):
            n = len(e.ids)
            ids[r, :n], mask[r, :n], types[r, :n] = e.ids, 1, e.type_ids
        feeds: dict[str, I64] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (out,) = self._session.run([self._output], {k: feeds[k] for k in self._inputs})
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 3:
            raise EncoderError(f"{self._name}: model returned {type(out).__name__}, not float32")
        if out.shape[:2] != (len(batch), width):
            raise EncoderError(f"{self._name}: output {out.shape} for input {(len(batch), width)}")
        result: F32 = out
        return result
