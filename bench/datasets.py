"""Real embedding sets for benchmarks, encoded once with the bundled encoder and cached.

``python -m bench.datasets`` encodes ``../shared/data/debian`` (57,417 package long descriptions
as documents, their synopses as queries) with ``minilm`` and writes
``~/.cache/innerspace/debian-minilm.npy`` (documents) and ``debian-minilm-queries.npy`` (queries),
row i of one matching row i of the other. Encoding takes minutes on 2 cores, so it is never done
at test time; benchmarks that find no cache skip the real set and say so.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "innerspace"
DEBIAN_DOCS = CACHE / "debian-minilm.npy"
DEBIAN_QUERIES = CACHE / "debian-minilm-queries.npy"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def debian_texts(root: Path = SHARED / "debian") -> tuple[list[str], list[str]]:
    """``(descriptions, synopses)`` of the Debian set, in file order."""
    docs, queries = [], []
    with gzip.open(root / "descriptions.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append(row["description"])
            queries.append(row["synopsis"])
    return docs, queries


def load_debian() -> tuple[np.ndarray, np.ndarray] | None:
    """Cached ``(documents (n, 384), queries (n, 384))`` float32, or None when not encoded yet."""
    if not (DEBIAN_DOCS.exists() and DEBIAN_QUERIES.exists()):
        return None
    return np.load(DEBIAN_DOCS), np.load(DEBIAN_QUERIES)


def _encode(texts: list[str], queries: bool, spec: str, batch: int = 256) -> np.ndarray:
    from encoders import encoder_factory

    enc = encoder_factory(spec)
    out = np.empty((len(texts), enc.dim), dtype=np.float32)
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        part = texts[i : i + batch]
        encoded = (enc.encode_queries if queries else enc.encode_documents)(part)
        out[i : i + len(part)] = encoded.vectors
        done = i + len(part)
        rate = done / (time.perf_counter() - t0)
        print(f"\r{done:,}/{len(texts):,} ({rate:.0f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def _save(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="encode only the first N rows")
    ap.add_argument("--spec", default="minilm", help="encoder spec, e.g. 'minilm(threads=8)'")
    ap.add_argument("--data", type=Path, default=SHARED / "debian", help="the debian folder")
    ap.add_argument("--out", type=Path, default=CACHE, help="where the .npy files go")
    args = ap.parse_args()
    docs, queries = debian_texts(args.data)
    if args.limit:
        docs, queries = docs[: args.limit], queries[: args.limit]
    out_docs, out_queries = args.out / DEBIAN_DOCS.name, args.out / DEBIAN_QUERIES.name
    _save(out_queries, _encode(queries, queries=True, spec=args.spec))
    _save(out_docs, _encode(docs, queries=False, spec=args.spec))
    print(f"wrote {out_docs} and {out_queries}")


if __name__ == "__main__":
    main()
