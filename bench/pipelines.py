"""Query pipelines on SciFact, through the service: quality per pipeline and the route's overhead.

    python -m bench.pipelines                    # 300 test queries; JSON + BENCHMARKS.md section
    python -m bench.pipelines --limit 40         # a quick look: JSON only, the section printed
    python -m bench.pipelines --head NAME ...    # Hypencoder heads under --hypencoder-dir

The service runs in-process (``create_app`` + ``TestClient``): one collection of the 5,183
SciFact documents with their cached ``minilm`` vectors and payload ``{"text": title + " " +
text}``, queried over ``POST /query`` with the cached dense query vector (``vector``) and the
claim (``text``), each sent only when the pipeline reads it (the service refuses text that no
stage reads). nDCG@10 is computed per query with the linear-gain nDCG of
:mod:`bench.hypencoder`; each pipeline is compared with dense exact by a paired bootstrap, and
``POST /evaluate`` must return the same means. Hypencoder heads are trained on SciFact train
only (``python -m bench.hypencoder train``) and never shipped: SciFact is CC BY-NC. The markdown
is :mod:`bench.pipelines_report`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.config import Settings
from app.pipeline import Context, parse
from app.pipeline.fusion import RRF_CONSTANT, rrf
from app.pipeline.generators import exact_top
from app.pipeline.lexical import LexicalStage
from app.search import Query
from bench.hypencoder import CACHE, HEAD_DIR, SCIFACT, bootstrap, load_docs, load_split
from bench.hypencoder import RESULTS as HYPENCODER_RESULTS
from bench.pipelines_report import head_info, markdown
from bench.report import ROOT, dirty, git_commit, publish
from encoders.evaluation import ndcg_at_k, recall_at_k

RESULTS = ROOT / "bench" / "results" / "pipelines.json"
SECTION = "pipelines"
COLLECTION = "scifact"
BASELINE = "dense exact"
K = 10


@dataclass
class Data:
    """Documents (id, vector, text) and labelled queries (id, dense vector, text, grades)."""

    doc_ids: list[str]
    doc_vectors: np.ndarray
    doc_texts: list[str]
    query_ids: list[str]
    query_vectors: np.ndarray
    query_texts: list[str]
    qrels: list[dict[str, int]]


def scifact(limit: int | None = None) -> Data:
    """SciFact test queries with labels, and the corpus, with cached MiniLM vectors."""
    beir, split = load_split("test")
    text_of = dict(zip(beir.query_ids, beir.query_texts, strict=True))
    n = len(split.ids) if limit is None else min(limit, len(split.ids))
    return Data(
        beir.doc_ids,
        load_docs(beir),
        beir.doc_texts,
        split.ids[:n],
        split.dense[:n],
        [text_of[q] for q in split.ids[:n]],
        split.qrels[:n],
    )


def pipelines(heads: list[str]) -> dict[str, list[Any]]:
    """The pipelines compared, by row label; two Hypencoder rows per head."""
    dense, lexical = {"exact": {"k": 100}}, {"lexical": {"k": 100}}

    def weighted(w: list[float]) -> list[Any]:
        return [{"weighted": {"of": [dense, lexical], "weights": w, "normalize": "minmax", "k": K}}]

    out: dict[str, list[Any]] = {
        BASELINE: [{"exact": {"k": K}}],
        "lexical (BM25)": [{"lexical": {"k": K}}],
        "hybrid RRF": [{"rrf": {"of": [dense, lexical], "k": K}}],
    }
    for h in heads:
        out[f"dense + Hypencoder ({h})"] = [dense, {"hypencoder": {"head": h, "k": K}}]
        out[f"hybrid RRF + Hypencoder ({h})"] = [
            {"rrf": {"of": [dense, lexical], "k": 100}},
            {"hypencoder": {"head": h, "k": K}},
        ]
    out["weighted minmax 0.5/0.5"] = weighted([0.5, 0.5])
    out["weighted minmax 0.7/0.3"] = weighted([0.7, 0.3])
    return out


def default_heads(root: Path) -> list[str]:
    """``bench.hypencoder``'s default head and the head its published figures used, those of
    them present under ``root``."""
    names = [HEAD_DIR.name]
    if HYPENCODER_RESULTS.exists():
        names.append(Path(json.loads(HYPENCODER_RESULTS.read_text())["head"]).name)
    return [n for n in dict.fromkeys(names) if (root / n / "config.json").is_file()]


@contextmanager
def service(data_dir: Path, hypencoder_dir: Path | None) -> Iterator[TestClient]:
    """The whole app in-process, ready (every collection loaded)."""
    settings = Settings(
        data_dir=data_dir, hypencoder_dir=hypencoder_dir, auth="off", log_level="warning"
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("service did not become ready")
            time.sleep(0.02)
        yield client


def call(client: TestClient, method: str, path: str, body: Any = None) -> Any:
    r = client.request(method, path, json=body)
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
    return r.json() if r.content else None


def load(client: TestClient, data: Data, name: str = COLLECTION, batch: int = 500) -> None:
    """Create ``name`` with every document, then seal them into one segment."""
    dim = data.doc_vectors.shape[1]
    call(client, "POST", "/collections", {"name": name, "dim": dim, "metric": "ip"})
    for i in range(0, len(data.doc_ids), batch):
        points = [
            {"id": d, "vector": v.tolist(), "payload": {"text": t}}
            for d, v, t in zip(
                data.doc_ids[i : i + batch],
                data.doc_vectors[i : i + batch],
                data.doc_texts[i : i + batch],
                strict=True,
            )
        ]
        call(client, "PUT", f"/collections/{name}/points", {"points": points})
    call(client, "POST", f"/collections/{name}/flush")


def inputs(stages: list[Any], data: Data, i: int) -> dict[str, Any]:
    """Query ``i``'s vector and text, each only if some stage reads it."""
    needs = parse(stages, 10_000).needs
    out: dict[str, Any] = {}
    if needs - {"text"}:
        out["vector"] = data.query_vectors[i].tolist()
    if "text" in needs:
        out["text"] = data.query_texts[i]
    return out


def ranked(
    client: TestClient, stages: list[Any], data: Data, name: str = COLLECTION
) -> tuple[list[list[str]], list[float]]:
    """Each query's ranked point ids, and the service's ``took_ms`` per query."""
    lists, took = [], []
    for i in range(len(data.query_ids)):
        body = {"stages": stages, "with_payload": False, **inputs(stages, data, i)}
        r = call(client, "POST", f"/collections/{name}/query", body)
        lists.append([str(h["id"]) for h in r["hits"]])
        took.append(r["took_ms"])
    return lists, took


def per_query_ndcg(lists: list[list[str]], qrels: list[dict[str, int]], k: int = K) -> np.ndarray:
    """nDCG@k of each query alone (``bench.hypencoder``'s linear-gain nDCG)."""
    return np.array([ndcg_at_k([r], [q], k) for r, q in zip(lists, qrels, strict=True)])


def evaluate_route(
    client: TestClient, stages: list[Any], data: Data, name: str = COLLECTION
) -> float:
    """Mean nDCG@10 of ``stages`` by ``POST /evaluate``."""
    queries = [{"id": q, **inputs(stages, data, i)} for i, q in enumerate(data.query_ids)]
    qrels = {
        q: {d: float(g) for d, g in r.items()}
        for q, r in zip(data.query_ids, data.qrels, strict=True)
    }
    body = {"queries": queries, "qrels": qrels, "pipelines": [stages], "k": K}
    return float(call(client, "POST", f"/collections/{name}/evaluate", body)["results"][0]["ndcg"])


def quality(
    client: TestClient, data: Data, pipes: dict[str, list[Any]], check: set[str]
) -> dict[str, Any]:
    """Per pipeline: nDCG@10, its paired difference to dense exact with a 95% CI, wins/ties/
    losses, median server time; for the names in ``check``, ``POST /evaluate``'s mean too."""
    rows: dict[str, Any] = {}
    per_query: dict[str, np.ndarray] = {}
    for label, stages in pipes.items():
        t = time.perf_counter()
        lists, took = ranked(client, stages, data)
        scores = per_query[label] = per_query_ndcg(lists, data.qrels)
        row: dict[str, Any] = {
            "stages": stages,
            "ndcg10": float(scores.mean()),
            "median_took_ms": statistics.median(took),
            "seconds": time.perf_counter() - t,
        }
        if label in check:
            row["evaluate_ndcg10"] = evaluate_route(client, stages, data)
        if label != BASELINE:
            diff = scores - per_query[BASELINE]
            lo, hi = bootstrap(diff)
            row["diff"] = float(diff.mean())
            row["diff_ci95"] = [lo, hi]
            row["wins_ties_losses"] = [int((diff > 0).sum()), int((diff == 0).sum())]
            row["wins_ties_losses"].append(int((diff < 0).sum()))
        rows[label] = row
        print(f"{label}: nDCG@10 {row['ndcg10']:.4f} ({row['seconds']:.0f} s)", flush=True)
    return rows


def candidate_recall(client: TestClient, data: Data) -> dict[str, float]:
    """Recall@100 of the first stages the Hypencoder re-ranks: the ceiling of any re-rank."""
    dense, lexical = {"exact": {"k": 100}}, {"lexical": {"k": 100}}
    firsts: dict[str, list[Any]] = {
        "exact top-100": [dense],
        "lexical top-100": [lexical],
        "RRF top-100": [{"rrf": {"of": [dense, lexical], "k": 100}}],
    }
    return {n: recall_at_k(ranked(client, s, data)[0], data.qrels, 100) for n, s in firsts.items()}


def overhead(client: TestClient, data: Data, rounds: int, n: int) -> dict[str, Any]:
    """Median ms of ``/query`` against the same work called directly, interleaved.

    Per query and round, in an order rotated each time: ``/query`` with dense exact top-10 and
    ``/search`` with the same vector (both without payloads), ``SearchService.search`` (what
    ``/search`` runs) and :func:`~app.pipeline.generators.exact_top` (what the exact stage
    runs); ``/query`` with hybrid RRF, and its three steps called directly (exact top-100,
    BM25 top-100, the fusion), summed per call; ``GET /healthz`` as the transport's floor.
    """
    svc = client.app.state.service  # type: ignore[attr-defined]
    col, max_k = svc.collection(COLLECTION), svc.settings.max_k
    exact, hybrid = pipelines([])[BASELINE], pipelines([])["hybrid RRF"]
    lexical = LexicalStage("lexical", {"k": 100}, max_k)
    path = f"/collections/{COLLECTION}"
    n = min(n, len(data.query_ids))
    vecs = [np.ascontiguousarray(v, dtype=np.float32) for v in data.query_vectors[:n]]
    out: dict[str, list[float]] = defaultdict(list)

    def ctx(i: int) -> Context:
        return Context(col, vecs[i], None, None, max_k, text=data.query_texts[i])

    def timed(name: str, f: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        got = f()
        out[name].append(1000 * (time.perf_counter() - t))
        return got

    def route(name: str, endpoint: str, body: dict[str, Any]) -> None:
        got = timed(name, lambda: call(client, "POST", f"{path}/{endpoint}", body))
        out[f"{name} took_ms"].append(got["took_ms"])

    def query(name: str, stages: list[Any], i: int) -> None:
        route(name, "query", {"stages": stages, "with_payload": False, **inputs(stages, data, i)})

    def direct_hybrid(i: int) -> None:
        c = ctx(i)
        t0 = time.perf_counter()
        dense = timed("exact top-100", lambda: exact_top(c, 100))
        words = timed("lexical top-100", lambda: lexical.run(c, [])[0])
        timed("rrf fuse", lambda: rrf([dense, words], RRF_CONSTANT, K))
        out["hybrid stages direct (sum)"].append(1000 * (time.perf_counter() - t0))

    def search(i: int) -> None:
        route("/search", "search", {"vector": vecs[i].tolist(), "k": K, "with_payload": False})

    def service_search(i: int) -> None:
        q = Query(vector=vecs[i].tolist(), k=K, with_payload=False)
        timed("service.search", lambda: svc.search(COLLECTION, [q]))

    variants: list[Callable[[int], None]] = [
        lambda i: query("/query exact", exact, i),
        search,
        service_search,
        lambda i: timed("exact_top", lambda: exact_top(ctx(i), K)),
        lambda i: query("/query hybrid", hybrid, i),
        direct_hybrid,
        lambda i: timed("GET /healthz", lambda: client.get("/healthz")),
    ]
    for i in range(min(n, 5)):  # warm-up: caches, the BM25 index, the thread pools
        for v in variants:
            v(i)
    out.clear()
    for r in range(rounds):
        for i in range(n):
            for j in range(len(variants)):
                variants[(i + r + j) % len(variants)](i)
    med = {name: statistics.median(v) for name, v in out.items()}
    direct = med["hybrid stages direct (sum)"]
    ratios = {
        "/query exact / exact_top": med["/query exact"] / med["exact_top"],
        "/query exact / /search": med["/query exact"] / med["/search"],
        "/search / service.search": med["/search"] / med["service.search"],
        "/query exact took_ms / exact_top": med["/query exact took_ms"] / med["exact_top"],
        "/query hybrid / stages direct": med["/query hybrid"] / direct,
        "/query hybrid took_ms / stages direct": med["/query hybrid took_ms"] / direct,
    }
    return {"queries": n, "rounds": rounds, "median_ms": med, "ratios": ratios}


def run(
    data: Data,
    data_dir: Path,
    hypencoder_dir: Path | None,
    heads: list[str],
    rounds: int = 3,
    latency_queries: int = 100,
) -> dict[str, Any]:
    """The whole benchmark on ``data``; a JSON-able result."""
    pipes = pipelines(heads)
    check = {n for n, s in pipes.items() if "hypencoder" not in json.dumps(s)}
    with service(data_dir, hypencoder_dir) as client:
        t = time.perf_counter()
        load(client, data)
        load_s = time.perf_counter() - t
        rows = quality(client, data, pipes, check)
        recall = candidate_recall(client, data)
        lat = overhead(client, data, rounds, latency_queries)
    return {
        "queries": len(data.query_ids),
        "docs": len(data.doc_ids),
        "k": K,
        "heads": {h: head_info(hypencoder_dir, h) for h in heads} if hypencoder_dir else {},
        "load_s": load_s,
        "pipelines": rows,
        "candidate_recall100": recall,
        "overhead": lat,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.machine import measure

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--limit", type=int, help="first N test queries only (no BENCHMARKS.md)")
    p.add_argument("--hypencoder-dir", type=Path, default=CACHE / "hypencoder")
    p.add_argument(
        "--head",
        action="append",
        help="a head under --hypencoder-dir (repeatable); default: bench.hypencoder's default "
        "head and the one bench/results/hypencoder.json reports on, those present",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the timings")
    p.add_argument("--latency-queries", type=int, default=100)
    p.add_argument("--out", type=Path, help=f"default {RESULTS} (with --limit: a temp file)")
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    if not (SCIFACT / "corpus.jsonl.gz").exists():
        raise SystemExit(f"SciFact not found under {SCIFACT} (see ../shared/data/README.md)")
    heads = args.head if args.head is not None else default_heads(args.hypencoder_dir)
    data = scifact(args.limit)
    with tempfile.TemporaryDirectory(prefix="innerspace-pipelines-") as tmp:
        result = run(data, Path(tmp), args.hypencoder_dir, heads, args.rounds, args.latency_queries)
    result.update(
        dataset="SciFact test",
        command="python -m bench.pipelines" + (f" --limit {args.limit}" if args.limit else ""),
        commit=git_commit(),
        dirty=dirty(),
        machine=measure(repeats=1, read_mb=256, gemm_size=2048),
        loadavg_1_5_15=list(os.getloadavg()),
    )
    out = args.out or (Path(tempfile.gettempdir()) / RESULTS.name if args.limit else RESULTS)
    publish(SECTION, result, markdown(result), out, None if args.limit else args.markdown)
    return result


if __name__ == "__main__":
    main()
