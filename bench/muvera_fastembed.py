"""FDE encoding side by side with fastembed's ``Muvera`` (an optional, bench-only comparison).

fastembed is not a project dependency: the section runs when ``fastembed.postprocess`` imports
(e.g. in a virtual environment with ``--system-site-packages`` and ``pip install fastembed``) and
is skipped otherwise. Its models are never used: both sides encode the same token vectors.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import numpy as np

from bench.muvera_data import (
    TokenSets,
    clustered,
    exact_baseline,
    interleaved,
    recall_at,
    scifact_tokens,
)
from bench.report import write_json
from index.fde import draw_matrices, encode_documents, encode_queries
from index.fde_kernel import THREADS
from index.muvera import PRESETS


def fastembed_section(
    args: argparse.Namespace, data: TokenSets, label: str
) -> dict[str, Any] | None:
    """Ours vs fastembed's Muvera at the default parameters on the same token vectors: encoding
    throughput, and recall@10 of each one's FDE candidates (top 10/100/200 by FDE product)."""
    try:
        muvera = importlib.import_module("fastembed.postprocess").Muvera
    except ImportError:
        print("(fastembed not importable: side-by-side skipped; it needs pip install fastembed)")
        return None
    p = PRESETS["default"]
    data = data.head(min(data.n_docs, args.fastembed_docs))
    n, docs, queries = data.n_docs, data.docs(), data.queries()
    theirs = muvera(data.dim, k_sim=p.k_sim, dim_proj=p.d_proj, r_reps=p.r_reps, random_seed=p.seed)
    ours = draw_matrices(data.dim, p.k_sim, p.d_proj, p.r_reps, p.seed)
    dt_, do, qt, qo = data.doc_tokens, data.doc_offsets, data.query_tokens, data.query_offsets
    times, last = interleaved(
        {
            "ours_docs": lambda: encode_documents(ours, dt_, do),
            "ours1_docs": lambda: encode_documents(ours, dt_, do, threads=1),
            "fastembed_docs": lambda: np.stack([theirs.process_document(d) for d in docs]),
            "ours_queries": lambda: encode_queries(ours, qt, qo),
            "ours1_queries": lambda: encode_queries(ours, qt, qo, threads=1),
            "fastembed_queries": lambda: np.stack([theirs.process_query(q) for q in queries]),
        },
        max(2, args.repeats // 3),
    )
    truth, _ = exact_baseline(data, 1)
    out: dict[str, Any] = {
        "data": label,
        "docs": n,
        "queries": data.n_queries,
        "params": "k_sim=5,d_proj=16,r_reps=20",
        "fastembed_version": _version("fastembed"),
        "threads": THREADS,
    }
    for name in ("ours", "fastembed"):
        fq = np.asarray(last[f"{name}_queries"], dtype=np.float32)
        fd = np.asarray(last[f"{name}_docs"], dtype=np.float32)
        order = np.argsort(-(fq @ fd.T), axis=1, kind="stable")
        out[name] = {
            "docs_per_s": n / times[f"{name}_docs"],
            "queries_per_s": data.n_queries / times[f"{name}_queries"],
            **{f"candidate_recall_c{c}": recall_at(order[:, :c], truth) for c in (10, 100, 200)},
        }
    o, f = out["ours"], out["fastembed"]
    out["encode_speedup_docs"] = o["docs_per_s"] / f["docs_per_s"]
    out["encode_speedup_queries"] = o["queries_per_s"] / f["queries_per_s"]
    # The same encoder on one thread (the default uses THREADS; fastembed's loop uses one).
    o["docs_per_s_1thread"] = n / times["ours1_docs"]
    o["queries_per_s_1thread"] = data.n_queries / times["ours1_queries"]
    out["encode_speedup_docs_1thread"] = o["docs_per_s_1thread"] / f["docs_per_s"]
    out["encode_speedup_queries_1thread"] = o["queries_per_s_1thread"] / f["queries_per_s"]
    print(
        f"  fastembed ({label}): ours {o['docs_per_s']:.0f} docs/s ({THREADS} threads; "
        f"{o['docs_per_s_1thread']:.0f} on 1) vs {f['docs_per_s']:.0f} "
        f"({out['encode_speedup_docs']:.1f}x; {out['encode_speedup_docs_1thread']:.1f}x); "
        f"queries {out['encode_speedup_queries']:.1f}x "
        f"({out['encode_speedup_queries_1thread']:.1f}x on 1); candidate recall@100 "
        f"{o['candidate_recall_c100']:.3f} vs {f['candidate_recall_c100']:.3f}",
        flush=True,
    )
    return out


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def encode_only(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """``--encode-only``: the fastembed side by side alone (encoding throughput and candidate
    recall), on the synthetic sets and on SciFact, without any grid."""
    syn = clustered(args.seed, args.fastembed_docs, args.queries, args.dim)
    result["fastembed"] = fastembed_section(args, syn, f"synthetic d={args.dim}")
    loaded = scifact_tokens(args.real) if args.real else None
    if loaded is not None:
        full = loaded.data
        qo = full.query_offsets[: min(args.real_queries, full.n_queries) + 1]
        data = TokenSets(full.doc_tokens, full.doc_offsets, full.query_tokens[: qo[-1]], qo)
        result["fastembed_real"] = fastembed_section(args, data, "SciFact minilm-tokens")
    write_json(args.out, result)
    print(f"wrote {args.out}")
