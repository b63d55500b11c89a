"""How close the exact MaxSim top-10 is to the rest: why the synthetic sets get harder at 100k.

For each query, the exact MaxSim scores at ranks 1, 10, 100 and 200 (brute force), reported as
relative gaps to the 10th score, and how many documents score within 1% / 2% of the 10th. A
candidate stage whose score error is larger than these gaps cannot tell the top-10 from the next
hundred documents, whatever the index.

    python -m bench.muvera_margins [--docs 10000,100000] [--queries 30] [--real 5183]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench.muvera_data import TokenSets, clustered, scifact_tokens
from index.maxsim import MaxSimReranker, TokenStore

DEPTH = 200


def margins(data: TokenSets) -> dict[str, Any]:
    """Mean relative gaps ``(s_r - s_10) / s_10`` and the share of near-ties, over queries."""
    store = TokenStore(data.dim)
    store.add(np.arange(data.n_docs, dtype=np.int64), data.doc_tokens, data.doc_offsets)
    s = MaxSimReranker(store).search(data.query_tokens, data.query_offsets, DEPTH).scores
    return margins_of(s, data.n_docs)


def margins_of(s: np.ndarray, n_docs: int) -> dict[str, Any]:
    """:func:`margins` from the exact top-``DEPTH`` scores ``s (nq, DEPTH)``, best first."""
    s10 = s[:, 9:10]
    rel = (s - s10) / np.abs(s10)
    return {
        "docs": n_docs,
        "queries": len(s),
        "gap_1": float(np.mean(rel[:, 0])),
        "gap_100": float(np.mean(-rel[:, 99])),
        "gap_200": float(np.mean(-rel[:, DEPTH - 1])),
        "within_1pct": float(np.mean((rel > -0.01).sum(axis=1))),
        "within_2pct": float(np.mean((rel > -0.02).sum(axis=1))),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.muvera_margins")
    p.add_argument("--docs", default="10000,100000", help="synthetic document counts")
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--real", type=int, default=5183, help="SciFact documents (0: skip)")
    p.add_argument("--real-queries", type=int, default=300)
    args = p.parse_args(argv)
    rows = []
    loaded = scifact_tokens(args.real) if args.real else None
    if loaded is not None:
        full = loaded.data
        qo = full.query_offsets[: min(args.real_queries, full.n_queries) + 1]
        real = TokenSets(full.doc_tokens, full.doc_offsets, full.query_tokens[: qo[-1]], qo)
        rows.append(("SciFact minilm-tokens", margins(real)))
    for n in (int(x) for x in args.docs.split(",") if x.strip()):
        # the scale section's data: seed 1, 128 dims (bench.muvera's defaults)
        rows.append((f"synthetic {n:,}", margins(clustered(1, n, args.queries, 128))))
    print(
        "| data | docs | queries | (s1-s10)/s10 | (s10-s100)/s10 | (s10-s200)/s10 "
        "| docs within 1% of s10 | within 2% |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['docs']:,} | {r['queries']} | {r['gap_1']:.3f} | {r['gap_100']:.3f} "
            f"| {r['gap_200']:.3f} | {r['within_1pct']:.1f} | {r['within_2pct']:.1f} |"
        )


if __name__ == "__main__":
    main()
