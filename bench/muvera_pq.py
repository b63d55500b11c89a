"""MUVERA over a product-quantised inner index (``PQ``, :mod:`index.muvera_pq`) vs ``Flat``.

PQ scores only choose the candidates; the re-rank is exact MaxSim, so the figure that matters is
R@10 after the re-rank at each candidate count, next to the same FDEs in a ``Flat`` index, with
the bytes each inner index holds per document and its build (encode + train + add) time.
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import replace
from typing import Any

from bench.muvera_data import (
    TokenSets,
    build,
    bytes_per_doc,
    clustered,
    exact_baseline,
    prefix_rerank,
    recall_at,
)
from index.muvera import PRESETS

#: (preset, inner spec) pairs: ``PQ`` is 8 FDE dims per 1-byte code (32x smaller).
CONFIGS = (
    ("default", "Flat"),
    ("default", "PQ"),
    ("wide", "Flat"),
    ("wide", "PQ"),
    ("compact", "Flat"),
    ("compact", "PQ"),
)


def pq_section(
    args: argparse.Namespace, data: TokenSets, truth: Any, cands: tuple[int, ...], fill: str
) -> dict[str, Any]:
    """R@10 after re-rank at ``cands`` for each of :data:`CONFIGS` (fill ``fill``)."""
    queries = data.queries()
    rows = []
    configs = CONFIGS[:2] if args.tiny else CONFIGS
    for preset, inner in configs:
        params = replace(PRESETS[preset], fill=fill)
        t = time.perf_counter()
        index = build(data, params, inner)
        build_s = time.perf_counter() - t
        fde_ids = index.inner.search(index.encode_queries(queries), max(cands)).ids
        found = prefix_rerank(index, queries, fde_ids, cands)
        row: dict[str, Any] = {
            "config": f"{preset},fill={fill}",
            "inner": index.inner.spec,
            "fde_dim": index.fde_dim,
            "build_s": build_s,
            "bytes_per_doc": bytes_per_doc(index),
        }
        for c in cands:
            row[f"c{c}"] = {
                "recall": recall_at(found[c], truth),
                "candidate_recall": recall_at(fde_ids[:, :c], truth),
            }
        rows.append(row)
        print(
            f"  pq: {preset:>8} {inner:>12} {row['bytes_per_doc']['fde_index_held']:>8,.0f} B/doc "
            + "  ".join(f"c{c} {row[f'c{c}']['recall']:.3f}" for c in cands)
            + f"  build {build_s:.0f} s",
            flush=True,
        )
        del index
        gc.collect()
    return {"docs": data.n_docs, "queries": data.n_queries, "fill": fill, "rows": rows}


def pq_synthetic(args: argparse.Namespace, cands: tuple[int, ...]) -> dict[str, Any]:
    """:func:`pq_section` on the synthetic sets (``--docs``) at the default preset's fill (the
    SciFact rows are computed inside the real section, on its ground truth)."""
    syn = clustered(args.seed, args.docs, args.queries, args.dim)
    print(f"pq: synthetic {syn.n_docs} docs", flush=True)
    fill = str(PRESETS["default"].fill)
    return {"synthetic": pq_section(args, syn, exact_baseline(syn, 1)[0], cands, fill)}


def pq_table(label: str, section: dict[str, Any], cands: tuple[int, ...]) -> list[str]:
    head = "| preset | inner | FDE index bytes/doc | build s |"
    rule = "|---|---|---:|---:|"
    for c in cands:
        head += f" c={c} R@10 (FDE top-c) |"
        rule += "---:|"
    lines = [
        f"### Inner PQ vs Flat: {label} ({section['docs']:,} docs, {section['queries']} "
        f"queries, fill={section['fill']})",
        "",
        head,
        rule,
    ]
    for row in section["rows"]:
        line = (
            f"| {row['config'].split(',')[0]} | `{row['inner']}` "
            f"| {row['bytes_per_doc']['fde_index_held']:,.0f} | {row['build_s']:.0f} |"
        )
        for c in cands:
            r = row[f"c{c}"]
            line += f" {r['recall']:.3f} ({r['candidate_recall']:.3f}) |"
        lines.append(line)
    lines += [
        "",
        "R@10 after the exact MaxSim re-rank of the inner index's top-c (in brackets: the share "
        "of the exact top-10 among those c candidates). `PQ` = `m` of FDE dim / 8 one-byte "
        "codes (32× smaller than float32); IVF-PQ with one list, trained on a 4,096-document "
        "sample of the first 10k-document add; build = encode + train + add.",
    ]
    return lines
