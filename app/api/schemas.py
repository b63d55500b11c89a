"""Request and response bodies of the REST API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from app.dense import VECTOR_FIELD, WireVector
from app.filters import Filter, PointId

if TYPE_CHECKING:
    from app.pipeline.base import Trace


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionCreate(_Body):
    name: str = Field(examples=["docs"])
    dim: int | None = Field(None, ge=1, examples=[384], description="optional with an encoder")
    metric: Literal["ip", "cosine"] = "ip"
    index: str | None = Field(
        None,
        description="index spec string; default 'Flat', or for multi-vector collections "
        "'Muvera(...),Flat,MaxSim(candidates=250)'",
    )
    multivector: bool = Field(
        False, description="points are token matrices ('vectors'), scored by MaxSim"
    )
    encoder: str | None = Field(
        None, examples=["minilm"], description="encoder spec for points and searches sent as text"
    )


class CollectionInfo(BaseModel):
    name: str
    dim: int
    metric: str
    index: str
    multivector: bool
    encoder: str | None
    created_at: float
    count: int
    indexed_count: int
    unindexed_count: int
    segments: int
    status: str
    last_seq: int
    bytes_on_disk: int
    bytes_in_memory: int
    bytes_per_vector: dict[str, float] = Field(
        default_factory=dict,
        description="in_memory and on_disk bytes per live point (memory-mapped rows excluded)",
    )
    tokens: int = Field(0, description="token vectors stored (multi-vector collections)")
    token_dtype: str | None = Field(None, description="float32, or float16 in Muvera segments")
    token_bytes: int = Field(0, description="bytes of token vectors held in memory")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class PointIn(_Body):
    id: PointId = Field(description="unsigned integer or string (1-256 chars)")
    vector: WireVector | None = VECTOR_FIELD
    vectors: list[list[float]] | None = Field(
        None, description="token vectors (multi-vector collections)"
    )
    text: str | None = Field(None, description="encoded by the collection's encoder")
    payload: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _id(self) -> PointIn:
        if sum(x is not None for x in (self.vector, self.vectors, self.text)) != 1:
            raise ValueError(
                "give exactly one of 'vector' or 'text' ('vectors' in multi-vector collections)"
            )
        if isinstance(self.id, int) and not 0 <= self.id < 2**63:
            raise ValueError("integer ids must be between 0 and 2**63-1")
        if isinstance(self.id, str) and not 1 <= len(self.id) <= 256:
            raise ValueError("string ids must have 1 to 256 characters")
        return self


class UpsertRequest(_Body):
    points: list[PointIn] = Field(min_length=1)


class WriteResult(BaseModel):
    seq: int = Field(description="WAL sequence number; the write is durable")


class UpsertResult(WriteResult):
    upserted: int
    truncated: int = Field(0, description="texts cut to the encoder's max_tokens")


class DeleteRequest(_Body):
    ids: list[PointId] | None = None
    filter: Filter | None = None

    @model_validator(mode="after")
    def _one(self) -> DeleteRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of 'ids' or 'filter'")
        return self


class DeleteResult(WriteResult):
    deleted: int


class Point(BaseModel):
    id: PointId
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None
    vectors: list[list[float]] | None = None


class ScrollRequest(_Body):
    limit: int = Field(100, ge=1)
    cursor: str | None = None
    filter: Filter | None = None
    with_payload: bool = True
    with_vector: bool = False


class ScrollResult(BaseModel):
    points: list[Point]
    next_cursor: str | None


class CountRequest(_Body):
    filter: Filter | None = None


class CountResult(BaseModel):
    count: int


class SearchRequest(_Body):
    vector: WireVector | None = VECTOR_FIELD
    vectors: list[list[float]] | None = Field(
        None, description="query token vectors (multi-vector collections)"
    )
    id: PointId | None = Field(None, description="search with this stored point's vector")
    text: str | None = Field(None, description="encoded with the collection's encoder")
    encoder: str | None = Field(None, description="must match the collection's, else 409")
    k: int = Field(10, ge=1)
    offset: int = Field(0, ge=0)
    filter: Filter | None = None
    score_threshold: float | None = None
    with_payload: bool = True
    with_vector: bool = False
    params: dict[str, StrictInt | StrictFloat | StrictBool | StrictStr] = Field(
        default_factory=dict,
        description='index search parameters for this query, e.g. {"ef_search": 256}; '
        'multi-vector: {"candidates": 200, "exact": true}; re-ranking (with \'text\'): '
        '{"rerank": "hypencoder", "candidates": 1000, "head": "minilm-debian"}, or '
        '{"rerank": "none"} to skip the re-ranking an index spec sets',
    )

    @model_validator(mode="after")
    def _one(self) -> SearchRequest:
        if sum(x is not None for x in (self.vector, self.vectors, self.id, self.text)) != 1:
            raise ValueError(
                "give exactly one of 'vector', 'id' or 'text' ('vectors' in multi-vector "
                "collections)"
            )
        return self


class Hit(BaseModel):
    id: PointId
    score: float
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None
    vectors: list[list[float]] | None = None


class StageTrace(BaseModel):
    stage: str
    input: int = Field(description="candidates given to the stage")
    output: int = Field(description="candidates it passed on")
    took_ms: float
    exact: bool
    min_score: float | None = Field(None, description="lowest score it passed on")
    max_score: float | None = Field(None, description="highest score it passed on")
    note: str | None = Field(None, description="how it ran, e.g. the filter strategy")
    of: list[StageTrace] | None = Field(None, description="the fused stages (rrf, weighted)")

    @classmethod
    def from_trace(cls, t: Trace) -> StageTrace:
        return cls(
            stage=t.stage,
            input=t.input,
            output=t.output,
            took_ms=t.took_ms,
            exact=t.exact,
            min_score=t.min_score,
            max_score=t.max_score,
            note=t.note,
            of=None if t.of is None else [cls.from_trace(s) for s in t.of],
        )


class SearchResponse(BaseModel):
    hits: list[Hit]
    exact: bool
    took_ms: float
    stages: list[StageTrace] | None = Field(
        None, description="a search that re-ranked (params.rerank): what each stage did"
    )


class BatchSearchRequest(_Body):
    searches: list[SearchRequest] = Field(min_length=1)


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]
    took_ms: float


class FlushResult(BaseModel):
    sealed: int
    segments: int


class ErrorBody(BaseModel):
    error: str
    message: str
    details: Any = None


class Health(BaseModel):
    status: str
    collections: int | None = None


class JobOut(BaseModel):
    id: str
    kind: str
    collection: str
    state: str
    phase: str
    done: int
    total: int | None
    rate_per_s: float | None
    eta_s: float | None
    error: str | None
    result: dict[str, Any] | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    params: dict[str, Any]


class JobList(BaseModel):
    jobs: list[JobOut]


class BuildRequest(_Body):
    spec: str = Field(examples=["HNSW(m=32)"], description="index spec to build")


class ImportRequest(_Body):
    path: str = Field(description="a file on the server: NDJSON, .npy or Parquet")
    format: Literal["ndjson", "npy", "parquet"] | None = None
    ids_path: str | None = Field(None, description=".npy of int ids aligned with an .npy import")
    payloads_path: str | None = Field(None, description="NDJSON payloads aligned with .npy rows")


class EncodeRequest(_Body):
    texts: list[str] = Field(min_length=1)
    encoder: str | None = Field(None, description="encoder spec; the server default if omitted")
    kind: Literal["query", "document"] = "document"


class EncodeResponse(BaseModel):
    encoder: str
    dim: int
    multivector: bool
    vectors: list[list[float]] | list[list[list[float]]]
    truncated: int


class KeyCreate(_Body):
    role: Literal["read", "write", "admin"] = Field(examples=["read"])
    collection: str | None = Field(None, description="limit the key to this collection")
    name: str | None = Field(None, max_length=200, description="a label for `keys list`")


class KeyInfo(BaseModel):
    id: str
    role: str
    collection: str | None
    name: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class KeyCreated(KeyInfo):
    key: str = Field(description="the API key itself; shown only in this response")


class KeyList(BaseModel):
    keys: list[KeyInfo]
