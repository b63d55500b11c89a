"""MUVERA at ~113k real documents: the Debian set as ``minilm-tokens`` token sets.

Every Debian long description and every synopsis except ``nq`` seeded held-out synopses is a
document; the held-out synopses are the queries (the split of ``bench.binary_contenders.debian``:
``np.random.default_rng(seed).choice(57417, nq, replace=False)``, seed 0, 1,000 queries, so
57,417 + 56,417 = 113,834 documents). Both texts are encoded by the SciFact token encoder
(``ENCODER``) once and cached as float16 in ``~/.cache/innerspace/debian-minilm-tokens.npz``
(written atomically), in file order; the split is made at load time.

``python -m bench.muvera_debian --encode`` fills the cache (about 16 minutes on 2 cores);
``python -m bench.muvera_debian`` measures (see :mod:`bench.muvera_debian_run`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import SHARED, debian_texts
from bench.machine import versions
from bench.muvera_data import CACHE, ENCODER, TokenSets
from bench.muvera_debian_run import CONFIGS, run, table, write_block
from bench.muvera_margins import DEPTH
from bench.muvera_report import GOALS
from bench.report import BENCHMARKS, dirty, git_commit, write_json

RESULTS = Path(__file__).parent / "results"

TOKENS = "debian-minilm-tokens.npz"
KEYS = ("desc_tokens", "desc_offsets", "syn_tokens", "syn_offsets")


def _encode(texts: list[str], what: str, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens float16, offsets int64)`` of ``texts``, ``chunk`` texts per encoder call."""
    from encoders.registry import encoder_factory

    enc = encoder_factory(ENCODER)
    parts: list[np.ndarray] = []
    sizes = np.zeros(len(texts), dtype=np.int64)
    t0 = time.perf_counter()
    for a in range(0, len(texts), chunk):
        vecs = enc.encode_documents(texts[a : a + chunk]).vectors
        for i, v in enumerate(vecs):
            sizes[a + i] = len(v)
        parts.append(np.concatenate(vecs).astype(np.float16))
        done = min(a + chunk, len(texts))
        rate = done / (time.perf_counter() - t0)
        eta = (len(texts) - done) / rate
        print(f"  {what} {done:,}/{len(texts):,} ({rate:.0f}/s, ~{eta:.0f} s left)", flush=True)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return np.concatenate(parts), offsets


def encode(root: Path = SHARED / "debian", cache: Path = CACHE) -> Path:
    """Encode every description and synopsis (file order) into the float16 cache; returns it."""
    path = cache / TOKENS
    if path.exists():
        return path
    descriptions, synopses = debian_texts(root)
    s_t, s_o = _encode(synopses, "synopses")
    d_t, d_o = _encode(descriptions, "descriptions")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, desc_tokens=d_t, desc_offsets=d_o, syn_tokens=s_t, syn_offsets=s_o)
    os.replace(tmp, path)
    return path


def split(
    desc: tuple[np.ndarray, np.ndarray],
    syn: tuple[np.ndarray, np.ndarray],
    nq: int,
    seed: int,
) -> TokenSets:
    """Documents: every description, then every synopsis not held out; queries: ``nq`` seeded
    held-out synopses (sorted by row). Tokens stay in the arrays' dtype."""
    (d_t, d_o), (s_t, s_o) = desc, syn
    n = len(s_o) - 1
    pick = np.sort(np.random.default_rng(seed).choice(n, nq, replace=False))
    rest = np.ones(n, dtype=bool)
    rest[pick] = False

    def gather(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes = s_o[rows + 1] - s_o[rows]
        idx = np.concatenate([np.arange(s_o[r], s_o[r + 1]) for r in rows])
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return s_t[idx], offsets

    r_t, r_o = gather(np.flatnonzero(rest))
    q_t, q_o = gather(pick)
    doc_tokens = np.concatenate([d_t, r_t])
    doc_offsets = np.concatenate([d_o, d_o[-1] + r_o[1:]])
    return TokenSets(doc_tokens, doc_offsets, q_t, q_o)


def debian_tokens(nq: int = 1000, seed: int = 0, cache: Path = CACHE) -> TokenSets | None:
    """The ~113k-document Debian token sets from the cache (documents float16 as stored, queries
    float32), or None (and why) when not encoded yet."""
    path = cache / TOKENS
    if not path.exists():
        print(f"(no {path}: run `python -m bench.muvera_debian --encode` first)")
        return None
    with np.load(path) as z:
        d_t, d_o, s_t, s_o = (z[k] for k in KEYS)
    data = split((d_t, d_o), (s_t, s_o), nq, seed)
    del d_t, s_t
    q = data.query_tokens.astype(np.float32)
    return TokenSets(data.doc_tokens, data.doc_offsets, q, data.query_offsets)


# -- command line ------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.muvera_debian", description=__doc__)
    p.add_argument("--encode", action="store_true", help="only fill the token cache")
    p.add_argument("--nq", type=int, default=1000, help="held-out synopses (the split)")
    p.add_argument("--queries", type=int, default=200, help="of them, measured (first by row)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--single", type=int, default=20, help="queries timed one at a time")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--candidates", default="50,100,200,500")
    p.add_argument(
        "--configs",
        default=";".join(f"{p}:{i}" for p, i in CONFIGS),
        help="';'-separated preset:inner pairs",
    )
    p.add_argument("--cache", type=Path, default=CACHE, help="where the token cache lives")
    p.add_argument("--out", type=Path, default=RESULTS / "muvera_debian.json")
    p.add_argument("--markdown", type=Path, default=BENCHMARKS, help="'' for none")
    p.add_argument("--render", action="store_true", help="only re-render --out into markdown")
    p.add_argument("--update", action="store_true", help="keep --out's rows of other configs")
    p.add_argument("--tiny", action="store_true", help="a few queries, one repeat, no markdown")
    args = p.parse_args(argv)
    args.candidates = [int(c) for c in str(args.candidates).split(",")]
    args.configs = [tuple(c.split(":", 1)) for c in str(args.configs).split(";") if c.strip()]
    if args.tiny:
        args.queries, args.single, args.repeats, args.candidates = 10, 2, 1, [50, 100]
        args.markdown = None
    elif not str(args.markdown):
        args.markdown = None
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.encode:
        print(f"wrote {encode(cache=args.cache)}")
        return
    if args.render:
        write_block(table(json.loads(args.out.read_text())), args.markdown)
        print(f"rendered {args.out} into the muvera-debian block of {args.markdown}")
        return
    data = debian_tokens(args.nq, args.seed, args.cache)
    if data is None:
        raise SystemExit(1)
    qo = data.query_offsets[: min(args.queries, data.n_queries) + 1]
    data = TokenSets(data.doc_tokens, data.doc_offsets, data.query_tokens[: qo[-1]], qo)
    print(f"debian: {data.n_docs:,} docs, {len(data.doc_tokens):,} tokens x {data.dim}", flush=True)
    words = sys.argv[1:] if argv is None else argv
    result: dict[str, Any] = {
        "command": "python -m bench.muvera_debian " + shlex.join(words),
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "commit": git_commit(),
        "dirty": dirty(),
        "versions": versions(),
        "encoder": ENCODER,
        "seed": args.seed,
        "held_out": args.nq,
        "goals": GOALS,
    }
    result["commit_label"] = result["commit"][:10] + (" + uncommitted" if result["dirty"] else "")
    key = f"debian-maxsim-top{DEPTH}-{data.n_docs}-{args.nq}q{data.n_queries}-seed{args.seed}.npz"

    def checkpoint(section: dict[str, Any]) -> None:
        write_json(args.out, {**result, **section})

    old = json.loads(args.out.read_text()) if args.update and args.out.exists() else None
    result.update(run(data, args, args.cache / key, checkpoint))
    result["commands"] = [result["command"]]
    if old is not None:  # read before the run: checkpoints overwrite --out
        mine = {(r["preset"], r["inner"]) for r in result["rows"]}
        kept = [r for r in old["rows"] if (r["preset"], r["inner"]) not in mine]
        result["rows"] = kept + result["rows"]
        result["commands"] = old.get("commands", [old["command"]]) + result["commands"]
    write_json(args.out, result)
    if args.markdown:
        write_block(table(result), args.markdown)
        print(f"wrote {args.out} and the muvera-debian block of {args.markdown}")
    else:
        print(table(result))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
