"""MUVERA: FDE candidates + exact MaxSim re-rank against brute-force MaxSim, and against fastembed.

Every recall figure is recall@10 against the exact MaxSim (Chamfer) top-10 computed by brute force
on the same data; every speed figure is a median of interleaved repeats on this (shared, noisy)
box, measured side by side with its baseline.

1. Synthetic clustered token sets (``--docs``, dim 128, 16-48 tokens; queries 8-32 tokens) and
   2. real ``minilm-tokens`` vectors of SciFact (cached, see :mod:`bench.muvera_data`; plus
   nDCG@10 from the qrels): default (10,240-dim) and compact (2,560-dim) presets x fill
   nearest/zero x final count-sketch off/on (1,024 dims), inner ``Flat``: FDE-only recall, FDE +
   MaxSim recall (every query) and q/s (``--time-queries``) at candidates 50/100/200/500,
   brute-force MaxSim, bytes per document, and query-token ball carving (``tau``).
3. Scale (``--scale`` sizes): compact preset over ``HNSW`` vs brute-force MaxSim, per-query
   latency one query at a time and batched, at ``--scale-candidates``.
4. fastembed's ``Muvera`` at equal parameters on the same token vectors (when importable, see
   :mod:`bench.muvera_fastembed`): FDE encoding throughput and each one's candidate recall.
5. PQ inner index vs Flat (:mod:`bench.muvera_pq`): R@10 after re-rank, bytes, build time, on
   the synthetic sets (section ``pq``) and on SciFact (inside ``real``, same ground truth).

Writes ``bench/results/muvera.json`` (after each section) and the muvera section of
``BENCHMARKS.md``; ``--skip real --update`` re-runs the rest and keeps the skipped sections.

    python -m bench.muvera [--tiny] [--docs 10000] [--scale 10000,100000] [--real 5183]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import SgemmProbe, median_rate, versions
from bench.muvera_data import (
    K,
    Labeled,
    TokenSets,
    build,
    bytes_per_doc,
    clustered,
    exact_baseline,
    fde_candidates,
    fde_only,
    interleaved,
    one_at_a_time,
    prefix_rerank,
    recall_at,
    scifact_tokens,
)
from bench.muvera_debian_run import keep_block
from bench.muvera_fastembed import encode_only, fastembed_section
from bench.muvera_pq import pq_section, pq_synthetic
from bench.muvera_report import GOALS, markdown
from bench.report import BENCHMARKS, dirty, git_commit, update_section, write_json
from index.maxsim import carve
from index.muvera import PRESETS, MuveraIndex, MuveraParams

RESULTS = Path(__file__).parent / "results"
DEBIAN = RESULTS / "muvera_debian.json"  # the real-data 100k block (bench.muvera_debian), kept
SECTION = "muvera"
CANDIDATES = (50, 100, 200, 500)
TAUS = (0.9, 0.8, 0.7, 0.6, 0.5)


def configs(tiny: bool, d_finals: tuple[int, ...] = (0, 1024)) -> dict[str, MuveraParams]:
    """Default and compact presets x fill nearest/zero x final projection off/on (1,024 dims),
    and the wide preset with fill zero."""
    out = {}
    for preset in ("default", "compact"):
        for fill in ("nearest", "zero"):
            for d_final in d_finals:
                name = f"{preset},fill={fill}" + (f",d_final={d_final}" if d_final else "")
                out[name] = replace(PRESETS[preset], fill=fill, d_final=d_final)
    out["wide,fill=zero"] = replace(PRESETS["wide"], fill="zero")
    return dict(list(out.items())[:2]) if tiny else out


# -- sections ----------------------------------------------------------------------------------

Scorer = Callable[[np.ndarray], float]


def grid(
    data: TokenSets, truth: np.ndarray, args: argparse.Namespace, ndcg: Scorer | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every config over inner Flat: FDE-only and FDE + MaxSim recall (every query) and q/s
    (the first ``--time-queries`` queries, the real search path); then ball carving on the
    first config (default preset, fill nearest)."""
    real = ndcg is not None
    queries = data.queries()
    timed = queries[: args.time_queries]
    rows: list[dict[str, Any]] = []
    carving: dict[str, Any] = {}
    d_finals = (0,) if real and args.real_no_d_final else (0, 1024)
    for name, params in configs(args.tiny, d_finals).items():
        t = time.perf_counter()
        index = build(data, params, "Flat")
        build_s = time.perf_counter() - t
        fde_ids = index.inner.search(index.encode_queries(queries), max(CANDIDATES)).ids
        found = prefix_rerank(index, queries, fde_ids, CANDIDATES)
        jobs: dict[str, Callable[[], Any]] = {"fde_only": partial(fde_only, index, timed)}
        for c in CANDIDATES:
            jobs[f"c{c}"] = partial(index.search, timed, K, candidates=c)
        times, _ = interleaved(jobs, args.repeats)
        row: dict[str, Any] = {
            "config": name,
            "spec": index.spec,
            "fde_dim": index.fde_dim,
            "build_s": build_s,
            "encode_docs_per_s": data.n_docs / build_s,
            "bytes_per_doc": bytes_per_doc(index),
            "fde_only": {
                "recall": recall_at(fde_ids[:, :K], truth),
                "qps": len(timed) / times["fde_only"],
            },
        }
        for c in CANDIDATES:
            row[f"c{c}"] = {
                "recall": recall_at(found[c], truth),
                "candidate_recall": recall_at(fde_ids[:, :c], truth),
                "qps": len(timed) / times[f"c{c}"],
            }
            if ndcg is not None:
                row[f"c{c}"]["ndcg"] = ndcg(found[c])
        rows.append(row)
        print(grid_line(row), flush=True)
        if not carving:
            carving = tau_sweep(index, queries, fde_ids, truth, args, ndcg)
        del index
        gc.collect()
    return rows, carving


def grid_line(row: dict[str, Any]) -> str:
    parts = [f"{row['config']:>30} {row['fde_dim']:>5}d  fde-only {row['fde_only']['recall']:.3f}"]
    parts += [f"c{c} {row[f'c{c}']['recall']:.3f} {row[f'c{c}']['qps']:.0f}/s" for c in CANDIDATES]
    return "  ".join(parts)


def tau_sweep(
    index: MuveraIndex,
    queries: list[np.ndarray],
    fde_ids: np.ndarray,
    truth: np.ndarray,
    args: argparse.Namespace,
    ndcg: Scorer | None,
) -> dict[str, Any]:
    """Re-rank with ball-carved queries at each ``tau`` (and without), candidates 100 and 200:
    recall over every query, q/s over the timed ones."""
    timed = queries[: args.time_queries]
    out: dict[str, Any] = {"config": index.spec, "rows": []}
    for tau in (None, *TAUS):
        found = prefix_rerank(index, queries, fde_ids, (100, 200), tau)
        tokens = np.mean([len(q) if tau is None else len(carve(q, tau)) for q in queries])
        for c in (100, 200):
            row = {
                "candidates": c,
                "tau": tau,
                "query_tokens": float(tokens),
                "recall": recall_at(found[c], truth),
            }
            if ndcg is not None:
                row["ndcg"] = ndcg(found[c])
            out["rows"].append(row)
    for c in (100, 200):
        jobs: dict[str, Callable[[], Any]] = {"None": partial(index.search, timed, K, candidates=c)}
        for tau in TAUS:
            jobs[f"{tau}"] = partial(index.search, timed, K, candidates=c, tau=tau)
        times, _ = interleaved(jobs, args.repeats)
        for row in out["rows"]:
            if row["candidates"] == c:
                row["qps"] = len(timed) / times[f"{row['tau']}"]
                row["speedup"] = times["None"] / times[f"{row['tau']}"]
    out["rows"].sort(key=lambda r: (r["candidates"], -(r["tau"] or 2.0)))
    print(
        "  carving: "
        + "  ".join(
            f"c{r['candidates']} tau={r['tau']} {r['query_tokens']:.1f}tok R {r['recall']:.3f} "
            f"{r['speedup']:.2f}x"
            for r in out["rows"]
        ),
        flush=True,
    )
    return out


def synthetic_section(args: argparse.Namespace) -> dict[str, Any]:
    data = clustered(args.seed, args.docs, args.queries, args.dim)
    print(f"synthetic: {data.n_docs} docs, {len(data.doc_tokens)} tokens x {data.dim}", flush=True)
    truth, exact = exact_baseline(data, args.repeats)
    print(f"  brute-force MaxSim: {exact['qps_batch']:.1f} q/s batched", flush=True)
    rows, carving = grid(data, truth, args)
    return {
        "docs": data.n_docs,
        "tokens": len(data.doc_tokens),
        "dim": data.dim,
        "queries": data.n_queries,
        "timed_queries": min(args.time_queries, data.n_queries),
        "exact": exact,
        "rows": rows,
        "carving": carving,
    }


def scale_section(args: argparse.Namespace, n_docs: int) -> dict[str, Any]:
    """Compact preset over HNSW vs brute-force MaxSim on the same token store, at several
    candidate counts; the FDE candidates' own recall (exact FDE scan and HNSW) alongside."""
    data = clustered(args.seed + 1, n_docs, args.scale_queries, args.dim)
    print(f"scale: {data.n_docs} docs, {len(data.doc_tokens)} tokens x {data.dim}", flush=True)
    qt, qo = data.query_tokens, data.query_offsets
    queries = data.queries()
    cands = args.scale_candidates
    inner = f"HNSW(m=16,ef_construction=100,ef_search={args.ef_search})"
    t = time.perf_counter()
    index = build(data, PRESETS["compact"], inner)
    build_s = time.perf_counter() - t
    print(f"  built {index.spec} in {build_s:.0f} s", flush=True)
    t = time.perf_counter()
    truth = index.reranker.search(qt, qo, K).ids  # brute force over the index's own tokens
    exact_batch_s = time.perf_counter() - t
    fde_ids = fde_candidates(index, data, max(cands))
    hnsw_ids = index.inner.search(index.encode_queries(queries), max(cands)).ids
    single = queries[: args.single]
    jobs: dict[str, Callable[[], Any]] = {
        "exact_single": partial(one_at_a_time, index.search, single, exact=True),
    }
    for c in cands:
        jobs[f"batch_c{c}"] = partial(index.search, queries, K, candidates=c)
        jobs[f"single_c{c}"] = partial(one_at_a_time, index.search, single, candidates=c)
    times, last = interleaved(jobs, max(3, args.repeats // 2))
    exact_ms = times["exact_single"] / len(single) * 1e3
    out: dict[str, Any] = {
        "docs": data.n_docs,
        "tokens": len(data.doc_tokens),
        "dim": data.dim,
        "queries": data.n_queries,
        "single_queries": len(single),
        "spec": index.spec,
        "candidates": list(cands),
        "build_s": build_s,
        "bytes_per_doc": bytes_per_doc(index),
        "exact_ms_single": exact_ms,
        "exact_ms_per_query_batched": exact_batch_s / data.n_queries * 1e3,
    }
    for c in cands:
        ms_single = times[f"single_c{c}"] / len(single) * 1e3
        ms_batch = times[f"batch_c{c}"] / data.n_queries * 1e3
        out[f"c{c}"] = {
            "recall": recall_at(last[f"batch_c{c}"].ids, truth),
            "fde_candidate_recall": recall_at(fde_ids[:, :c], truth),
            "hnsw_candidate_recall": recall_at(hnsw_ids[:, :c], truth),
            "ms_single": ms_single,
            "ms_per_query_batched": ms_batch,
            "speedup_single": exact_ms / ms_single,
            "speedup_batched": out["exact_ms_per_query_batched"] / ms_batch,
        }
        r = out[f"c{c}"]
        print(
            f"  c{c}: recall {r['recall']:.3f} (FDE scan {r['fde_candidate_recall']:.3f}, HNSW "
            f"{r['hnsw_candidate_recall']:.3f}), {ms_single:.1f} ms/query vs {exact_ms:.0f} ms "
            f"brute force ({r['speedup_single']:.0f}x)",
            flush=True,
        )
    return out


def real_section(args: argparse.Namespace) -> dict[str, Any] | None:
    loaded: Labeled | None = scifact_tokens(args.real)
    if loaded is None:
        return None
    from encoders.evaluation import ndcg_at_k

    nq = min(args.real_queries, loaded.data.n_queries)
    full = loaded.data
    qo = full.query_offsets[: nq + 1]
    data = TokenSets(full.doc_tokens, full.doc_offsets, full.query_tokens[: qo[-1]], qo)
    print(f"scifact: {data.n_docs} docs, {len(data.doc_tokens)} tokens x {data.dim}", flush=True)
    truth, exact = exact_baseline(data, 1)
    labels = [loaded.qrels.get(q, {}) for q in loaded.query_ids[:nq]]

    def ndcg(found: np.ndarray) -> float:
        ranked = [[loaded.doc_ids[i] for i in row if i >= 0] for row in found]
        return ndcg_at_k(ranked, labels, K)

    exact["ndcg"] = ndcg(truth)
    print(f"  brute-force MaxSim: {exact['qps_batch']:.1f} q/s, nDCG@10 {exact['ndcg']:.3f}")
    rows, carving = grid(data, truth, args, ndcg)
    pq = None
    if "pq" not in args.skip.split(","):  # the PQ rows on the same data and ground truth
        pq = pq_section(args, data, truth, CANDIDATES, str(PRESETS["default"].fill))
    return {
        "docs": data.n_docs,
        "tokens": len(data.doc_tokens),
        "dim": data.dim,
        "queries": data.n_queries,
        "timed_queries": min(args.time_queries, data.n_queries),
        "exact": exact,
        "rows": rows,
        "carving": carving,
        "fastembed": fastembed_section(args, data, "SciFact minilm-tokens"),
        "pq": pq,
    }


# -- command line ------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.muvera", description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=10_000, help="synthetic documents (grid)")
    p.add_argument("--dim", type=int, default=128, help="synthetic token dimension")
    p.add_argument("--queries", type=int, default=100, help="synthetic queries")
    p.add_argument("--scale", default="10000,100000", help="document counts at scale ('': skip)")
    p.add_argument("--scale-candidates", default="100,200,500,1000,2000")
    p.add_argument("--scale-queries", type=int, default=50)
    p.add_argument("--single", type=int, default=10, help="one-at-a-time queries at scale")
    p.add_argument("--ef-search", type=int, default=256, help="HNSW ef_search at scale")
    p.add_argument("--real", type=int, default=5183, help="SciFact documents (0: skip)")
    p.add_argument("--real-queries", type=int, default=300, help="SciFact test queries used")
    p.add_argument("--real-no-d-final", action="store_true", help="real: final projection off only")
    p.add_argument("--fastembed-docs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--time-queries", type=int, default=50, help="queries timed per config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", default="", help="sections to skip: synthetic,scale,real,pq")
    p.add_argument("--update", action="store_true", help="keep skipped sections from --out")
    p.add_argument("--tiny", action="store_true", help="a few seconds: smoke test, no markdown")
    p.add_argument(
        "--encode-only",
        action="store_true",
        help="only the FDE encoding side by side with fastembed (synthetic --fastembed-docs, and "
        "SciFact's first --fastembed-docs docs x --real-queries queries unless --real 0); "
        "JSON to --out (default a temp file), no markdown",
    )
    p.add_argument("--render", action="store_true", help="only re-render --out into the markdown")
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/muvera.json)")
    p.add_argument("--markdown", type=Path, help="default BENCHMARKS.md; none with --tiny")
    args = p.parse_args(argv)
    args.scale = [int(s) for s in str(args.scale).split(",") if s.strip()]
    args.scale_candidates = [int(c) for c in str(args.scale_candidates).split(",")]
    if args.encode_only:
        args.out = args.out or Path(tempfile.gettempdir()) / "innerspace-bench-muvera-encode.json"
    elif args.tiny:
        args.docs, args.dim, args.queries, args.scale, args.real = 300, 32, 10, [400], 0
        args.repeats, args.fastembed_docs, args.single = 1, 50, 3
        args.scale_candidates, args.scale_queries = [100, 200], 10
        args.out = args.out or Path(tempfile.gettempdir()) / "innerspace-bench-muvera-tiny.json"
    else:
        args.out = args.out or RESULTS / "muvera.json"
        args.markdown = args.markdown or BENCHMARKS
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    sgemm, _ = median_rate(SgemmProbe(1024 if args.tiny or args.encode_only else 4096, 2), 3)
    result: dict[str, Any] = {
        "command": "python -m bench.muvera " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "commit": git_commit(),
        "dirty": dirty(),
        "versions": versions(),
        "sgemm_gflops": sgemm / 1e9,
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "goals": GOALS,
    }
    if args.encode_only:
        encode_only(args, result)
        return
    if args.render:
        text = markdown(json.loads(args.out.read_text()), CANDIDATES)
        update_section(SECTION, keep_block(text, DEBIAN), args.markdown)
        print(f"rendered {args.out} into the {SECTION} section of {args.markdown}")
        return
    skip = set(args.skip.split(","))
    if args.update and args.out.exists():
        old = json.loads(args.out.read_text())
        keep = {
            "synthetic": ("synthetic", "fastembed"),
            "scale": ("scale",),
            "real": ("real",),
            "pq": ("pq",),
        }
        for name in skip:
            result.update({k: old[k] for k in keep.get(name, ()) if k in old})
    if "synthetic" not in skip:
        result["synthetic"] = synthetic_section(args)
        syn = clustered(args.seed, args.fastembed_docs, args.queries, args.dim)
        result["fastembed"] = fastembed_section(args, syn, f"synthetic d={args.dim}")
        write_json(args.out, result)  # after each section: a late failure keeps the rest
    if "scale" not in skip:
        result["scale"] = []
        for n in args.scale:
            result["scale"].append(scale_section(args, n))
            write_json(args.out, result)
    if "real" not in skip and args.real:
        result["real"] = real_section(args)
        write_json(args.out, result)
    if "pq" not in skip:
        result["pq"] = pq_synthetic(args, CANDIDATES)
    write_json(args.out, result)
    text = markdown(result, CANDIDATES)
    if args.markdown:
        update_section(SECTION, keep_block(text, DEBIAN), args.markdown)
        print(f"wrote {args.out} and the {SECTION} section of {args.markdown}")
    else:
        print(f"wrote {args.out}")  # the tiny run still renders the report


if __name__ == "__main__":
    main()
