"""``python -m bench``: one entry to every benchmark, each still runnable as ``python -m bench.X``.

    python -m bench                      # list them
    python -m bench peers --tiny         # one, with its own arguments
    python -m bench all                  # the BENCHMARKS.md set, in order, each at its defaults

Each benchmark writes its JSON under ``bench/results/`` and rewrites its own section of
``BENCHMARKS.md``; ``all`` runs the ones that do (``peers`` needs the ``bench`` extra, the
SciFact and Debian ones need ``../shared/data`` and the encoders' caches, see each docstring).
"""

from __future__ import annotations

import importlib
import sys
import time

#: Every benchmark by name: (module, what it measures). ``all`` runs those marked True.
BENCHMARKS: dict[str, tuple[str, str, bool]] = {
    "flat": ("bench.flat", "Flat vs faiss vs numpy, share of bandwidth and sgemm", True),
    "binary": ("bench.binary", "binary codes + re-scoring vs faiss RaBitQ / binary", True),
    "muvera": ("bench.muvera", "MUVERA FDE + MaxSim vs brute force and fastembed", True),
    "hypencoder": ("bench.hypencoder", "Hypencoder rerank nDCG on SciFact", False),
    "hypencoder_graph": ("bench.hypencoder_graph", "q-net graph search vs exhaustive", True),
    "pipelines": ("bench.pipelines", "query pipelines on SciFact (nDCG, overhead)", True),
    "peers": ("bench.peers", "ours vs faiss, hnswlib, chroma, qdrant, lancedb, milvus", True),
    "http": ("bench.http", "HTTP vs in-process search", True),
    "jobs": ("bench.jobs", "background build and import jobs", True),
    "text": ("bench.text", "text through the service (SciFact)", True),
    "load": ("bench.load", "sustained load: clients, errors, RSS", True),
    "crash": ("bench.crash", "kill -9 campaign: acknowledged writes survive", True),
}


def _listing() -> str:
    rows = [f"  {n:<18} {what}" for n, (_, what, _) in BENCHMARKS.items()]
    return "benchmarks (python -m bench NAME [its arguments]; all: the set):\n" + "\n".join(rows)


def run(name: str, argv: list[str]) -> object:
    """Run benchmark ``name``'s ``main(argv)``; an unknown name lists the known ones."""
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)}, all)")
    module = importlib.import_module(BENCHMARKS[name][0])
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "list"):
        print(_listing())
        return 0
    if args[0] != "all":
        out = run(args[0], args[1:])
        return out if isinstance(out, int) else 0
    failed = []
    for name, (_, _, in_all) in BENCHMARKS.items():
        if not in_all:
            continue
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            out = run(name, [])
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"== {name} failed: {exc!r}", flush=True)
            failed.append(name)
            continue
        if isinstance(out, int) and out:
            failed.append(name)
        print(f"== {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
