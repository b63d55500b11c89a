"""Shared fixtures: seeded data, a settings object on a temp dir, an app client."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings

# Hypothesis's pytest plugin imports its (libcst-based) patch writer when a test fails; under
# this repo's filterwarnings=error a DeprecationWarning from mypy_extensions raised inside that
# hook would turn every hypothesis failure into an INTERNALERROR that hides the report. Import it
# once here with the warning silenced so failures are reported normally.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1338)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", seal_threshold=64, max_segments=3)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An httpx-based client against the ASGI app, lifespan included."""
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def no_fsync() -> Iterator[None]:
    """``os.fsync`` and ``fdatasync`` as no-ops: for tests of logic, not durability."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        mp.setattr(os, "fdatasync", lambda fd: None)
        yield
