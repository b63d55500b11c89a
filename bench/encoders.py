"""Encoder benchmark: SciFact quality (full corpus) and encode throughput.

    python -m bench.encoders                  # both parts, default encoder
    python -m bench.encoders quality --spec 'onnx:/models/e5'
    python -m bench.encoders speed --out bench/results/encoders.json

Quality: all 5,183 SciFact abstracts (title + " " + text) and the 300 test claims, exact
inner-product search, nDCG@10 and recall@100 (published all-MiniLM-L6-v2: 0.645). Speed:
sentences/s for the first 640 SciFact train claims (short sentences, ~20 tokens) and the first
128 abstracts (truncated at 256 tokens), batch_size=64 (long texts run in smaller batches, see
``encoders.onnx.TOKENS_PER_RUN``), 1 and 2 onnxruntime threads, dense and token
output. Data comes from ``<repo>/../shared/data/scifact``; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name shadows the
# `encoders` package: put the repository root there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402

from encoders import Encoder, encoder_factory  # noqa: E402
from encoders.evaluation import load_beir, ndcg_at_k, recall_at_k, top_k  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def _dense(encoder: Encoder, texts: list[str], queries: bool) -> np.ndarray[Any, Any]:
    out = encoder.encode_queries(texts) if queries else encoder.encode_documents(texts)
    return out.dense


def quality(spec: str) -> dict[str, Any]:
    """Full SciFact test split: nDCG@10 and recall@100 with exact search."""
    data = load_beir(DATA)
    enc = encoder_factory(spec)
    t0 = time.perf_counter()
    docs = _dense(enc, data.doc_texts, queries=False)
    t_docs = time.perf_counter() - t0
    queries = _dense(enc, data.query_texts, queries=True)
    rows = top_k(queries, docs, 100)
    ranked = [[data.doc_ids[j] for j in r] for r in rows]
    labels = [data.qrels.get(q, {}) for q in data.query_ids]
    return {
        "spec": enc.spec,
        "fingerprint": enc.fingerprint,
        "docs": len(data.doc_ids),
        "queries": len(data.query_ids),
        "ndcg@10": round(ndcg_at_k(ranked, labels, 10), 4),
        "recall@100": round(recall_at_k(ranked, labels, 100), 4),
        "doc_encode_s": round(t_docs, 1),
    }


def _rate(spec: str, texts: list[str], repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` sentences/s, and mean tokens per text."""
    enc = encoder_factory(spec)
    enc.encode_documents(texts[:64])  # warm-up: first runs allocate the arena
    best, tokens = 0.0, 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = enc.encode_documents(texts)
        best = max(best, len(texts) / (time.perf_counter() - t0))
        tokens = float(np.mean(out.token_counts))
    return best, tokens


def speed(base: str, repeats: int) -> list[dict[str, Any]]:
    """Throughput at batch 64 for 1 and 2 threads, dense and token output."""
    train = load_beir(DATA, split="train")
    sets = {"sentences": train.query_texts[:640], "abstracts": train.doc_texts[:128]}
    rows = []
    for output, name in (("dense", base), ("tokens", f"{base}-tokens")):
        for threads in (1, 2):
            spec = f"{name}(threads={threads},batch_size=64)"
            for kind, texts in sets.items():
                rate, tokens = _rate(spec, texts, repeats)
                rows.append(
                    {"output": output, "threads": threads, "texts": kind, "n": len(texts),
                     "mean_tokens": round(tokens, 1), "texts_per_s": round(rate, 1)}
                )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", nargs="?", choices=["all", "quality", "speed"], default="all")
    parser.add_argument("--spec", default="minilm", help="encoder spec for the quality run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"SciFact not found at {DATA} (see shared/data/README.md)")
    result: dict[str, Any] = {}
    if args.part in ("all", "quality"):
        result["quality"] = quality(args.spec)
        q = result["quality"]
        print(f"SciFact {q['spec']}: nDCG@10 {q['ndcg@10']}, recall@100 {q['recall@100']}, "
              f"{q['docs']} docs encoded in {q['doc_encode_s']} s")  # fmt: skip
    if args.part in ("all", "speed"):
        result["speed"] = speed("minilm", args.repeats)
        print("| output | threads | texts | mean tokens | texts/s |\n|---|---|---|---|---|")
        for r in result["speed"]:
            print(f"| {r['output']} | {r['threads']} | {r['texts']} (n={r['n']}) "
                  f"| {r['mean_tokens']} | {r['texts_per_s']} |")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
