"""Hypencoder reranking on SciFact: train a head on the train split, evaluate on the test split.

    python -m bench.hypencoder train [--epochs 30 --n-hidden 2 --seed 0]   # writes the head dir
    python -m bench.hypencoder eval  [--head DIR]                          # JSON + BENCHMARKS.md
    python -m bench.hypencoder all                                         # both
    python -m bench.hypencoder report                   # re-render BENCHMARKS.md from the JSON
    python -m bench.hypencoder shipped [--head DIR] [--json FILE]  # the packaged head, test only

Documents are ``minilm`` dense vectors (doc = title + " " + text); queries give ``minilm``
dense vectors (first stage: exact flat inner product) and ``minilm-tokens`` token embeddings
(the hypernetwork's input). Everything encoded is cached under ``~/.cache/innerspace/``. The
head is trained on ``queries.train`` / ``qrels.train`` only (10% of it held out to pick the
epoch) and evaluated on ``queries.test`` / ``qrels.test``. SciFact is CC BY-NC: a head trained
here is for benchmarking and must not ship with the package. ``shipped`` only evaluates the
head that does ship (trained on Debian descriptions by ``innerspace train-hypencoder``) on the
test split: nothing is tuned on SciFact, and it writes neither the JSON above nor BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import ROOT, git_commit, update_section, write_json
from encoders.evaluation import Beir, load_beir, ndcg_at_k, recall_at_k
from encoders.evaluation import paired_bootstrap as bootstrap
from index.flat import FlatIndex, _blas
from index.hypencoder import HypencoderReranker
from index.hypencoder_head import HeadConfig, HyperHead

CACHE = Path.home() / ".cache" / "innerspace"
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
HEAD_DIR = CACHE / "hypencoder" / "scifact-minilm"
RESULTS = ROOT / "bench" / "results" / "hypencoder.json"
SECTION = "hypencoder"
DENSE, TOKENS = "minilm", "minilm-tokens"


@dataclass
class Split:
    """One query split: ids, dense vectors ``(nq, d)``, token matrices and labels."""

    ids: list[str]
    dense: np.ndarray
    tokens: list[np.ndarray]
    qrels: list[dict[str, int]]


def _cached(path: Path, make: Any) -> dict[str, np.ndarray]:
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays: dict[str, np.ndarray] = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def load_docs(beir: Beir) -> np.ndarray:
    path = CACHE / f"scifact-minilm-docs-{len(beir.doc_ids)}.npy"
    if path.exists():
        return np.load(path)
    from encoders import encoder_factory

    t = time.perf_counter()
    docs = encoder_factory(DENSE).encode_documents(beir.doc_texts).dense.astype(np.float32)
    print(f"encoded {len(docs)} docs in {time.perf_counter() - t:.0f} s", flush=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, docs)
    tmp.replace(path)
    return docs


def load_split(split: str) -> tuple[Beir, Split]:
    beir = load_beir(SCIFACT, split)

    def make() -> dict[str, np.ndarray]:
        from encoders import encoder_factory

        dense = encoder_factory(DENSE).encode_queries(beir.query_texts).dense
        sets = encoder_factory(TOKENS).encode_queries(beir.query_texts).vectors
        offsets = np.zeros(len(sets) + 1, np.int64)
        np.cumsum([len(s) for s in sets], out=offsets[1:])
        return {"dense": dense, "tokens": np.concatenate(sets), "offsets": offsets}

    z = _cached(CACHE / f"scifact-minilm-queries-{split}.npz", make)
    off = z["offsets"]
    tokens = [z["tokens"][off[i] : off[i + 1]].astype(np.float32) for i in range(len(off) - 1)]
    labeled = [i for i, q in enumerate(beir.query_ids) if beir.qrels.get(q)]
    return beir, Split(
        [beir.query_ids[i] for i in labeled],
        z["dense"][labeled].astype(np.float32),
        [tokens[i] for i in labeled],
        [beir.qrels[beir.query_ids[i]] for i in labeled],
    )


def flat_index(docs: np.ndarray) -> FlatIndex:
    index = FlatIndex(docs.shape[1])
    index.add(np.arange(len(docs), dtype=np.int64), docs)
    return index


def rerank_rows(rr: HypencoderReranker, split: Split, cand: np.ndarray, k: int) -> np.ndarray:
    return np.stack([rr.rerank(t, c, k).ids[0] for t, c in zip(split.tokens, cand, strict=True)])


def per_query_ndcg(rows: np.ndarray, split: Split, doc_ids: list[str]) -> np.ndarray:
    return np.array(
        [
            ndcg_at_k([[doc_ids[j] for j in r if j >= 0]], [q], 10)
            for r, q in zip(rows, split.qrels, strict=True)
        ]
    )


def train(args: argparse.Namespace) -> None:
    from index.hypencoder_train import TrainConfig, train_head

    beir, split = load_split("train")
    docs = load_docs(beir)
    index = flat_index(docs)
    row_of = {d: i for i, d in enumerate(beir.doc_ids)}
    cand = index.search(split.dense, args.list_size).ids
    lists, labels = cand.copy(), np.zeros(cand.shape, np.float32)
    for i, q in enumerate(split.qrels):
        pos = [row_of[d] for d, g in q.items() if g > 0 and d in row_of]
        missing = [p for p in pos if p not in set(lists[i])]
        if missing:  # force positives the first stage missed into the tail of the list
            lists[i, len(lists[i]) - len(missing) :] = missing
        labels[i] = np.isin(lists[i], pos)
    teacher = np.einsum("qd,qld->ql", split.dense, docs[lists]).astype(np.float32)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(split.ids))
    n_val = max(1, len(order) // 10)
    val, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    val_split = Split(
        [split.ids[i] for i in val],
        split.dense[val],
        [split.tokens[i] for i in val],
        [split.qrels[i] for i in val],
    )
    val_cand = index.search(val_split.dense, 100).ids

    def evaluate(head: HyperHead) -> float:
        rows = rerank_rows(HypencoderReranker(head, index), val_split, val_cand, 10)
        return float(per_query_ndcg(rows, val_split, beir.doc_ids).mean())

    base_val = float(per_query_ndcg(val_cand[:, :10], val_split, beir.doc_ids).mean())
    config = HeadConfig(
        dim=docs.shape[1],
        token_dim=split.tokens[0].shape[1],
        n_hidden=args.n_hidden,
        seed=args.seed,
        encoder=TOKENS,
        doc_encoder=DENSE,
    )
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, distill_weight=args.distill, seed=args.seed)
    print(f"train {len(tr)} queries, val {len(val)} (flat val nDCG@10 {base_val:.4f})", flush=True)

    def report(epoch: int, step: int, loss: float) -> None:
        if step % 10 == 0:
            print(f"  epoch {epoch} step {step} loss {loss:.4f}", flush=True)

    start = HyperHead.load(args.resume) if args.resume else HyperHead.init(config)
    if start.config != config:
        raise SystemExit(f"{args.resume} has config {start.config}, expected {config}")
    res = train_head(
        start,
        [split.tokens[i] for i in tr],
        docs,
        lists[tr],
        labels[tr],
        cfg,
        teacher=teacher[tr],
        evaluate=evaluate,
        progress=report,
    )
    print(
        f"losses {np.round(res.losses, 4).tolist()}\nval nDCG@10 {np.round(res.scores, 4).tolist()}"
    )
    res.head.info = {
        "train": asdict(cfg),
        "data": "SciFact train (CC BY-NC 2.0: benchmark only, do not ship)",
        "list_size": args.list_size,
        "train_queries": len(tr),
        "val_queries": len(val),
        "losses": res.losses,
        "val_ndcg10": res.scores,
        "val_flat_ndcg10": base_val,
        "best_epoch": res.best_epoch,
        "resumed_from": str(args.resume) if args.resume else None,
        "previous": start.info if args.resume else None,
        "seconds": res.seconds,
        "git_commit": git_commit(),
    }
    res.head.save(args.head)
    print(f"saved {args.head} (best epoch {res.best_epoch}, {res.seconds:.0f} s)")


def latency(
    rr: HypencoderReranker, index: FlatIndex, split: Split, m: int, repeats: int
) -> dict[str, float]:
    """Median ms per query: flat search alone, q-net build, rerank of ``m`` candidates (A B A B)."""
    cand = index.search(split.dense, m).ids
    nets = [rr.head.qnet(t) for t in split.tokens]
    samples: dict[str, list[float]] = {
        "flat_ms": [],
        "qnet_ms": [],
        "score_ms": [],
        "rerank_ms": [],
    }
    for r in range(repeats):
        for i in range(len(split.ids)):
            t0 = time.perf_counter()
            index.search(split.dense[i : i + 1], m)
            t1 = time.perf_counter()
            with _blas.single_threaded():  # as HypencoderReranker.rerank does
                net = rr.head.qnet(split.tokens[i])
            t2 = time.perf_counter()
            rr.rerank_qnet(nets[i] if r % 2 else net, cand[i], 10)
            t3 = time.perf_counter()
            samples["flat_ms"].append(t1 - t0)
            samples["qnet_ms"].append(t2 - t1)
            samples["score_ms"].append(t3 - t2)
            samples["rerank_ms"].append(t3 - t1)
    return {k: 1000 * float(np.median(v)) for k, v in samples.items()}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    head = HyperHead.load(args.head)
    beir, split = load_split("test")
    docs = load_docs(beir)
    index = flat_index(docs)
    rr = HypencoderReranker(head, index)
    cand = index.search(split.dense, args.candidates).ids
    flat_rows = cand[:, :10]
    t = time.perf_counter()
    hyp_rows = rerank_rows(rr, split, cand, 10)
    rerank_s = time.perf_counter() - t
    flat_q = per_query_ndcg(flat_rows, split, beir.doc_ids)
    hyp_q = per_query_ndcg(hyp_rows, split, beir.doc_ids)
    lo, hi = bootstrap(hyp_q - flat_q)
    ranked = [[beir.doc_ids[j] for j in r] for r in cand]
    sub = Split(split.ids[:100], split.dense[:100], split.tokens[:100], split.qrels[:100])
    lat = {f"{m}": latency(rr, index, sub, m, args.repeats) for m in (100, 1000)}
    # Latency does not depend on the trained values: time the 2-hidden-layer q-net too.
    if head.config.n_hidden != 2:
        two = HypencoderReranker(HyperHead.init(replace(head.config, n_hidden=2)), index)
        for m in (100, 1000):
            lat[f"{m} (2 hidden, untrained)"] = latency(two, index, sub, m, args.repeats)
    from bench.machine import measure

    result = {
        "dataset": "SciFact test",
        "queries": len(split.ids),
        "docs": len(docs),
        "candidates": args.candidates,
        "head": str(args.head),
        "head_config": asdict(head.config),
        "head_info": head.info,
        "ndcg10_flat": float(flat_q.mean()),
        "ndcg10_hypencoder": float(hyp_q.mean()),
        "ndcg10_diff_ci95": [lo, hi],
        "recall100_flat": recall_at_k(ranked, split.qrels, 100),
        "wins_ties_losses": [
            int((hyp_q > flat_q).sum()),
            int((hyp_q == flat_q).sum()),
            int((hyp_q < flat_q).sum()),
        ],
        "rerank_all_s": rerank_s,
        "latency": lat,
        "machine": measure(repeats=1, read_mb=256, gemm_size=2048),
        "loadavg_1_5_15": list(os.getloadavg()),
        "git_commit": git_commit(),
    }
    write_json(args.out, result)
    update_section(SECTION, markdown(result), args.markdown)
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("ndcg10_flat", "ndcg10_hypencoder", "ndcg10_diff_ci95", "latency")
            },
            indent=1,
        )
    )
    return result


def shipped(args: argparse.Namespace) -> dict[str, Any]:
    """SciFact test: exact dense vs dense top-``candidates`` + a head's rerank (default: the
    packaged ``minilm-debian``), paired-bootstrap CI, and rerank latency at 100 and 1000."""
    from app.pipeline.hypencoder import BUNDLED

    path = BUNDLED / "minilm-debian" if args.head == HEAD_DIR else args.head
    head = HyperHead.load(path)
    if "scifact" in json.dumps(head.info).lower():
        raise SystemExit(f"{path} mentions SciFact in its training info: not a shipped head")
    beir, split = load_split("test")
    docs = load_docs(beir)
    index = flat_index(docs)
    rr = HypencoderReranker(head, index)
    cand = index.search(split.dense, args.candidates).ids
    flat_q = per_query_ndcg(cand[:, :10], split, beir.doc_ids)
    hyp_q = per_query_ndcg(rerank_rows(rr, split, cand, 10), split, beir.doc_ids)
    lo, hi = bootstrap(hyp_q - flat_q)
    sub = Split(split.ids[:100], split.dense[:100], split.tokens[:100], split.qrels[:100])
    result = {
        "dataset": "SciFact test (evaluation only)",
        "queries": len(split.ids),
        "docs": len(docs),
        "candidates": args.candidates,
        "head": str(path),
        "head_config": asdict(head.config),
        "head_data": head.info.get("data"),
        "ndcg10_flat": float(flat_q.mean()),
        "ndcg10_hypencoder": float(hyp_q.mean()),
        "ndcg10_diff": float((hyp_q - flat_q).mean()),
        "ndcg10_diff_ci95": [lo, hi],
        "wins_ties_losses": [
            int((hyp_q > flat_q).sum()),
            int((hyp_q == flat_q).sum()),
            int((hyp_q < flat_q).sum()),
        ],
        "latency_ms": {f"{m}": latency(rr, index, sub, m, args.repeats) for m in (100, 1000)},
        "loadavg_1_5_15": list(os.getloadavg()),
        "git_commit": git_commit(),
    }
    if args.json:
        write_json(args.json, result)
    print(json.dumps({k: v for k, v in result.items() if k != "head_config"}, indent=1))
    return result


def markdown(r: dict[str, Any]) -> str:
    c, info, m = r["head_config"], r["head_info"], r["machine"]
    lo, hi = r["ndcg10_diff_ci95"]
    w, ties, losses = r["wins_ties_losses"]
    lat = r["latency"]
    rows = "\n".join(
        f"| {n} | {v['flat_ms']:.2f} | {v['qnet_ms']:.2f} | {v['score_ms']:.2f} "
        f"| {v['rerank_ms']:.2f} |"
        for n, v in lat.items()
    )
    return f"""## Hypencoder reranking (SciFact)

`python -m bench.hypencoder all --epochs {info.get("train", {}).get("epochs")}` — q-net:
{c["n_hidden"]} hidden layer(s) of {c["dim"]};
head trained on SciFact train ({info.get("train_queries")} queries,
{info.get("val_queries")} held out to pick the epoch; best epoch {info.get("best_epoch", -1) + 1},
{info.get("seconds", 0):.0f} s on CPU) over frozen `minilm-tokens` query tokens and
`minilm` document vectors. Evaluated on the {r["queries"]} test queries over all
{r["docs"]} documents; the first stage is exact flat inner product.

| ranking | nDCG@10 |
|---|---|
| Flat (minilm) | {r["ndcg10_flat"]:.4f} |
| Flat top-{r["candidates"]} + Hypencoder rerank | {r["ndcg10_hypencoder"]:.4f} |

Difference {r["ndcg10_hypencoder"] - r["ndcg10_flat"]:+.4f}, 95% paired-bootstrap CI
[{lo:+.4f}, {hi:+.4f}]; per query {w} better / {ties} equal / {losses} worse. Flat recall@100
{r["recall100_flat"]:.4f} (the ceiling of any top-100 rerank).

Latency per query, median ms over the first 100 test queries (one query at a time; q-net
build + q-net scoring = rerank; flat search of the same depth for scale):

| candidates | flat search | q-net build | q-net scoring | rerank total |
|---|---|---|---|---|
{rows}

Machine: sgemm {m["sgemm_2t"] / 1e9:.0f} GFLOP/s (2 threads), read {m["read_bw_1t"] / 1e9:.1f} GB/s
(1 thread);
shared 2-core box, load average {r["loadavg_1_5_15"][1]:.0f} during the run: absolute times are
inflated; compare with the flat column measured alongside. Raw figures:
`bench/results/hypencoder.json`; notes: `index/HYPENCODER_NOTES.md`."""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("command", choices=["train", "eval", "all", "report", "shipped"])
    p.add_argument("--head", type=Path, default=HEAD_DIR)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--n-hidden", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--distill", type=float, default=1.0)
    p.add_argument("--list-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", type=Path, help="continue training this head directory")
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, help="shipped: also write the figures here")
    args = p.parse_args(argv)
    if args.command in ("train", "all"):
        train(args)
    if args.command in ("eval", "all"):
        evaluate(args)
    if args.command == "shipped":
        shipped(args)
    if args.command == "report":  # re-render the BENCHMARKS.md section from the JSON
        update_section(SECTION, markdown(json.loads(args.out.read_text())), args.markdown)


if __name__ == "__main__":
    main()
