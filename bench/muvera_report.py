"""The muvera section of ``BENCHMARKS.md``, rendered from the JSON result of :mod:`bench.muvera`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.muvera_pq import pq_table

#: Goals from issue 6.
GOALS = {"recall": 0.95, "max_candidates": 200, "speedup_100k": 10.0, "encode_vs_fastembed": 10.0}


def grid_table(section: dict[str, Any], cands: Sequence[int], with_ndcg: bool) -> list[str]:
    head = "| config | FDE dim | bytes/doc FDE + tokens | FDE-only R@10 |"
    rule = "|---|---:|---:|---:|"
    for c in cands:
        head += f" c={c} R@10 | q/s |"
        rule += "---:|---:|"
    if with_ndcg:
        head += " nDCG@10 c=100 |"
        rule += "---:|"
    lines = [head, rule]
    for row in section["rows"]:
        b = row["bytes_per_doc"]
        line = (
            f"| {row['config']} | {row['fde_dim']:,} | {b['fde']:,.0f} + {b['tokens']:,.0f} "
            f"| {row['fde_only']['recall']:.3f} |"
        )
        for c in cands:
            line += f" {row[f'c{c}']['recall']:.3f} | {row[f'c{c}']['qps']:,.0f} |"
        if with_ndcg:
            line += f" {row['c100']['ndcg']:.3f} |"
        lines.append(line)
    ex = section["exact"]
    extra = f", nDCG@10 {ex['ndcg']:.3f}" if with_ndcg else ""
    lines += [
        "",
        f"Brute-force MaxSim (exact, all {section['docs']:,} docs): {ex['qps_batch']:,.1f} q/s "
        f"batched ({ex['gflops_batch']:.0f} GFLOP/s), {ex['ms_single']:.0f} ms for one query"
        f"{extra}. q/s of FDE + re-rank: batches of the first "
        f"{section.get('timed_queries', section['queries'])} queries (recall: all of them).",
    ]
    return lines


def carving_table(carving: dict[str, Any], with_ndcg: bool) -> list[str]:
    lines = [
        f"Query-token ball carving on `{carving['config']}` (merge query tokens with cosine ≥ "
        "τ, sum them; re-rank only):",
        "",
        "| candidates | τ | query tokens (mean) | R@10 | q/s | vs no carving |"
        + (" nDCG@10 |" if with_ndcg else ""),
        "|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_ndcg else ""),
    ]
    for r in carving["rows"]:
        tau = "off" if r["tau"] is None else f"{r['tau']:.2f}"
        line = (
            f"| {r['candidates']} | {tau} | {r['query_tokens']:.1f} | {r['recall']:.3f} "
            f"| {r['qps']:,.0f} | {r['speedup']:.2f}× |"
        )
        lines.append(line + (f" {r['ndcg']:.3f} |" if with_ndcg else ""))
    return lines


def scale_table(scale: list[dict[str, Any]]) -> list[str]:
    s0 = scale[0]
    lines = [
        f"### Latency vs brute-force MaxSim: `{s0['spec']}`, synthetic dim {s0['dim']}",
        "",
        "| docs (tokens) | search | R@10 | FDE top-c R@10: exact scan / HNSW "
        f"| ms/query, one at a time | × | ms/query, batch of {s0['queries']} | × |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scale:
        size = f"{s['docs']:,} ({s['tokens']:,})"
        lines.append(
            f"| {size} | brute-force MaxSim | 1.000 | | {s['exact_ms_single']:,.1f} | 1× "
            f"| {s['exact_ms_per_query_batched']:,.1f} | 1× |"
        )
        for c in s.get("candidates", (100, 200)):
            r = s[f"c{c}"]
            fde = (
                f"{r['fde_candidate_recall']:.3f} / {r['hnsw_candidate_recall']:.3f}"
                if "fde_candidate_recall" in r
                else ""
            )
            lines.append(
                f"| {size} | MUVERA c={c} | {r['recall']:.3f} | {fde} | {r['ms_single']:.2f} "
                f"| {r['speedup_single']:.0f}× | {r['ms_per_query_batched']:.2f} "
                f"| {r['speedup_batched']:.0f}× |"
            )
    builds = ", ".join(
        f"{s['docs']:,}: {s['build_s']:.0f} s, {s['bytes_per_doc']['fde_index_held']:,.0f} + "
        f"{s['bytes_per_doc']['tokens']:,.0f} bytes/doc"
        for s in scale
    )
    lines += [
        "",
        f"One-at-a-time figures are means over {s0['single_queries']} queries. FDE top-c R@10 is "
        "the share of the exact top-10 among the c candidates before re-ranking (exact FDE "
        "product vs the HNSW graph). Build (FDE encoding + HNSW, 10k-document adds) and "
        f"bytes/doc (FDE index incl. graph + tokens): {builds}.",
    ]
    return lines


def fastembed_table(sides: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### FDE encoding vs fastembed `Muvera` (k_sim=5, d_proj=16, r_reps=20, same tokens)",
        "",
        "| data | docs | ours docs/s (1 thread) | fastembed docs/s | × (1 thread) "
        "| ours queries/s (1 thread) | fastembed queries/s | × (1 thread) "
        "| FDE top-100 R@10: ours | fastembed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sides:
        o, f = s["ours"], s["fastembed"]
        one_d = one_q = ""
        if "docs_per_s_1thread" in o:
            one_d = f" ({o['docs_per_s_1thread']:,.0f})"
            one_q = f" ({o['queries_per_s_1thread']:,.0f})"
        x_d = x_q = ""
        if "encode_speedup_docs_1thread" in s:
            x_d = f" ({s['encode_speedup_docs_1thread']:.1f})"
            x_q = f" ({s['encode_speedup_queries_1thread']:.1f})"
        lines.append(
            f"| {s['data']} | {s['docs']:,} | {o['docs_per_s']:,.0f}{one_d} "
            f"| {f['docs_per_s']:,.0f} | {s['encode_speedup_docs']:.1f}{x_d} "
            f"| {o['queries_per_s']:,.0f}{one_q} | {f['queries_per_s']:,.0f} "
            f"| {s['encode_speedup_queries']:.1f}{x_q} "
            f"| {o['candidate_recall_c100']:.3f} | {f['candidate_recall_c100']:.3f} |"
        )
    threads = sides[0].get("threads")
    lines += [
        "",
        f"fastembed {sides[0]['fastembed_version']} (an optional bench-only comparison, not a "
        "project dependency). R@10 here is against exact MaxSim over the same subset. Ours "
        + (f"encodes on {threads} threads (every core; " if threads else "(")
        + "in brackets: the same encoder on one thread); fastembed's per-token Python loop runs "
        "on one.",
    ]
    return lines


def markdown(result: dict[str, Any], cands: Sequence[int]) -> str:
    v = result["versions"]
    commit = result["commit"][:10] + (" + uncommitted changes" if result["dirty"] else "")
    g = result["goals"]
    lines = [
        "## MUVERA (multi-vector: FDE candidates + exact MaxSim re-rank)",
        "",
        f"`{result['command']}` on {result['date'][:10]} at {commit}: {v['cpu']} x {v['cpus']} "
        f"cores, numpy {v['numpy']}, faiss-cpu {v['faiss']}; sgemm {result['sgemm_gflops']:.0f} "
        "GFLOP/s (4096², 2 threads). R@10 = recall@10 against brute-force MaxSim top-10 on the "
        "same data; medians of interleaved repeats. Goals (issue 6): R@10 ≥ "
        f"{g['recall']} with ≤ {g['max_candidates']} candidates; ≥ {g['speedup_100k']:.0f}× "
        f"faster than brute-force MaxSim at 100k documents; FDE encoding ≥ "
        f"{g['encode_vs_fastembed']:.0f}× fastembed's.",
    ]
    if result.get("note"):
        lines += ["", str(result["note"])]
    real = result.get("real")
    if real:
        lines += [
            "",
            f"### Real token vectors: SciFact `minilm-tokens` ({real['docs']:,} docs, "
            f"{real['tokens']:,} tokens × {real['dim']}, {real['queries']} test queries), "
            "inner Flat",
            "",
            *grid_table(real, cands, with_ndcg=True),
            "",
            *carving_table(real["carving"], with_ndcg=True),
        ]
    syn = result.get("synthetic")
    if syn:
        lines += [
            "",
            f"### Synthetic clustered token sets: {syn['docs']:,} docs ({syn['tokens']:,} tokens "
            f"× {syn['dim']}), {syn['queries']} queries, inner Flat",
            *(["", str(syn["note"])] if syn.get("note") else []),
            "",
            *grid_table(syn, cands, with_ndcg=False),
            "",
            *carving_table(syn["carving"], with_ndcg=False),
        ]
    if result.get("scale"):
        lines += ["", *scale_table(result["scale"])]
        if result.get("scale_note"):
            lines += ["", str(result["scale_note"])]
    pqs = (((real or {}).get("pq"), "SciFact `minilm-tokens`"),)
    pqs += (((result.get("pq") or {}).get("synthetic"), "synthetic"),)
    for pq, label in pqs:
        if pq:
            lines += ["", *pq_table(label, pq, tuple(cands))]
    found = (result.get("fastembed"), (real or {}).get("fastembed"), result.get("fastembed_real"))
    sides = [s for s in found if s]
    if sides:
        lines += ["", *fastembed_table(sides)]
    lines += [
        "",
        "Raw figures: `bench/results/muvera.json`; findings: `index/MUVERA_NOTES.md`.",
    ]
    return "\n".join(lines)
