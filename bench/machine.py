"""The machine's measured limits, so benchmark figures can be stated as fractions of them.

- read bandwidth: ``numpy.sum`` over a 512 MB float32 array (one thread; also two threads, each
  summing half, since BLAS scans use both cores);
- sgemm rate: a 4096 x 4096 float32 ``matmul`` with numpy's BLAS on two threads;
- versions: Python, numpy, faiss and every BLAS/OpenMP library threadpoolctl finds.

The probes are plain functions so a benchmark can interleave them with its own repeats (the box is
shared and noisy: a limit measured minutes apart from the figure it divides is not comparable).

    python -m bench.machine
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

MB = 1 << 20


class ReadProbe:
    """Times a full read of a ``size_mb`` float32 array (or ``data``); ``__call__`` returns
    bytes / second."""

    def __init__(
        self, size_mb: int = 512, threads: int = 1, data: np.ndarray | None = None
    ) -> None:
        self.data = np.ones(size_mb * MB // 4, dtype=np.float32) if data is None else data
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self._parts = np.array_split(self.data, threads)

    def __call__(self) -> float:
        t = time.perf_counter()
        if self._pool is None:
            self.data.sum()
        else:
            # numpy releases the GIL inside the reduction loop, so the halves run in parallel.
            list(self._pool.map(np.sum, self._parts))
        return self.data.nbytes / (time.perf_counter() - t)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class SgemmProbe:
    """Times one ``size^2`` float32 matmul on ``threads`` BLAS threads; returns FLOP / second."""

    def __init__(self, size: int = 4096, threads: int = 2) -> None:
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((size, size), dtype=np.float32)
        self.b = rng.standard_normal((size, size), dtype=np.float32)
        self.c = np.empty_like(self.a)
        self.threads = threads
        self.flops = 2.0 * size**3

    def __call__(self) -> float:
        with threadpool_limits(self.threads, user_api="blas"):
            t = time.perf_counter()
            np.matmul(self.a, self.b, out=self.c)
            return self.flops / (time.perf_counter() - t)


def median_rate(probe: Callable[[], float], repeats: int = 5) -> tuple[float, list[float]]:
    """Median of ``repeats`` calls after one warm-up, and the raw samples."""
    probe()
    samples = [probe() for _ in range(repeats)]
    return float(np.median(samples)), samples


def versions() -> dict[str, Any]:
    """Python, numpy, faiss, CPU and the native thread pools (BLAS, OpenMP) with their sizes."""
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
    }
    try:
        import faiss

        out["faiss"] = faiss.__version__
    except ImportError:
        out["faiss"] = None
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads")
    out["threadpools"] = [{k: lib.get(k) for k in keep} for lib in threadpool_info()]
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(repeats: int = 5, read_mb: int = 512, gemm_size: int = 4096) -> dict[str, Any]:
    """Every limit once (median of ``repeats``) plus versions, as a JSON-able dict."""
    r1 = ReadProbe(read_mb, 1)
    r2 = ReadProbe(threads=2, data=r1.data)
    bw1, bw1_raw = median_rate(r1, repeats)
    bw2, bw2_raw = median_rate(r2, repeats)
    r2.close()
    del r1, r2
    gemm, gemm_raw = median_rate(SgemmProbe(gemm_size, 2), repeats)
    return {
        "read_bw_1t": bw1,
        "read_bw_2t": bw2,
        "sgemm_2t": gemm,
        "raw": {"read_bw_1t": bw1_raw, "read_bw_2t": bw2_raw, "sgemm_2t": gemm_raw},
        "params": {"read_mb": read_mb, "gemm_size": gemm_size, "repeats": repeats},
        "versions": versions(),
    }


def main() -> None:
    m = measure()
    v = m["versions"]
    print(f"cpu: {v['cpu']} x {v['cpus']}; numpy {v['numpy']}; faiss {v['faiss']}")
    for lib in v["threadpools"]:
        print(
            f"  {lib['internal_api']} {lib['version']} ({lib['prefix']}, "
            f"{lib['architecture']}): {lib['num_threads']} threads"
        )
    print(f"read bandwidth, 1 thread : {m['read_bw_1t'] / 1e9:6.1f} GB/s")
    print(f"read bandwidth, 2 threads: {m['read_bw_2t'] / 1e9:6.1f} GB/s")
    print(f"sgemm 4096^2, 2 threads  : {m['sgemm_2t'] / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
