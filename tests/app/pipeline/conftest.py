"""Fixtures of the pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import wait_ready

from app.api.app import create_app
from app.config import Settings


@pytest.fixture
def hclient(tmp_path: Path, heads: Path) -> Iterator[TestClient]:
    """A client of a service whose Hypencoder heads are the test module's ``heads`` fixture."""
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", hypencoder_dir=heads))) as c:
        wait_ready(c)
        yield c
