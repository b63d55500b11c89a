"""``python -m bench``: every listed benchmark resolves to a module with ``main``; unknown names
list the known ones."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from bench.__main__ import BENCHMARKS, main, run


def test_every_benchmark_has_a_main() -> None:
    for name, (module, _, _) in BENCHMARKS.items():
        assert callable(importlib.import_module(module).main), name


def test_listing_and_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in BENCHMARKS)
    with pytest.raises(SystemExit, match="known: flat, binary"):
        run("nope", [])


def test_arguments_reach_the_benchmark() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "flat", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--sizes" in out.stdout
