"""The build worker dies with the server that started it (no orphan finishing a segment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

CHILD = (
    "import sys, time; from app.jobs.worker import die_with_parent; "
    "die_with_parent(int(sys.argv[1])); print('ready', flush=True); time.sleep(60)"
)
PARENT = (
    "import os, subprocess, sys; "
    f"p = subprocess.Popen([sys.executable, '-c', {CHILD!r}, str(os.getpid())], "
    "stdout=sys.stdout); print(p.pid, flush=True); p.wait()"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_exits_when_its_parent_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "ready"
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the worker outlived its killed parent"
