"""``innerspace train-hypencoder``: train a Hypencoder head over a frozen encoder.

Training data is text: a JSONL file of ``{"query", "positive"[, "negatives"]}`` rows (rows that
repeat a query text add positives to it), or the Debian package descriptions
(``{"synopsis", "description"}`` rows; the synopsis is the query, its package's description the
one relevant document). Documents are every positive and negative text; they are encoded once
with the dense encoder (``--doc-encoder``, default the bundled ``minilm``), queries with it too
(for hard-negative mining and as the baseline) and with the token encoder the head reads
(``--encoder``, default ``minilm-tokens``). Encodings are cached under ``--cache`` keyed by the
encoder's fingerprint and the texts. The queries are split, seeded, into training, validation
(picks the epoch) and test (the final report) slices; nothing of the test slice is used to
train or to choose.

Each training query's list is its positives plus the frozen encoder's own top hits over all
documents (hard negatives; given negatives are added), labelled 0/1, with the encoder's inner
product as the distillation teacher (:func:`index.hypencoder_train.train_head`). The head starts
as (approximately) that inner product (``--init ip``): the q-net's output weight is the
standardised mean of the query's token vectors and its hidden layers start near zero, so
training moves away from the first stage rather than from noise. Needs torch (the
``innerspace[torch]`` extra); the saved head (``HyperHead.save`` format: ``config.json`` +
``head.safetensors``; ``--float16`` halves the file) is served by the ``hypencoder`` stage
without it.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.table import Table

from app.train_data import bar, console, encode_dense, encode_tokens, read_pairs, with_threads
from encoders.evaluation import ndcg, paired_bootstrap
from encoders.files import sha256_file
from index.base import F32, I64
from index.hypencoder import HypencoderReranker
from index.hypencoder_head import ARRAYS, HeadConfig, HyperHead, init_params

__all__ = [
    "add_train",
    "ip_init",
    "mine_lists",
    "rank_metrics",
]


def say(text: str, style: str | None = None) -> None:
    """One line on stderr, as written (paths and the extra's ``[torch]`` are not markup)."""
    console.print(text, style=style, markup=False, highlight=False)


TORCH_MISSING = (
    "train-hypencoder needs torch, an optional extra: pip install 'innerspace[torch]' "
    "(serving a trained head does not)"
)
#: What ``--debian`` records as the data's licence (see the data's own README).
DEBIAN_LICENSE = "Debian main package descriptions: each package's own DFSG-free licence"


# ---- lists, metrics, init -----------------------------------------------------------------


def mine_lists(
    qdense: F32,
    docs: F32,
    positives: Sequence[Sequence[int]],
    negatives: Sequence[Sequence[int]],
    size: int,
) -> tuple[I64, npt.NDArray[np.float32], F32]:
    """Training lists: ``(lists (nq, L), labels (nq, L), teacher (nq, L))``.

    Each row is the query's positives, its given negatives (at most half the room left) and
    then the frozen encoder's top documents by inner product that are neither (the mined hard
    negatives); labels are 1 at positives; the teacher is the inner product itself.
    """
    from index.flat import FlatIndex

    size = min(size, len(docs))
    index = FlatIndex.wrap(np.arange(len(docs), dtype=np.int64), np.ascontiguousarray(docs))
    lists = index.search(np.ascontiguousarray(qdense), size).ids.copy()
    labels = np.zeros(lists.shape, np.float32)
    for i, (pos, neg) in enumerate(zip(positives, negatives, strict=True)):
        # The loss is a softmax over the list, so order within it does not matter.
        pos = list(pos)[:size]
        given = [d for d in neg if d not in pos][: (size - len(pos)) // 2]
        taken = {*pos, *given}
        hits = [d for d in lists[i].tolist() if d not in taken]
        lists[i] = (pos + given + hits)[:size]
        labels[i, : len(pos)] = 1
    teacher = np.einsum("qd,qld->ql", qdense, docs[lists]).astype(np.float32)
    return lists, labels, teacher


def rank_metrics(
    ranked: I64, positives: Sequence[Sequence[int]], k_ndcg: int = 10, k_recall: int = 100
) -> dict[str, F32]:
    """Per-query nDCG@k, recall@10 and recall@k of ranked rows against binary positives.

    >>> m = rank_metrics(np.array([[3, 1, 2], [5, 6, -1]]), [[1], [7]], 10, 2)
    >>> [round(float(x), 4) for x in m["ndcg@10"]], m["recall@2"].tolist()
    ([0.6309, 0.0], [1.0, 0.0])
    """
    ndcg_q = np.zeros(len(ranked), np.float32)
    r10 = np.zeros(len(ranked), np.float32)
    rk = np.zeros(len(ranked), np.float32)
    for i, (row, pos) in enumerate(zip(ranked, positives, strict=True)):
        p = set(pos)
        hits = [j in p for j in row.tolist()]
        ndcg_q[i] = ndcg(row.tolist(), dict.fromkeys(p, 1.0), k_ndcg) or 0.0
        r10[i] = sum(hits[:10]) / len(p)
        rk[i] = sum(hits[:k_recall]) / len(p)
    return {f"ndcg@{k_ndcg}": ndcg_q, "recall@10": r10, f"recall@{k_recall}": rk}


def ip_init(config: HeadConfig, scale: float = 1e-4) -> HyperHead:
    """A head whose q-net starts close to the inner product with the query's mean token.

    The output weight is ``LN(mean_t T)``: uniform attention (zero hyper-queries), identity
    values shifted by a bias of 1 so the ReLU passes them (per-token vectors are unit-norm, so
    their components lie in [-1, 1]), identity projection. The hidden layers' generated
    weights start ``scale`` times their usual size, so the layer-norm input is tiny and the
    hidden path adds little until training grows it; ``residual_last`` must be on so the
    document vector itself reaches the output.
    """
    if config.token_dim != config.dim:
        raise ValueError("ip init needs token_dim == dim (a token space the documents share)")
    if not config.residual_last:
        raise ValueError("ip init needs residual_last=True (the document must reach the output)")
    p = init_params(config)
    h = config.dim
    p["out.query"] = np.zeros_like(p["out.query"])
    p["out.key_w"] = np.zeros_like(p["out.key_w"])
    p["out.value_w"] = np.eye(h, dtype=np.float32)
    p["out.value_b"] = np.ones(h, np.float32)
    p["out.proj_w"] = np.eye(h, dtype=np.float32)
    for t in config.tensors():
        if t.name != "out":
            for part in ("proj_w", "base"):
                p[f"{t.name}.{part}"] = (p[f"{t.name}.{part}"] * scale).astype(np.float32)
    return HyperHead(config, p)


def rerank_rows(head: HyperHead, docs: F32, tokens: Sequence[F32], cand: I64, k: int) -> I64:
    """The top ``k`` of each candidate row by the head's q-net."""
    from index.flat import FlatIndex

    store = FlatIndex.wrap(np.arange(len(docs), dtype=np.int64), docs)
    rr = HypencoderReranker(head, store)
    return np.stack([rr.rerank(t, c, k).ids[0] for t, c in zip(tokens, cand, strict=True)])


def _git_commit() -> dict[str, Any] | None:
    """The source checkout's commit (and whether it had local changes), if there is one."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():  # an installed package: any enclosing repo is not ours
        return None

    def git(*a: str) -> str:
        done = subprocess.run(
            ["git", *a], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return None


# ---- the command --------------------------------------------------------------------------


@dataclass
class Split:
    train: I64
    val: I64
    test: I64


def split_queries(n: int, val: int, test: int, max_train: int, seed: int) -> Split:
    """Seeded disjoint slices; ``val``/``test`` 0 = 10% each (at most 2,000, at least 1)."""
    auto = min(2000, max(1, n // 10))
    val, test = val or auto, test or auto
    if val + test >= n:
        raise ValueError(f"{n} queries leave none to train on after {val} val + {test} test")
    order = np.random.default_rng(seed).permutation(n)
    train = order[val + test :]
    if max_train:
        train = train[:max_train]
    return Split(np.sort(train), np.sort(order[:val]), np.sort(order[val : val + test]))


def _evaluate(
    head: HyperHead,
    docs: F32,
    tokens: Sequence[F32],
    qdense: F32,
    positives: Sequence[Sequence[int]],
    candidates: int,
) -> dict[str, Any]:
    """Rerank of the flat top-``candidates`` vs flat itself, per-query figures and means."""
    from index.flat import FlatIndex

    store = FlatIndex.wrap(np.arange(len(docs), dtype=np.int64), docs)
    cand = store.search(np.ascontiguousarray(qdense), min(candidates, len(docs))).ids
    t0 = time.perf_counter()
    rows = rerank_rows(head, docs, tokens, cand, min(100, cand.shape[1]))
    ms = 1000 * (time.perf_counter() - t0) / max(len(tokens), 1)
    flat = rank_metrics(cand[:, :100], positives)
    hyp = rank_metrics(rows, positives)
    lo, hi = paired_bootstrap(hyp["ndcg@10"] - flat["ndcg@10"])
    return {
        "queries": len(tokens),
        "candidates": int(cand.shape[1]),
        "flat": {k: float(v.mean()) for k, v in flat.items()},
        "hypencoder": {k: float(v.mean()) for k, v in hyp.items()},
        "ndcg@10_diff_ci95": [lo, hi],
        "wins_ties_losses": [
            int((hyp["ndcg@10"] > flat["ndcg@10"]).sum()),
            int((hyp["ndcg@10"] == flat["ndcg@10"]).sum()),
            int((hyp["ndcg@10"] < flat["ndcg@10"]).sum()),
        ],
        "rerank_ms_per_query": ms,
    }


def _report(r: dict[str, Any], title: str) -> None:
    table = Table("ranking", "nDCG@10", "recall@10", "recall@100", title=title)
    table.add_row("flat (frozen encoder)", *(f"{r['flat'][k]:.4f}" for k in _METRICS))
    table.add_row(
        f"flat top-{r['candidates']} + hypencoder",
        *(f"{r['hypencoder'][k]:.4f}" for k in _METRICS),
    )
    console.print(table)  # cells hold no "[": nothing is taken for markup
    lo, hi = r["ndcg@10_diff_ci95"]
    w, t, los = r["wins_ties_losses"]
    diff = r["hypencoder"]["ndcg@10"] - r["flat"]["ndcg@10"]
    say(
        f"nDCG@10 difference {diff:+.4f}, 95% paired-bootstrap CI [{lo:+.4f}, {hi:+.4f}]; "
        f"{w} queries better, {t} equal, {los} worse; rerank {r['rerank_ms_per_query']:.1f} "
        f"ms/query over {r['queries']} queries"
    )


_METRICS = ("ndcg@10", "recall@10", "recall@100")


def _run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        say(TORCH_MISSING, "red")
        return 2
    from index.hypencoder_train import TrainConfig, train_head

    started = time.perf_counter()
    source: Path = args.debian or args.data
    try:
        pairs = read_pairs(source, debian=args.debian is not None)
        split = split_queries(len(pairs.queries), args.val, args.test, args.max_train, args.seed)
    except (OSError, ValueError) as exc:
        say(str(exc), "red")
        return 2
    cache = None if args.no_cache else args.cache.expanduser()
    say(
        f"{len(pairs.queries):,} queries, {len(pairs.docs):,} documents from {source}: "
        f"train {len(split.train):,}, val {len(split.val):,} (picks the epoch), "
        f"test {len(split.test):,} (report)"
    )
    start: HyperHead | None = None
    try:
        if args.resume:
            start = HyperHead.load(args.resume)
            if (start.config.encoder, start.config.doc_encoder) != (args.encoder, args.doc_encoder):
                raise ValueError(
                    f"{args.resume} was trained on {start.config.encoder!r} / "
                    f"{start.config.doc_encoder!r}: pass them as --encoder / --doc-encoder"
                )
        dense_spec = with_threads(args.doc_encoder, args.encode_threads)
        docs = encode_dense(dense_spec, pairs.docs, "document", cache)
        qdense = encode_dense(dense_spec, pairs.queries, "query", cache)
        tokens = encode_tokens(
            with_threads(args.encoder, args.encode_threads), pairs.queries, cache
        )
    except (OSError, ValueError) as exc:  # EncoderError is a ValueError
        say(str(exc), "red")
        return 2

    def part(ix: I64) -> tuple[list[F32], F32, list[list[int]]]:
        return [tokens[i] for i in ix], qdense[ix], [pairs.positives[i] for i in ix]

    t0 = time.perf_counter()
    lists, labels, teacher = mine_lists(
        qdense[split.train],
        docs,
        [pairs.positives[i] for i in split.train],
        [pairs.negatives[i] for i in split.train],
        args.list_size,
    )
    say(f"hard negatives: top-{lists.shape[1]} lists in {time.perf_counter() - t0:.0f} s")
    config = HeadConfig(
        dim=docs.shape[1],
        token_dim=tokens[0].shape[1],
        n_hidden=args.n_hidden,
        residual_last=args.init == "ip",
        seed=args.seed,
        encoder=args.encoder,
        doc_encoder=args.doc_encoder,
    )
    if start is None:
        start = ip_init(config) if args.init == "ip" else HyperHead.init(config)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        distill_weight=args.distill,
        seed=args.seed,
        threads=args.threads,
    )
    v_tok, v_dense, v_pos = part(split.val)
    val_curve: list[float] = []
    ckpt: Path | None = (
        None if args.no_checkpoints else args.out.with_name(args.out.name + "-checkpoints")
    )

    def select(h: HyperHead) -> float:
        r = _evaluate(h, docs, v_tok, v_dense, v_pos, args.candidates)
        val_curve.append(r["hypencoder"]["ndcg@10"])
        if ckpt is not None:
            h.save(ckpt / f"epoch-{len(val_curve):02d}")
        say(
            f"epoch {len(val_curve)}: val nDCG@10 {r['hypencoder']['ndcg@10']:.4f} "
            f"(flat {r['flat']['ndcg@10']:.4f})"
        )
        return float(r["hypencoder"]["ndcg@10"])

    init_val = _evaluate(start, docs, v_tok, v_dense, v_pos, args.candidates)
    say(
        f"start: val nDCG@10 {init_val['hypencoder']['ndcg@10']:.4f} "
        f"(flat {init_val['flat']['ndcg@10']:.4f})"
    )
    steps = math.ceil(len(split.train) / cfg.batch_size)
    with bar() as progress_bar:
        task = progress_bar.add_task("train", total=steps * cfg.epochs, note="")

        def progress(epoch: int, step: int, loss: float) -> None:
            progress_bar.update(
                task, advance=1, note=f"epoch {epoch + 1}/{cfg.epochs} loss {loss:.4f}"
            )

        res = train_head(
            start,
            [tokens[i] for i in split.train],
            docs,
            lists,
            labels,
            cfg,
            teacher=teacher,
            evaluate=select,
            progress=progress,
        )
    best = res.head
    if init_val["hypencoder"]["ndcg@10"] > max(res.scores, default=-math.inf):
        say("no epoch beat the starting head on validation", "yellow")
    best.info = {
        "data": {
            "source": source.name,
            "sha256": sha256_file(source),
            "format": "debian" if args.debian else "jsonl",
            "license": args.license or (DEBIAN_LICENSE if args.debian else None),
            "queries": len(pairs.queries),
            "documents": len(pairs.docs),
            "train_queries": len(split.train),
            "val_queries": len(split.val),
            "test_queries": len(split.test),
        },
        "train": asdict(cfg),
        "init": "resume" if args.resume else args.init,
        "list_size": int(lists.shape[1]),
        "losses": res.losses,
        "val_ndcg10": res.scores,
        "val_ndcg10_start": init_val["hypencoder"]["ndcg@10"],
        "val_flat_ndcg10": init_val["flat"]["ndcg@10"],
        "val_candidates": args.candidates,
        "best_epoch": res.best_epoch + 1,
        "train_seconds": res.seconds,
        "machine": f"{os.cpu_count()} CPUs, torch threads {cfg.threads}",
        "torch": _torch_version(),
        "git": _git_commit(),
    }
    best.save(args.out, args.float16)
    saved = HyperHead.load(args.out)  # report the file as written (float16 rounding included)
    t_tok, t_dense, t_pos = part(split.test)
    report = _evaluate(saved, docs, t_tok, t_dense, t_pos, args.eval_candidates)
    _report(report, f"held-out test slice ({report['queries']:,} queries)")
    saved.info["test"] = report
    saved.info["seconds"] = time.perf_counter() - started
    saved.save(args.out, args.float16)
    size = (args.out / ARRAYS).stat().st_size
    say(
        f"saved {args.out} (best epoch {res.best_epoch + 1} of {cfg.epochs}, {ARRAYS} "
        f"{size / 1e6:.1f} MB, {res.seconds:.0f} s training)"
    )
    return 0


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def add_train(sub: Any) -> None:
    """Register ``train-hypencoder`` on the ``innerspace`` subparsers."""
    p = sub.add_parser(
        "train-hypencoder",
        help="train a Hypencoder head (needs the torch extra) and print an eval report",
        description=__doc__.split("\n\n")[1] + " Needs: pip install 'innerspace[torch]'.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help='JSONL(.gz) of {"query", "positive"[, "negatives"]}')
    src.add_argument("--debian", type=Path, help="Debian descriptions.jsonl.gz (synopsis -> text)")
    p.add_argument("--out", type=Path, required=True, help="head directory to write")
    p.add_argument("--encoder", default="minilm-tokens", help="query token encoder spec")
    p.add_argument("--doc-encoder", default="minilm", help="document (dense) encoder spec")
    p.add_argument("--n-hidden", type=int, default=1, help="q-net hidden layers")
    p.add_argument(
        "--init", choices=["ip", "random"], default="ip", help="start near inner product or not"
    )
    p.add_argument("--resume", type=Path, help="continue from this head directory")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--distill", type=float, default=1.0, help="weight of the teacher KL term")
    p.add_argument("--list-size", type=int, default=32, help="documents per training query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument(
        "--encode-threads", type=int, default=0, help="encoder threads for the data (0: spec's)"
    )
    p.add_argument("--val", type=int, default=0, help="validation queries (0: 10%%, <= 2000)")
    p.add_argument("--test", type=int, default=0, help="test queries (0: 10%%, <= 2000)")
    p.add_argument("--max-train", type=int, default=0, help="cap training queries (0: all)")
    p.add_argument("--candidates", type=int, default=100, help="rerank depth when validating")
    p.add_argument("--eval-candidates", type=int, default=1000, help="rerank depth of the report")
    p.add_argument("--license", help="the training data's licence, recorded in config.json")
    p.add_argument("--float16", action="store_true", help="store the arrays as float16")
    p.add_argument("--no-checkpoints", action="store_true", help="keep no per-epoch heads")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path("~/.cache/innerspace/train-hypencoder"),
        help="encoding cache (default %(default)s)",
    )
    p.add_argument("--no-cache", action="store_true", help="encode without reading or writing it")
    p.set_defaults(func=_run)
