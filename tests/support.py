"""Helpers shared by tests (importable as ``support``: ``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient


def brute_force(
    xb: np.ndarray, ids: np.ndarray, xq: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: exact top-k by inner product, ties by ascending id."""
    scores = xq @ xb.T
    out_i = np.full((len(xq), k), -1, dtype=np.int64)
    out_s = np.full((len(xq), k), -np.inf, dtype=np.float32)
    for q in range(len(xq)):
        o = np.lexsort((ids, -scores[q]))[:k]
        out_i[q, : len(o)] = ids[o]
        out_s[q, : len(o)] = scores[q, o]
    return out_s, out_i


def assert_save_load_identical(
    index: Any, path: Path, xq: np.ndarray, sels: tuple[Any, ...]
) -> Any:
    """Save ``index`` to ``path/a``, load it, save that to ``path/b``: the reload answers each
    top-10 search under ``sels`` (None or an ``IdSelector``) as ``index`` did, bit for bit, and
    both saves hold the same files, byte for byte, no temporary one left. Returns the reload."""
    before = [index.search(xq, 10, s) for s in sels]
    index.save(path / "a")
    loaded = type(index).load(path / "a")
    assert loaded.spec == index.spec and len(loaded) == len(index)
    for sel, want in zip(sels, before, strict=True):
        got = loaded.search(xq, 10, sel)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.scores, want.scores)
    loaded.save(path / "b")
    files = sorted(p.name for p in (path / "a").iterdir())
    assert files == sorted(p.name for p in (path / "b").iterdir())
    assert not any(f.endswith(".tmp") for f in files)
    for f in files:
        assert (path / "a" / f).read_bytes() == (path / "b" / f).read_bytes(), f
    return loaded


def assert_full_coverage_exact(
    spec: str, xb: np.ndarray, ids: np.ndarray, xq: np.ndarray, n: int, every: int, k: int
) -> None:
    """Index ``spec`` over the first ``n`` rows, remove every ``every``-th, then search with an
    oversample that makes every row a candidate: exactly the brute-force top-``k``."""
    from index import index_factory

    index = index_factory(xb.shape[1], spec)
    index.add(ids[:n], xb[:n])
    index.remove(ids[:n:every])
    keep = np.ones(n, bool)
    keep[::every] = False
    truth_s, truth_i = brute_force(xb[:n][keep], ids[:n][keep], xq, k)
    res = index.search(xq, k, oversample=n / k)
    np.testing.assert_array_equal(res.ids, truth_i)
    np.testing.assert_allclose(res.scores, truth_s, rtol=1e-5, atol=1e-5)


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise TimeoutError("service did not become ready")


class Server:
    """A real ``innerspace serve`` subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", **env: str) -> None:
        self.data_dir = data_dir
        self.host = host  # bind address; the tests connect over loopback either way
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        exe = shutil.which("innerspace")
        cmd = [exe] if exe else [sys.executable, "-m", "app"]
        cmd += [
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        env = {**os.environ, "INNERSPACE_LOG_LEVEL": "warning", **self.env}
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fuzz_settings(max_examples: int, large_data: bool = True) -> Any:
    """Hypothesis settings for the fuzz tests: deterministic (derandomised, no example
    database), no deadline (a shared CI box), ``max_examples`` cases; ``large_data`` also
    allows examples hypothesis finds too large (the fuzzers build whole logs and trees)."""
    from hypothesis import HealthCheck, settings

    suppress = [HealthCheck.too_slow] + ([HealthCheck.data_too_large] if large_data else [])
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=suppress,
    )
