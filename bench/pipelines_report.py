"""The ``BENCHMARKS.md`` section of :mod:`bench.pipelines`, from its JSON result, and the
description of the Hypencoder heads it records.

python -m bench.pipelines_report       # re-render the section from bench/results/pipelines.json
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from bench.report import ROOT, update_section

__all__ = ["head_info", "markdown"]


def head_info(root: Path, name: str) -> dict[str, Any]:
    """How head ``name`` was trained, from its ``config.json`` (the weights are not read)."""
    c = json.loads((root / name / "config.json").read_text())
    info = c.get("info", {})
    val = info.get("val_ndcg10") or [float("nan")]
    return {
        "n_hidden": c["config"]["n_hidden"],
        "encoder": c["config"]["encoder"],
        "epochs": info.get("train", {}).get("epochs"),
        "best_epoch": info.get("best_epoch"),
        "train_queries": info.get("train_queries"),
        "val_queries": info.get("val_queries"),
        "val_ndcg10_best": max(val),
        "val_flat_ndcg10": info.get("val_flat_ndcg10"),
        "data": info.get("data"),
    }


def _fill(text: str) -> str:
    return textwrap.fill(text, 100, break_long_words=False, break_on_hyphens=False)


def _quality_rows(r: dict[str, Any]) -> str:
    from bench.pipelines import pipelines  # imports this module

    # JSON keys come back sorted: show the rows in the order the benchmark defines them.
    order = [n for n in pipelines(list(r["heads"])) if n in r["pipelines"]]
    rows = []
    for label in order + sorted(set(r["pipelines"]) - set(order)):
        p = r["pipelines"][label]
        if "diff" in p:
            lo, hi = p["diff_ci95"]
            w, t, ls = p["wins_ties_losses"]
            diff = f"{p['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {w} / {t} / {ls}"
        else:
            diff = "— | —"
        rows.append(f"| {label} | {p['ndcg10']:.4f} | {diff} | {p['median_took_ms']:.1f} |")
    return "\n".join(rows)


def _cross_check(r: dict[str, Any]) -> str:
    checked = {n: p for n, p in r["pipelines"].items() if "evaluate_ndcg10" in p}
    if not checked:
        return "No pipeline was cross-checked against `POST /evaluate`."
    worst = max(abs(p["evaluate_ndcg10"] - p["ndcg10"]) for p in checked.values())
    return (
        f"`POST /collections/{{name}}/evaluate` returns the same mean nDCG@10 for the "
        f"{len(checked)} pipelines without a Hypencoder stage (largest difference {worst:.1e})."
    )


def _overhead(r: dict[str, Any]) -> str:
    o = r["overhead"]
    m, q = o["median_ms"], o["ratios"]
    rows = [
        ("`POST /query` `[{exact: {k: 10}}]`", m["/query exact"], m["/query exact took_ms"]),
        ("`POST /search` same vector, k 10", m["/search"], m["/search took_ms"]),
        ("`SearchService.search` (what `/search` runs)", m["service.search"], None),
        ("`exact_top(ctx, 10)` (what the exact stage runs)", m["exact_top"], None),
        ("`POST /query` hybrid RRF", m["/query hybrid"], m["/query hybrid took_ms"]),
        ("its stages called directly, summed", m["hybrid stages direct (sum)"], None),
        ("… exact top-100", m["exact top-100"], None),
        ("… BM25 top-100", m["lexical top-100"], None),
        ("… RRF fusion", m["rrf fuse"], None),
        ("`GET /healthz` (the transport alone)", m["GET /healthz"], None),
    ]
    table = "\n".join(f"| {n} | {v:.3f} | {'' if t is None else f'{t:.3f}'} |" for n, v, t in rows)
    return f"""| call | median ms (client) | median `took_ms` (server) |
|---|---|---|
{table}

Ratios of medians, dense exact: `/query` / `exact_top` {q["/query exact / exact_top"]:.2f}×,
`/query` / `/search` {q["/query exact / /search"]:.2f}×, `/search` / `SearchService.search`
{q["/search / service.search"]:.2f}×, `/query`'s `took_ms` / `exact_top`
{q["/query exact took_ms / exact_top"]:.2f}×. Hybrid RRF: `/query` / stages direct
{q["/query hybrid / stages direct"]:.2f}×, its `took_ms` / stages direct
{q["/query hybrid took_ms / stages direct"]:.2f}×. {o["queries"]} queries × {o["rounds"]}
rounds, all calls of one query back to back in an order rotated per call; no payloads."""


def _heads(r: dict[str, Any]) -> str:
    if not r["heads"]:
        return "No Hypencoder head was found, so there are no Hypencoder rows."
    described = [
        f"`{name}` ({h['n_hidden']} hidden layer{'s' * (h['n_hidden'] != 1)}, {h['epochs']} "
        f"epochs, best held-out "
        f"nDCG@10 {h['val_ndcg10_best']:.3f} against flat {h['val_flat_ndcg10']:.3f})"
        for name, h in r["heads"].items()
    ]
    return (
        f"Hypencoder heads: {'; '.join(described)}, each trained on SciFact **train** only "
        "(`python -m bench.hypencoder train`, the epoch picked on held-out train queries). The "
        "stage encodes the claim with the head's own token encoder (`minilm-tokens`), so its "
        "`took_ms` includes that encoding and the q-net build, which the latency table of the "
        "Hypencoder section leaves out (encoding) or times single-threaded (q-net)."
    )


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    rec = ", ".join(f"{n} {v:.4f}" for n, v in r["candidate_recall100"].items())
    notes = (
        "RRF and weighted fuse `exact` top-100 with `lexical` (BM25) top-100; the weights were "
        "fixed before the run, not tuned on test. Hypencoder rows re-rank the top-100 of their "
        f"first stage; recall@100 of those first stages (the ceiling of any re-rank): {rec}. "
        f"{_heads(r)} {_cross_check(r)}"
    )
    return f"""## Query pipelines on SciFact

`{r["command"]}` — the service in-process (`create_app` + `TestClient`) with one collection
of the {r["docs"]} SciFact documents (cached `minilm` vectors, payload `text` = title + " " +
text, sealed into one Flat segment). Each of the {r["queries"]} labelled test queries goes to
`POST /collections/{{name}}/query` with its cached `minilm` vector and the claim as `text`,
each only to pipelines that read it. nDCG@10 per query (linear gain, as `bench.hypencoder`);
Δ = mean per-query difference to dense exact, with a 95% paired-bootstrap interval; better /
equal / worse count queries; `took_ms` is the service's own time per query.

| pipeline | nDCG@10 | Δ vs dense exact [95% CI] | better / equal / worse | median `took_ms` |
|---|---|---|---|---|
{_quality_rows(r)}

{_fill(notes)}

Pipeline overhead, same process, side by side:

{_overhead(r)}

Client times include `TestClient`'s in-process transport (a thread hop into the ASGI app,
another into the route's thread pool), not a socket. Machine: sgemm
{m["sgemm_2t"] / 1e9:.0f} GFLOP/s (2 threads), read {m["read_bw_1t"] / 1e9:.1f} GB/s
(1 thread); shared 2-core box, load average {r["loadavg_1_5_15"][1]:.1f} during the run:
compare times within the table, not with other sections. Raw figures:
`bench/results/pipelines.json`."""


def main() -> None:
    path = ROOT / "bench" / "results" / "pipelines.json"
    update_section("pipelines", markdown(json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main()
