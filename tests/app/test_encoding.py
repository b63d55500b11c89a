"""The service's encoder gateway: pinning by spec and by weights fingerprint."""

from __future__ import annotations

import pytest

from app.encoding import Encoding
from app.errors import Conflict, InvalidInput
from app.store.catalog import CollectionConfig
from encoders import encoder_factory


def config(encoder: str | None, fingerprint: str | None = None) -> CollectionConfig:
    return CollectionConfig("c", 16, encoder=encoder, encoder_fingerprint=fingerprint)


def test_pinned_encoder_is_returned() -> None:
    enc = encoder_factory("test-hash(dim=16)")
    got = Encoding(1).for_collection(config(enc.spec, enc.fingerprint), "test-hash(dim=16)")
    assert got is enc


def test_changed_weights_are_a_conflict() -> None:
    enc = encoder_factory("test-hash(dim=16)")
    with pytest.raises(Conflict, match="weights of encoder .* changed"):
        Encoding(1).for_collection(config(enc.spec, "0" * 64))


def test_no_encoder_and_bad_spec() -> None:
    with pytest.raises(InvalidInput, match="has no encoder"):
        Encoding(1).for_collection(config(None))
    with pytest.raises(InvalidInput, match="encoder 'zzz'"):
        Encoding(1).load("zzz")


def test_config_round_trips_fingerprint() -> None:
    c = config("test-hash(dim=16,seed=0,max_tokens=256)", "ab" * 32)
    assert CollectionConfig.from_json(c.to_json()) == c
