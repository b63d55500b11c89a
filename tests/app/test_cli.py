"""The ``innerspace`` CLI against a real server: import with a progress bar, list jobs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import Server


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("innerspace")
    cmd = [exe] if exe else [sys.executable, "-m", "app"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("server_path", [False, True])
def test_import_and_jobs(tmp_path: Path, server_path: bool) -> None:
    srv = Server(tmp_path / "data").start()
    try:
        httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": 3})
        f = tmp_path / "points.ndjson"
        lines = [json.dumps({"id": i, "vector": [i, 1, 2]}) for i in range(2500)]
        f.write_text("\n".join(lines + ['{"id": "bad", "vector": [1]}']) + "\n")
        extra = ["--server-path"] if server_path else []
        r = cli("import", str(f), "--collection", "c", "--url", srv.url, *extra)
        assert r.returncode == 0, r.stderr
        assert "imported 2,500, failed 1" in r.stderr
        assert "line 2501" in r.stderr
        assert httpx.get(f"{srv.url}/collections/c").json()["count"] == 2500
        r = cli("jobs", "--url", srv.url)
        assert r.returncode == 0 and "import" in r.stdout and "succeeded" in r.stdout
        r = cli("import", str(f), "--collection", "nope", "--url", srv.url)
        assert r.returncode == 1 and "404" in r.stderr
    finally:
        srv.stop()
