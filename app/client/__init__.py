"""Python client for the Innerspace REST API: :class:`Client` (sync) and :class:`AsyncClient`.

Both mirror the API one method per route and return the API's own pydantic models
(:mod:`app.api.schemas`); a non-2xx answer raises an :class:`ApiError` subclass built from the
error body ``{error, message, details}`` (e.g. :class:`NotFoundError`, :class:`RateLimitedError`
with ``retry_after``).

>>> from app.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="isk_...") as c:  # doctest: +SKIP
...     c.create_collection("docs", dim=4)
...     c.upsert("docs", ({"id": i, "vector": v} for i, v in enumerate(vectors)))
...     job = c.wait(c.build_index("docs", "HNSW(m=32)").id)
...     hits = c.search("docs", vector=[1, 0, 0, 0], k=5).hits

``upsert`` splits any iterable of points into batches of ``batch_size`` requests;
``wait(job_id)`` follows the job's Server-Sent Events stream until it ends and raises
:class:`JobFailedError` when it did not succeed; ``iter_points`` scrolls a whole collection.
"""

from __future__ import annotations

from app.client.aio import AsyncClient
from app.client.errors import (
    AlreadyExistsError,
    ApiError,
    BadRequestError,
    ClientError,
    ConflictError,
    ForbiddenError,
    InsufficientStorageError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnavailableError,
)
from app.client.sync import Client
from app.client.wire import Job, UpsertSummary

__all__ = [
    "AlreadyExistsError",
    "ApiError",
    "AsyncClient",
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "ForbiddenError",
    "InsufficientStorageError",
    "InvalidInputError",
    "Job",
    "JobFailedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "UnauthorizedError",
    "UnavailableError",
    "UpsertSummary",
]
