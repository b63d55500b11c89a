"""The Python client (sync and async) end to end against a real ``innerspace serve``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support import Server, brute_force

from app.api.schemas import JobOut
from app.client import (
    AlreadyExistsError,
    ApiError,
    AsyncClient,
    Client,
    ForbiddenError,
    InsufficientStorageError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from app.client.errors import error_from

ROOT = "client-test-root-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("client")
    srv = Server(
        tmp / "data",
        INNERSPACE_AUTH="on",
        INNERSPACE_ADMIN_KEY=ROOT,
        INNERSPACE_MAX_BATCH_POINTS="1000",
        INNERSPACE_SEAL_THRESHOLD="700",
        INNERSPACE_MEMORY_BUDGET_BYTES="2MiB",
    ).start()
    yield srv
    srv.stop()


def test_end_to_end(server: Server) -> None:
    rng = np.random.default_rng(7)
    n, dim = 2500, 16
    x = rng.standard_normal((n, dim)).astype(np.float32)
    with Client(server.url, api_key=ROOT) as admin:
        assert admin.health().status == "ok" and admin.ready()
        info = admin.create_collection("docs", dim=dim)
        assert info.name == "docs" and info.count == 0
        batches: list[int] = []
        summary = admin.upsert(
            "docs",
            ({"id": i, "vector": x[i], "payload": {"even": i % 2 == 0}} for i in range(n)),
            batch_size=1000,  # the server's max: 3 requests
            on_batch=lambda r: batches.append(r.upserted),
        )
        assert (summary.upserted, summary.batches, batches) == (n, 3, [1000, 1000, 500])
        assert admin.count("docs") == n
        assert admin.count("docs", {"must": [{"key": "even", "match": True}]}) == n // 2

        res = admin.search("docs", vector=x[3], k=5)
        _, want = brute_force(x, np.arange(n), x[3:4], 5)
        assert [h.id for h in res.hits] == want[0].tolist() and res.exact
        batch = admin.search_batch("docs", [{"vector": x[i], "k": 3} for i in range(4)])
        assert len(batch.results) == 4 and [r.hits[0].id for r in batch.results[1:]] == [1, 2, 3]

        seen: list[JobOut] = []
        job = admin.build_index("docs", "HNSW(m=8)")
        final = admin.wait(job.id, timeout=60, on_progress=seen.append)
        assert final.state == "succeeded" and final.result is not None
        assert seen and seen[-1].state == "succeeded"
        assert admin.get_collection("docs").index.startswith("HNSW")
        assert any(j.id == job.id for j in admin.jobs(collection="docs"))

        ids = sorted(p.id for p in admin.iter_points("docs", page_size=700))  # type: ignore[type-var]
        assert ids == list(range(n))
        page = admin.scroll("docs", limit=10, with_vector=True)
        assert len(page.points) == 10 and page.next_cursor and page.points[0].vector

        assert admin.delete("docs", ids=[0, 1, 2]).deleted == 3
        assert admin.count("docs") == n - 3
        with pytest.raises(NotFoundError):
            admin.get_point("docs", 0)
        assert admin.get_point("docs", 5, with_vector=True).vector is not None

        # typed errors, built from the error body
        with pytest.raises(NotFoundError) as nf:
            admin.search("nope", vector=x[0])
        assert (
            nf.value.status == 404 and nf.value.code == "not_found" and "nope" in nf.value.message
        )
        with pytest.raises(InvalidInputError) as bad:
            admin.upsert("docs", [{"id": 1, "vector": [1.0, 2.0]}])
        assert bad.value.details
        with pytest.raises(AlreadyExistsError):
            admin.create_collection("docs", dim=dim)
        with pytest.raises(InsufficientStorageError) as big:
            admin.build_index("docs", "HNSW(m=128)")  # ~2.8 MB: over the 2 MiB budget alone
        assert big.value.details["budget_bytes"] == 2 * 1024**2
        reader = admin.create_key("read", collection="docs", name="reader")
        assert reader.key.startswith("isk_") and reader.collection == "docs"

    with Client(server.url, api_key=reader.key) as ro:
        assert ro.count("docs") == n - 3
        assert [c.name for c in ro.list_collections()] == ["docs"]
        with pytest.raises(ForbiddenError):
            ro.upsert("docs", [{"id": 9, "vector": x[9]}])
        with pytest.raises(ForbiddenError):
            ro.list_keys()
    with Client(server.url, api_key="") as anon, pytest.raises(UnauthorizedError):
        anon.count("docs")
    with Client(server.url, api_key=ROOT) as admin:
        assert admin.revoke_key(reader.id).revoked_at is not None
        admin.delete_collection("docs")
        with pytest.raises(NotFoundError):
            admin.get_collection("docs")


def test_async_client(server: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, api_key=ROOT) as c:
            await c.create_collection("adocs", dim=4)
            pts = [{"id": f"p{i}", "vector": [i, 1, 0, 0]} for i in range(25)]
            summary = await c.upsert("adocs", pts, batch_size=10)
            assert (summary.upserted, summary.batches) == (25, 3)
            res = await c.search("adocs", vector=[1, 0, 0, 0], k=2)
            assert [h.id for h in res.hits] == ["p24", "p23"]
            job = await c.build_index("adocs", "Flat")
            final = await c.wait(job.id, timeout=30)
            assert final.state == "succeeded"
            got = [p.id async for p in c.iter_points("adocs", page_size=7)]
            assert sorted(got) == sorted(f"p{i}" for i in range(25))
            assert (await c.delete("adocs", ids=["p0"])).deleted == 1
            assert await c.count("adocs") == 24
            with pytest.raises(NotFoundError):
                await c.job("nope")
            await c.delete_collection("adocs")

    asyncio.run(scenario())


def test_error_mapping_without_a_body() -> None:
    def answer(status: int, **kw: object) -> httpx.Response:
        return httpx.Response(status, request=httpx.Request("GET", "http://x/"), **kw)  # type: ignore[arg-type]

    e = error_from(answer(429, json={"error": "rate_limited", "message": "slow"}, headers={
        "retry-after": "7"}))  # fmt: skip
    assert isinstance(e, RateLimitedError) and e.retry_after == 7.0 and e.message == "slow"
    e = error_from(answer(502, text="bad gateway"))
    assert type(e) is not RateLimitedError and isinstance(e, ApiError) and e.status == 502
    assert isinstance(error_from(answer(403, text="<html>")), ForbiddenError)


def test_import_failure_raises_job_failed(server: Server, tmp_path: Path) -> None:
    with Client(server.url, api_key=ROOT) as c:
        c.create_collection("imp", dim=2)
        bad = tmp_path / "bad.npy"
        bad.write_bytes(b"not numpy")
        job = c.upload("imp", bad, format="npy")
        with pytest.raises(JobFailedError) as exc:
            c.wait(job.id, timeout=30)
        assert exc.value.job.state == "failed" and exc.value.job.error
        assert c.wait(job.id, raise_on_failure=False).state == "failed"
        c.delete_collection("imp")


def test_multivector_collection_through_the_client(server: Server) -> None:
    rng = np.random.default_rng(12)
    docs = [rng.standard_normal((int(t), 8)).astype(np.float32) for t in rng.integers(1, 5, 30)]
    with Client(server.url, api_key=ROOT) as c:
        info = c.create_collection("late", dim=8, multivector=True)
        assert info.multivector and info.index.startswith("Muvera(")
        c.upsert("late", ({"id": i, "vectors": d} for i, d in enumerate(docs)), batch_size=10)
        q = rng.standard_normal((3, 8)).astype(np.float32)
        res = c.search("late", vectors=q, k=3, params={"exact": True}, with_vector=True)
        scores = [float((q @ d.T).max(axis=1).sum()) for d in docs]
        assert [h.id for h in res.hits] == np.argsort(scores)[::-1][:3].tolist()
        assert res.exact and res.hits[0].vectors is not None
        got = c.get_point("late", 4, with_vector=True)
        np.testing.assert_array_equal(np.asarray(got.vectors, np.float32), docs[4])
        assert c.get_collection("late").tokens == sum(len(d) for d in docs)
        c.delete_collection("late")
