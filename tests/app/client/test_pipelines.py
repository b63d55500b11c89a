"""The Python clients' pipeline methods against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import Server, brute_force

from app.client import AsyncClient, Client, InvalidInputError, NotFoundError

D = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("pipelines")
    srv = Server(tmp / "data", INNERSPACE_RECALL_SAMPLE_RATE="1.0").start()
    yield srv
    srv.stop()


def test_pipelines_end_to_end(server: Server) -> None:
    x = np.random.default_rng(2).standard_normal((200, D)).astype(np.float32)
    texts = ["red apple", "green apple", "red car", "blue car"]
    with Client(server.url) as c:
        c.create_collection("p", dim=D)
        c.upsert(
            "p", ({"id": i, "vector": x[i], "payload": {"text": texts[i % 4]}} for i in range(200))
        )
        info = c.save_pipeline("p", "top5", [{"exact": {"k": 5}}])
        assert info.default
        c.save_pipeline("p", "words", [{"lexical": {"k": 3}}])
        assert [p.name for p in c.pipelines("p")] == ["top5", "words"]
        _, want = brute_force(x, np.arange(200), x[:1] + 0.01, 5)
        r = c.query("p", vector=x[0] + 0.01, explain=True)
        assert r.pipeline == "top5" and [h.id for h in r.hits] == want[0].tolist()
        assert r.explain is not None and r.explain[0].stage == "exact"
        r = c.query("p", "words", text="blue car")
        assert {h.payload["text"] for h in r.hits} == {"blue car"}
        with pytest.raises(InvalidInputError, match="'ip' needs candidates"):
            c.query("p", [{"ip": {"k": 3}}], vector=x[0])
        c.delete_pipeline("p", "words")
        with pytest.raises(NotFoundError, match="words"):
            c.query("p", "words", text="car")
        best = int(np.argmax(x @ x[3]))
        ev = c.evaluate(
            "p", [{"id": "a", "vector": x[3]}], {"a": {str(best): 1}}, pipelines=["top5"], k=5
        )
        assert ev.results[0].ndcg == pytest.approx(1.0)
        q = c.quality("p")
        assert q.sample_rate == 1.0

    async def scenario() -> None:
        async with AsyncClient(server.url) as ac:
            r = await ac.query("p", vector=x[5])
            assert r.hits[0].id == int(np.argmax(x @ x[5]))
            assert [p.name for p in await ac.pipelines("p")] == ["top5"]

    asyncio.run(scenario())
