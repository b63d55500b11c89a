"""Training a Hypencoder head with torch (the optional ``innerspace[torch]`` extra).

The encoder stays frozen: inputs are precomputed query token embeddings and document vectors,
so an epoch over ~800 queries takes seconds on a CPU. Each training query comes with a list of
documents (its positives plus hard negatives, e.g. the frozen encoder's own top hits), 0/1
labels and optionally teacher scores over the same list. The loss per query is

* listwise cross-entropy averaged over the positives: ``-mean_{p} log softmax(s)_p``, plus
* ``distill_weight`` x ``KL(softmax(teacher / temperature) || softmax(s))`` (distillation).

The module mirrors :mod:`index.hypencoder_head` exactly (same parameter names, same layer norm
epsilon), so :meth:`TorchHead.to_head` hands the trained arrays to the numpy inference path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from index.base import F32, I64
from index.hypencoder import LN_EPS
from index.hypencoder_head import HyperHead

# The module stays importable without the extra (docs, doctest collection); using it then
# raises an ImportError that names the extra.
try:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn
except ImportError as exc:
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

if TYPE_CHECKING or _MISSING is None:
    from torch.nn import Module as _Module
else:
    _Module = object


def _require_torch() -> None:
    if _MISSING is not None:
        raise ImportError(
            f"training a Hypencoder head needs torch: pip install 'innerspace[torch]' ({_MISSING})"
        )


__all__ = [
    "TorchHead",
    "TrainConfig",
    "TrainResult",
    "pad_tokens",
    "torch_qnet_scores",
    "train_head",
]


class TorchHead(_Module):  # type: ignore[misc,unused-ignore]  # Any without torch
    """The hypernetwork of :class:`~index.hypencoder_head.HyperHead` as a torch module."""

    def __init__(self, head: HyperHead) -> None:
        _require_torch()
        super().__init__()
        self.config = head.config
        self.arrays = nn.ParameterDict(
            {
                k.replace(".", "__"): nn.Parameter(torch.from_numpy(v.copy()))
                for k, v in head.params.items()
            }
        )

    def p(self, name: str) -> torch.Tensor:
        out: torch.Tensor = self.arrays[name.replace(".", "__")]
        return out

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Q-net weights for a padded batch: ``tokens (B, T, token_dim)``, ``mask (B, T) bool``.

        Returns weights ``(B, in, out)`` (hidden layers then output) and biases ``(B, h)``.
        """
        gen: dict[str, torch.Tensor] = {}
        for t in self.config.tensors():
            n = t.name
            keys = tokens @ self.p(f"{n}.key_w") + self.p(f"{n}.key_b")
            values = tokens @ self.p(f"{n}.value_w") + self.p(f"{n}.value_b")
            logits = torch.einsum("rc,btc->brt", self.p(f"{n}.query"), keys) / math.sqrt(t.out_dim)
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
            ctx = F.relu(torch.softmax(logits, dim=-1) @ values)
            g = F.layer_norm(ctx, (t.cols,), eps=LN_EPS) @ self.p(f"{n}.proj_w")
            g = g + self.p(f"{n}.proj_b") + self.p(f"{n}.base")
            gen[n] = g.transpose(1, 2) if t.transpose else g
        nh = self.config.n_hidden
        weights = [gen[f"w{i}"] for i in range(nh)] + [gen["out"].transpose(1, 2)]
        biases = [gen[f"b{i}"][:, 0, :] for i in range(nh)]
        return weights, biases

    def to_head(self, info: dict[str, Any] | None = None) -> HyperHead:
        """The current arrays as a numpy :class:`HyperHead`."""
        params = {
            k.replace("__", "."): v.detach().cpu().numpy().astype(np.float32).copy()
            for k, v in self.arrays.items()
        }
        return HyperHead(self.config, params, dict(info or {}))


def torch_qnet_scores(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    docs: torch.Tensor,
    residual_last: bool = False,
) -> torch.Tensor:
    """Batched q-net forward: ``docs (B, m, h) -> (B, m)`` (torch twin of ``QNet.scores``)."""
    x = docs
    last = len(biases) - 1
    for i, (w, b) in enumerate(zip(weights[:-1], biases, strict=True)):
        z = F.layer_norm(F.relu(x @ w + b[:, None, :]), (x.shape[-1],), eps=LN_EPS)
        x = z + x if (i < last or residual_last) else z
    return (x @ weights[-1])[..., 0]


def pad_tokens(queries: Sequence[F32]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged ``(t_i, d)`` token matrices as ``(B, T, d)`` float32 plus a ``(B, T)`` bool mask."""
    _require_torch()
    width = max(len(q) for q in queries)
    dim = queries[0].shape[1]
    out = np.zeros((len(queries), width, dim), np.float32)
    mask = np.zeros((len(queries), width), bool)
    for i, q in enumerate(queries):
        out[i, : len(q)], mask[i, : len(q)] = q, True
    return torch.from_numpy(out), torch.from_numpy(mask)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loss settings (saved with the head)."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    distill_weight: float = 1.0
    temperature: float = 0.05  # teacher scores are cosines: sharpen them
    clip: float = 1.0
    seed: int = 0
    threads: int = 2


@dataclass
class TrainResult:
    """The trained (best by ``evaluate`` if given, else last) head and per-epoch history."""

    head: HyperHead
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    scores: list[float] = field(default_factory=list)  # evaluate() after each epoch
    best_epoch: int = 0
    seconds: float = 0.0


def _loss(
    s: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None, cfg: TrainConfig
) -> torch.Tensor:
    logp = torch.log_softmax(s, dim=-1)
    pos = (labels > 0).to(logp.dtype)
    loss = -((logp * pos).sum(dim=-1) / pos.sum(dim=-1)).mean()
    if teacher is not None and cfg.distill_weight > 0:
        target = torch.softmax(teacher / cfg.temperature, dim=-1)
        loss = loss + cfg.distill_weight * F.kl_div(logp, target, reduction="batchmean")
    return loss


def train_head(
    head: HyperHead,
    query_tokens: Sequence[F32],
    doc_vectors: F32,
    lists: I64,
    labels: npt.NDArray[np.float32],
    cfg: TrainConfig,
    teacher: F32 | None = None,
    evaluate: Callable[[HyperHead], float] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``head`` (a copy; the argument is not changed).

    Args:
        head: the initial head (``HyperHead.init(config)`` or a checkpoint to continue).
        query_tokens: ``nq`` arrays ``(t_i, token_dim) float32``.
        doc_vectors: ``(n, h) float32`` document vectors.
        lists: ``(nq, L) int64`` rows of ``doc_vectors`` scored for each query.
        labels: ``(nq, L)`` relevance; every query needs at least one label ``> 0``.
        cfg: optimiser and loss settings.
        teacher: ``(nq, L)`` teacher scores for distillation, or None.
        evaluate: called with the numpy head after each epoch; higher is better; the best
            epoch's head is returned.
        progress: called as ``progress(epoch, step, loss)`` after each step.
    """
    _require_torch()
    nq = len(query_tokens)
    if lists.shape[0] != nq or labels.shape != lists.shape:
        raise ValueError(f"lists {lists.shape} and labels {labels.shape} must be ({nq}, L)")
    if teacher is not None and teacher.shape != lists.shape:
        raise ValueError(f"teacher {teacher.shape} must match lists {lists.shape}")
    if not (labels > 0).any(axis=1).all():
        raise ValueError("every query needs at least one positive in its list")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = TorchHead(head)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    docs_t = torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    lists_t = torch.from_numpy(lists)
    labels_t = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    teacher_t = None if teacher is None else torch.from_numpy(np.asarray(teacher, np.float32))
    rng = np.random.default_rng(cfg.seed)
    result = TrainResult(head)
    best = -math.inf
    t0 = time.perf_counter()
    residual_last = head.config.residual_last
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(nq)
        total, steps = 0.0, 0
        for a in range(0, nq, cfg.batch_size):
            batch = order[a : a + cfg.batch_size]
            tok, mask = pad_tokens([query_tokens[i] for i in batch])
            weights, biases = model(tok, mask)
            idx = torch.from_numpy(batch)
            s = torch_qnet_scores(weights, biases, docs_t[lists_t[idx]], residual_last)
            loss = _loss(s, labels_t[idx], None if teacher_t is None else teacher_t[idx], cfg)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call,unused-ignore]
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            total += float(loss.detach())
            steps += 1
            if progress is not None:
                progress(epoch, steps, float(loss.detach()))
        result.losses.append(total / max(steps, 1))
        if evaluate is not None:
            current = model.to_head(head.info)
            score = float(evaluate(current))
            result.scores.append(score)
            if score > best:
                best, result.head, result.best_epoch = score, current, epoch
    if evaluate is None:
        result.head, result.best_epoch = model.to_head(head.info), cfg.epochs - 1
    result.seconds = time.perf_counter() - t0
    return result
