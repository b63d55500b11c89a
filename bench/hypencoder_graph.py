"""Approximate Hypencoder search over a document graph vs exhaustive q-net scoring (Debian).

    python -m bench.hypencoder_graph [--queries 300] [--m 16]   # JSON + BENCHMARKS.md section

Documents: the 57k Debian long descriptions (``minilm``); queries: the held-out *test* slice of
synopses that ``innerspace train-hypencoder`` set aside when it trained the shipped head
(``--val 1000 --test 2000 --seed 0``), so the head never saw them; relevance: a synopsis's own
description. Encodings come from the trainer's cache (``~/.cache/innerspace/train-hypencoder``;
the trainer's command in the README fills it). For each query, with the shipped ``minilm-debian``
head:

- **exhaustive**: the q-net scores all documents (the ground truth of this comparison);
- **flat + rerank c**: inner-product top-``c`` re-scored by the q-net (what the service does);
- **graph b**: :func:`index.hypencoder_graph.graph_search` over the exact inner-product 16-NN
  graph, seeded with the inner-product top-10, beam ``b``.

Reported per method: recall@10 against exhaustive, nDCG@10, documents scored and median ms per
query (the q-net build, common to all, excluded; all methods interleaved query by query).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.cli_train import split_queries
from app.pipeline.hypencoder import BUNDLED
from app.train_data import encode_dense, encode_tokens, read_pairs
from bench.report import ROOT, git_commit, update_section, write_json
from encoders.evaluation import ndcg
from index.flat import _blas
from index.hypencoder_graph import graph_search, knn_graph
from index.hypencoder_head import HyperHead

CACHE = Path.home() / ".cache" / "innerspace"
DEBIAN = ROOT.parent / "shared" / "data" / "debian" / "descriptions.jsonl.gz"
RESULTS = ROOT / "bench" / "results" / "hypencoder_graph.json"
SECTION = "hypencoder-graph"


def _graph(docs: np.ndarray, m: int) -> tuple[np.ndarray, float]:
    path = CACHE / f"debian-knn{m}-{len(docs)}.npy"
    if path.exists():
        return np.load(path), float("nan")
    t0 = time.perf_counter()
    g = knn_graph(docs, m)
    took = time.perf_counter() - t0
    np.save(path, g)
    return g, took


def run(args: argparse.Namespace) -> dict[str, Any]:
    pairs = read_pairs(DEBIAN, debian=True)
    split = split_queries(len(pairs.queries), 1000, 2000, 12000, 0)
    cache = CACHE / "train-hypencoder"
    docs = encode_dense("minilm", pairs.docs, "document", cache)
    qdense = encode_dense("minilm", pairs.queries, "query", cache)
    tokens = encode_tokens("minilm-tokens", pairs.queries, cache)
    head = HyperHead.load(BUNDLED / "minilm-debian")
    test = np.random.default_rng(0).permutation(split.test)[: args.queries]
    graph, build_s = _graph(docs, args.m)
    methods = ["exhaustive"] + [f"flat+rerank {c}" for c in args.candidates]
    methods += [f"graph beam {b}" for b in args.beams]
    rows: dict[str, dict[str, list[float]]] = {
        m: {"recall": [], "ndcg": [], "scored": [], "ms": []} for m in methods
    }
    for n, qi in enumerate(test):
        with _blas.single_threaded():
            net = head.qnet(tokens[qi])
        ip = docs @ qdense[qi]
        labels = {d: 1.0 for d in pairs.positives[qi]}
        truth: set[int] = set()
        for m in methods:
            t0 = time.perf_counter()
            with _blas.single_threaded():
                if m == "exhaustive":
                    s = net.scores(docs)
                    top = np.lexsort((np.arange(len(s)), -s))[:10]
                    scored = len(docs)
                elif m.startswith("flat"):
                    c = int(m.split()[-1])
                    cand = np.argpartition(-ip, c)[:c]
                    s = net.scores(docs[cand])
                    top = cand[np.lexsort((cand, -s))[:10]]
                    scored = c
                else:
                    b = int(m.split()[-1])
                    seeds = np.argpartition(-ip, 10)[:10]
                    hits = graph_search(net, docs, graph, seeds, 10, beam=b, expand=args.expand)
                    top, scored = hits.rows, hits.scored
            ms = (time.perf_counter() - t0) * 1000
            if m == "exhaustive":
                truth = set(top.tolist())
            r = rows[m]
            r["recall"].append(len(truth & set(top.tolist())) / 10)
            r["ndcg"].append(ndcg([int(t) for t in top], labels, 10) or 0.0)
            r["scored"].append(scored)
            r["ms"].append(ms)
        if (n + 1) % 50 == 0:
            print(f"{n + 1}/{len(test)} queries", flush=True)
    summary = {
        m: {
            "recall@10": float(np.mean(r["recall"])),
            "ndcg@10": float(np.mean(r["ndcg"])),
            "scored_median": float(statistics.median(r["scored"])),
            "ms_median": float(statistics.median(r["ms"])),
        }
        for m, r in rows.items()
    }
    return {
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_avg": os.getloadavg(),
        "documents": len(docs),
        "queries": len(test),
        "m": args.m,
        "expand": args.expand,
        "graph_build_s": build_s,
        "summary": summary,
    }


def markdown(r: dict[str, Any]) -> str:
    ex = r["summary"]["exhaustive"]
    lines = [
        "## Hypencoder graph search (Debian)",
        "",
        f"`python -m bench.hypencoder_graph` on {r['date'][:10]} at `{r['commit'][:10]}` "
        f"(load average {r['load_avg'][0]:.1f} on 2 shared cores): {r['documents']:,} Debian "
        f"descriptions, {r['queries']} held-out test synopses the shipped head never saw, head "
        f"`minilm-debian`. Graph: exact inner-product {r['m']}-NN of the documents; walk seeded "
        f"with the inner-product top 10, expanding {r['expand']} documents a round. Recall@10 "
        "is against the q-net scoring every document; ms are medians per query on one thread, "
        "the q-net build (common to all) excluded, methods interleaved query by query.",
        "",
        "| method | recall@10 vs exhaustive | nDCG@10 | docs scored | ms/query | × exhaustive |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m, s in r["summary"].items():
        speed = ex["ms_median"] / s["ms_median"]
        lines.append(
            f"| {m} | {s['recall@10']:.3f} | {s['ndcg@10']:.4f} | {s['scored_median']:,.0f} | "
            f"{s['ms_median']:.2f} | {speed:.1f}× |"
        )
    lines += ["", "Raw figures: `bench/results/hypencoder_graph.json`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--m", type=int, default=16, help="neighbours per document in the graph")
    p.add_argument("--expand", type=int, default=8)
    p.add_argument(
        "--beams", type=lambda s: [int(x) for x in s.split(",")], default=[16, 32, 64, 128]
    )
    p.add_argument(
        "--candidates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000]
    )
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    result = run(args)
    md = markdown(result)
    print(md)
    if not args.no_write:
        write_json(RESULTS, result)
        update_section(SECTION, md)


if __name__ == "__main__":
    main()
