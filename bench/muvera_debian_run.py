"""MUVERA at ~113k real documents (the Debian token sets) vs brute-force MaxSim.

For each (preset, inner index): recall@10 against the exact MaxSim top-10 after re-ranking the
inner index's top-c, the FDE candidates' own recall (the inner index's top-c and an exact FDE
scan), single-query latency one query at a time next to brute-force MaxSim over the same token
store (interleaved, medians), build time and bytes per document; plus the score margins of the
exact top-200 (as :mod:`bench.muvera_margins`). Rendered as a sub-block of the muvera section of
``BENCHMARKS.md`` between ``<!-- muvera-debian:begin -->`` and ``<!-- muvera-debian:end -->``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.muvera_data import (
    K,
    TokenSets,
    bytes_per_doc,
    fde_candidates,
    interleaved,
    one_at_a_time,
    prefix_rerank,
    recall_at,
)
from bench.muvera_margins import DEPTH, margins_of
from index.muvera import PRESETS, MuveraIndex

HNSW = "HNSW(m=16,ef_construction=100,ef_search=256)"
#: (preset, inner): ``wide`` is what collections use (``app.multivector.default_spec``: wide over
#: Flat); ``compact`` over HNSW is the synthetic scale run's configuration.
CONFIGS = (("wide", "Flat"), ("compact", HNSW))
BEGIN, END = "<!-- muvera-debian:begin -->", "<!-- muvera-debian:end -->"


def build_reserved(data: TokenSets, preset: str, inner: str) -> tuple[MuveraIndex, float]:
    """Index every document under ids ``0..n-1`` in 10k-document adds (as the service's build
    job), the token store and a Flat inner index reserved at their final size first: geometric
    growth would briefly hold two copies of the ~8 GB float32 store on this 23 GB box."""
    t = time.perf_counter()
    index = MuveraIndex(data.dim, PRESETS[preset], inner)
    index.store._grow(data.n_docs, len(data.doc_tokens))
    reserve = getattr(index.inner, "_reserve", None)
    if reserve is not None:
        reserve(data.n_docs)
    ids = np.arange(data.n_docs, dtype=np.int64)
    for a in range(0, data.n_docs, 10_000):
        b = min(a + 10_000, data.n_docs)
        index.add(ids[a:b], data.docs(a, b))
    return index, time.perf_counter() - t


def exact_top(
    index: MuveraIndex, data: TokenSets, cache: Path | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Brute-force MaxSim top-``DEPTH`` ids and scores of every query over the index's own
    token store, and the seconds the batch took; cached in ``cache`` (an ``.npz``) when given."""
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            return z["ids"], z["scores"], float(z["seconds"])
    t = time.perf_counter()
    found = index.reranker.search(data.query_tokens, data.query_offsets, DEPTH)
    seconds = time.perf_counter() - t
    if cache is not None:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, ids=found.ids, scores=found.scores, seconds=np.float64(seconds))
        tmp.replace(cache)
    return found.ids, found.scores, seconds


def measure(
    data: TokenSets,
    preset: str,
    inner: str,
    args: argparse.Namespace,
    truth_cache: Path | None,
    truth: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """One (preset, inner) row; returns it, the exact top-10 and (when computed here) the exact
    top-``DEPTH`` scores."""
    cands: tuple[int, ...] = tuple(args.candidates)
    index, build_s = build_reserved(data, preset, inner)
    print(f"  {preset} + {inner}: built in {build_s:.0f} s", flush=True)
    scores = None
    out: dict[str, Any] = {}
    if truth is None:
        ids, scores, seconds = exact_top(index, data, truth_cache)
        truth = ids[:, :K]
        out["exact_ms_per_query_batched"] = seconds / data.n_queries * 1e3
    queries = data.queries()
    inner_ids = index.inner.search(index.encode_queries(queries), max(cands)).ids
    exact_scan = inner.startswith("Flat")  # Flat's top-c is the exact FDE top-c
    scan_ids = inner_ids if exact_scan else fde_candidates(index, data, max(cands))
    found = prefix_rerank(index, queries, inner_ids, cands)  # = index.search(..., candidates=c)
    single = queries[: args.single]
    jobs: dict[str, Callable[[], Any]] = {
        "exact": partial(one_at_a_time, index.search, single, exact=True)
    }
    for c in cands:
        jobs[f"c{c}"] = partial(one_at_a_time, index.search, single, candidates=c)
    times, _ = interleaved(jobs, args.repeats)
    exact_ms = times["exact"] / len(single) * 1e3
    out.update(
        preset=preset,
        inner=inner,
        candidates=list(cands),
        spec=index.spec,
        fde_dim=index.fde_dim,
        build_s=build_s,
        bytes_per_doc=bytes_per_doc(index),
        exact_ms_single=exact_ms,
        fde_only_recall=recall_at(inner_ids[:, :K], truth),
    )
    for c in cands:
        ms = times[f"c{c}"] / len(single) * 1e3
        out[f"c{c}"] = {
            "recall": recall_at(found[c], truth),
            "inner_candidate_recall": recall_at(inner_ids[:, :c], truth),
            "scan_candidate_recall": recall_at(scan_ids[:, :c], truth),
            "ms_single": ms,
            "speedup_single": exact_ms / ms,
        }
        r = out[f"c{c}"]
        print(
            f"    c{c}: R@10 {r['recall']:.3f} (FDE top-c: inner {r['inner_candidate_recall']:.3f}"
            f", exact scan {r['scan_candidate_recall']:.3f}), {ms:.1f} ms/query vs "
            f"{exact_ms:.0f} ms brute force ({r['speedup_single']:.0f}x)",
            flush=True,
        )
    del index
    gc.collect()
    return out, truth, scores


def run(
    data: TokenSets,
    args: argparse.Namespace,
    truth_cache: Path | None,
    checkpoint: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Every ``args.configs`` row over the same data and ground truth, and the margins;
    ``checkpoint`` gets the result after each row."""
    out: dict[str, Any] = {
        "docs": data.n_docs,
        "tokens": len(data.doc_tokens),
        "tokens_per_doc": len(data.doc_tokens) / data.n_docs,
        "dim": data.dim,
        "queries": data.n_queries,
        "query_tokens_mean": len(data.query_tokens) / data.n_queries,
        "single_queries": min(args.single, data.n_queries),
        "repeats": args.repeats,
        "candidates": list(args.candidates),
        "rows": [],
    }
    truth = None
    for preset, inner in args.configs:
        row, truth, scores = measure(data, preset, inner, args, truth_cache, truth)
        if scores is not None:
            out["exact_ms_per_query_batched"] = row.pop("exact_ms_per_query_batched")
            out["margins"] = margins_of(scores, data.n_docs)
        out["rows"].append(row)
        checkpoint(out)
    return out


def table(s: dict[str, Any]) -> str:
    """The markdown sub-block (with its markers) for a :func:`run` result ``s``."""
    m = s["margins"]
    commands = " and ".join(f"`{c}`" for c in s.get("commands", [s["command"]]))
    lines = [
        BEGIN,
        f"### Real token vectors at scale: Debian `minilm-tokens` ({s['docs']:,} docs, "
        f"{s['tokens']:,} tokens × {s['dim']}, {s['queries']} held-out synopses as queries)",
        "",
        f"{commands} on {s['date'][:10]} at {s['commit_label']}. Documents: every "
        f"Debian package description and every synopsis except {s['held_out']:,} seeded held-out "
        f"synopses (seed {s['seed']}; the first {s['queries']} of them by row are the queries, "
        f"{s['query_tokens_mean']:.1f} tokens each; documents {s['tokens_per_doc']:.1f} tokens); "
        "the SciFact encoder, cached float16, stored float32.",
        "",
        "| preset | inner | FDE dim | c | R@10 | FDE top-c R@10: inner / exact scan "
        "| ms/query, one at a time | × brute force |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        inner = f"`{r['inner']}`"
        lines.append(
            f"| {r['preset']} | {inner} | {r['fde_dim']:,} | brute-force MaxSim | 1.000 | "
            f"| {r['exact_ms_single']:,.0f} | 1× |"
        )
        for c in r.get("candidates", s["candidates"]):
            x = r[f"c{c}"]
            lines.append(
                f"| {r['preset']} | {inner} | {r['fde_dim']:,} | {c} | {x['recall']:.3f} "
                f"| {x['inner_candidate_recall']:.3f} / {x['scan_candidate_recall']:.3f} "
                f"| {x['ms_single']:,.1f} | {x['speedup_single']:.0f}× |"
            )
    builds = "; ".join(
        f"{r['preset']} + `{r['inner']}`: {r['build_s']:.0f} s, "
        f"{r['bytes_per_doc']['fde_index_held']:,.0f} + {r['bytes_per_doc']['tokens']:,.0f} "
        "bytes/doc (FDE index + tokens)"
        for r in s["rows"]
    )
    lines += [
        "",
        f"One query at a time: means over the first {s['single_queries']} queries, medians of "
        f"{s['repeats']} interleaved repeats; brute force = `search(exact=True)` over the same "
        f"store (batched: {s['exact_ms_per_query_batched']:,.0f} ms/query). R@10 over all "
        f"{s['queries']} queries. Build (10k-document adds) and bytes: {builds}.",
        "",
        f"Score margins of the exact top-{DEPTH} (all {s['queries']} queries, as "
        "`bench.muvera_margins`): (s1−s10)/s10 "
        f"{m['gap_1']:.3f}, (s10−s100)/s10 {m['gap_100']:.3f}, (s10−s200)/s10 "
        f"{m['gap_200']:.3f}; documents within 1% of s10 {m['within_1pct']:.1f}, within 2% "
        f"{m['within_2pct']:.1f}. Raw figures: `bench/results/muvera_debian.json`.",
        END,
    ]
    return "\n".join(lines)


def with_block(section: str, block: str) -> str:
    """``section`` (the muvera section's text) with ``block`` in place of its old debian block,
    or inserted before the PQ tables (else before the raw-figures line, else at the end)."""
    if BEGIN in section and END in section:
        head, rest = section.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    for anchor in ("### Inner PQ vs Flat", "Raw figures: `bench/results/muvera.json`"):
        if anchor in section:
            head, tail = section.split(anchor, 1)
            return head + block + "\n\n" + anchor + tail
    return section.rstrip() + "\n\n" + block + "\n"


def write_block(block: str, path: Path) -> None:
    """Put ``block`` into the muvera section of ``path`` in place, touching nothing else."""
    text = path.read_text()
    begin, end = "<!-- muvera:begin -->", "<!-- muvera:end -->"
    head, rest = text.split(begin, 1)
    section, tail = rest.split(end, 1)
    path.write_text(head + begin + with_block(section, block) + end + tail)


def keep_block(section: str, results: Path) -> str:
    """``section`` with the debian block rendered from ``results`` (a
    ``bench/results/muvera_debian.json``) when that file exists: how ``bench.muvera`` keeps the
    block when it rewrites the muvera section."""
    if not results.exists():
        return section
    return with_block(section, table(json.loads(results.read_text())))
