"""Settings from the environment (prefix ``INNERSPACE_``) and CLI flags."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; ``INNERSPACE_<NAME>`` sets one, e.g. ``INNERSPACE_PORT=9000``."""

    model_config = SettingsConfigDict(env_prefix="INNERSPACE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="where collections and the catalog live")
    host: str = Field("127.0.0.1", description="bind address")
    port: int = Field(8000, ge=1, le=65535, description="port")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe log level written"
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="one JSON object per line (with request ids), or plain text"
    )

    auth: Literal["off", "on", "auto"] = Field(
        "auto",
        description="API keys required: `auto` = only when `host` is not a loopback address",
    )
    admin_key: SecretStr | None = Field(
        None,
        description="a static admin key accepted besides the catalog's keys (bootstrap; "
        "prefer `innerspace keys create`)",
    )
    metrics_auth: bool = Field(
        False, description="`/metrics` needs a key without collection scope (else it is open)"
    )
    read_rate_limit: int | None = Field(
        None,
        ge=1,
        description="read requests per minute per API key (per client address without auth); "
        "unset = unlimited; over it: 429 with `Retry-After`",
    )
    write_rate_limit: int | None = Field(
        None, ge=1, description="write and admin requests per minute per API key, like the above"
    )
    memory_budget_bytes: ByteSize | None = Field(
        None,
        description="bytes the vectors and indexes of all collections may take (e.g. `8GiB`); "
        "an index build that would pass it gets 507; unset = no budget",
    )

    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_batch_points: int = Field(10_000, ge=1, description="points per upsert request")
    max_k: int = Field(10_000, ge=1, description="largest k (plus offset) a search may ask")
    max_search_batch: int = Field(1_000, ge=1, description="searches per batch request")
    max_dim: int = Field(65_536, ge=1, description="largest collection dimension")
    max_payload_bytes: int = Field(65_536, ge=16, description="JSON bytes per point payload")
    max_scroll_limit: int = Field(10_000, ge=1, description="largest scroll page")

    seal_threshold: int = Field(
        65_536, ge=1, description="unindexed points that trigger sealing the tail into a segment"
    )
    max_segments: int = Field(8, ge=1, description="more sealed segments than this are merged")
    verify_checksums: bool = Field(True, description="check segment crc32s when loading")

    recall_sample_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of live dense queries re-run exactly in the background to measure "
        "recall@k (GET /collections/{name}/quality, metric innerspace_recall); 0 = off",
    )
    hypencoder_dir: Path | None = Field(
        None,
        description="directory of Hypencoder heads for the `hypencoder` pipeline stage "
        "(each a HyperHead.save directory); unset = `<data dir>/hypencoder`",
    )
    recall_sample_seed: int = Field(0, description="seed of the recall sampler's coin")
    max_eval_queries: int = Field(
        10_000, ge=1, description="labelled queries per POST /collections/{name}/evaluate"
    )

    encode_concurrency: int = Field(2, ge=1, description="encode calls that run at once")
    default_encoder: str = Field("minilm", description="encoder for POST /encode without one")

    job_workers: int = Field(2, ge=1, description="jobs (builds, imports) that run at once")
    snapshot_keep: int | None = Field(
        None,
        ge=1,
        description="snapshots kept per collection: after each successful snapshot the oldest "
        "beyond this many are deleted; unset = keep all",
    )
    max_upload_bytes: int = Field(
        16 * 1024**3, ge=1024, description="largest file accepted by the import upload route"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
