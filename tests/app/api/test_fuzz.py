"""Schemathesis against our own OpenAPI document: no request, however malformed, gets a 5xx;
every 4xx carries the one error shape ``{error, message, details?}``; a request that breaks
the schema is refused; and status codes, content types and bodies are the documented ones.

The app runs in-process on a module-scoped data directory holding a dense and a multi-vector
collection with a few points, a finished index job and a snapshot. Hooks aim generated path
parameters at those names part of the time and give generated vectors the collections'
dimension part of the time; every valid case also gets a "tamed" twin in the shape the schema
cannot state (one of vector or id, valid point ids, no wild optional fields). So requests get
past the 404s and 422s to the code behind them.

Auth is on (with an admin key), so every request also passes through authentication. The
default run keeps to a few examples per operation, no coverage phase and a few stateful
scenarios (well under a minute); ``pytest -m slow tests/app/api/test_fuzz.py -s`` runs every
phase with many more examples and scenarios, and prints per-operation request and status
counts.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis

# schemathesis imports this module lazily while it generates a case, deep inside hypothesis's
# stack, and pytest rewrites its asserts on import: there CPython 3.11.7's compiler can fail with
# "SystemError: AST constructor recursion depth mismatch" (seen once in CI, depending on which
# case came first). Imported here, at the top of the stack, it is never compiled down there.
import schemathesis.generation.dictionaries  # noqa: F401
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings
from hypothesis.errors import Flaky
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.types import ASGIApp, Receive, Scope, Send
from support import wait_ready

from app.api.app import create_app
from app.config import Settings

DIM = 2  # short, so generated vectors have the collections' length now and then
DENSE, MULTI = "dense", "multi"
#: Keys are required, so every request also goes through authentication; this one may do all.
ADMIN_KEY = "isk-fuzz-admin"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

#: Fuzzing-phase examples per operation (the examples phase adds the schema's own examples).
QUICK, THOROUGH = 6, 200
#: Stateful scenarios and steps per scenario.
QUICK_SCENARIOS, THOROUGH_SCENARIOS, STEPS = 10, 200, 8


def error_shape(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx is ``{"error": code, "message": sentence, "details"?: ...}`` (app/errors.py)."""
    if not 400 <= response.status_code < 500:
        return None
    body = response.json()
    assert isinstance(body, dict), f"4xx body is not an object: {response.text[:200]}"
    assert set(body) <= {"error", "message", "details"}, f"unexpected keys {sorted(body)}"
    assert isinstance(body.get("error"), str) and body["error"], "no error code"
    assert isinstance(body.get("message"), str) and body["message"], "no message"
    return True


#: ``negative_data_rejection``: a request that breaks the schema must get a 4xx, never a 2xx.
CHECKS = [
    not_a_server_error,
    error_shape,
    negative_data_rejection,
    # The OpenAPI document is right: status codes, content types and bodies (2xx ones against
    # their response models, 4xx ones against ErrorBody) are the documented ones.
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Stateful runs also check that what was created can be read, and what was deleted is gone.
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]


def _without_lifespan(app: FastAPI) -> ASGIApp:
    """``app`` for schemathesis' ASGI transport minus the lifespan: the fixture's TestClient
    runs the one lifespan (a second would open a second service on the same data dir)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)

    return wrapped


class Fuzz:
    """The live app, the ids that exist in it, and what the fuzzing sent and got."""

    def __init__(self, app: FastAPI, client: TestClient) -> None:
        self.app, self.client = app, client
        self.jobs: list[str] = []
        self.snapshots: list[str] = []
        #: (run, operation, status) -> requests; run is "single", "tamed" or "stateful".
        self.seen: Counter[tuple[str, str, int]] = Counter()

    def seed(self) -> None:
        """(Re)create the fixture collections: a generated DELETE may have dropped them."""
        c = self.client
        existing = {x["name"] for x in c.get("/collections").json()["collections"]}
        if DENSE not in existing:
            assert c.post("/collections", json={"name": DENSE, "dim": DIM}).status_code == 201
            points = [
                {"id": 1, "vector": [1.0, 0.0], "payload": {"lang": "en", "year": 2020}},
                {"id": 2, "vector": [0.0, 1.0], "payload": {"lang": "de", "tags": ["a", "b"]}},
                {"id": "s", "vector": [0.5, 0.5], "payload": {"year": 1999.5, "ok": True}},
            ]
            assert c.put(f"/collections/{DENSE}/points", json={"points": points}).is_success
        if MULTI not in existing:
            body = {"name": MULTI, "dim": DIM, "multivector": True}
            assert c.post("/collections", json=body).status_code == 201
            points = [
                {"id": 1, "vectors": [[1.0, 0.0], [0.0, 1.0]], "payload": {"lang": "en"}},
                {"id": 2, "vectors": [[0.5, 0.5]]},
                {"id": "s", "vectors": [[0.0, 1.0]], "payload": {"year": 2001}},
            ]
            assert c.put(f"/collections/{MULTI}/points", json={"points": points}).is_success

    def record(self, run: str, case: Case, response: Response) -> None:
        self.seen[(run, case.operation.label, response.status_code)] += 1

    def report(self) -> str:
        """Requests per run and operation, by status."""
        lines = []
        for run in sorted({r for r, _, _ in self.seen}):
            ops: dict[str, Counter[int]] = {}
            for (r, op, status), n in self.seen.items():
                if r == run:
                    ops.setdefault(op, Counter())[status] += n
            total = sum(sum(c.values()) for c in ops.values())
            lines.append(f"{run}: {len(ops)} operations, {total} requests")
            for op, codes in sorted(ops.items()):
                lines.append(f"  {op}: {sum(codes.values())} ({dict(sorted(codes.items()))})")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    settings = Settings(
        data_dir=data, seal_threshold=64, max_segments=3, auth="on", admin_key=ADMIN_KEY
    )
    app = create_app(settings)
    with TestClient(app, headers=AUTH) as client:
        wait_ready(client)
        fx = Fuzz(app, client)
        fx.seed()
        job = client.post(f"/collections/{DENSE}/index", json={"spec": "Flat"}).json()
        snap = client.post(f"/collections/{DENSE}/snapshots").json()
        fx.jobs += [job["id"], snap["id"]]
        fx.snapshots.append(snap["id"])
        yield fx
    print("\n" + fx.report())  # shown with -s


def _resize(body: Any) -> Any:
    """``body`` with every numeric ``vector`` cut or padded to DIM and every ``vectors`` token
    likewise, wherever they nest (points, searches): the schema cannot say the length."""
    if isinstance(body, list):
        return [_resize(x) for x in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        if key == "vector" and _numbers(value):
            value = (value + [0.5] * DIM)[:DIM]
        elif key == "vectors" and isinstance(value, list) and all(map(_numbers, value)):
            value = [(v + [0.5] * DIM)[:DIM] for v in value] or [[0.5] * DIM]
        else:
            value = _resize(value)
        out[key] = value
    return out


#: Optional fields that, filled at random, nearly always earn a 422 of their own (they are
#: fuzzed as much in the other variants; test_filters*.py covers filters).
_WILD = {"encoder", "params", "text", "filter", "cursor"}
_BOUNDS = {"k": (1, 20), "offset": (0, 5), "limit": (1, 50)}


def _tame(body: Any, path: str, by: str) -> Any:
    """``body`` reshaped towards what the app accepts where the schema cannot say it: no wild
    optional fields, small k, offset and limit, valid point ids, and exactly one of vector,
    vectors or id per point or search (``by`` when there is none). Random everything else
    stays. Unknown shapes pass through."""
    body = _strip(body)
    if not isinstance(body, dict):
        return body
    if path.endswith(("/search", "/query")):
        body = _one_of(body, ("vector", "vectors", "id"), by)
    elif path.endswith("/search/batch") and isinstance(body.get("searches"), list):
        body["searches"] = [_one_of(q, ("vector", "vectors", "id"), by) for q in body["searches"]]
    elif path.endswith("/points") and isinstance(body.get("points"), list):
        points = [_one_of(p, ("vector", "vectors"), by) for p in body["points"]]
        for n, p in enumerate(points):
            if isinstance(p, dict):
                p["id"] = n  # unique and valid
        body["points"] = points
    elif path.endswith("/points/delete"):
        body.setdefault("ids", [1, "s"])
    return body


def _strip(body: Any) -> Any:
    """``body`` without the wild fields, with k, offset and limit clamped, at any depth."""
    if isinstance(body, list):
        return [_strip(x) for x in body]
    if not isinstance(body, dict):
        return body
    out = {k: _strip(v) for k, v in body.items() if k not in _WILD}
    for key, (low, high) in _BOUNDS.items():
        value = out.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value % 1 == 0:
            out[key] = min(max(int(value), low), high)
    return out


def _one_of(item: Any, keys: tuple[str, ...], default: str) -> Any:
    """``item`` with only the first of ``keys`` it has, or ``default`` (a vector or token set
    of the collections' dimension) when it has none."""
    if not isinstance(item, dict):
        return item
    given = [k for k in keys if item.get(k) is not None]  # null is "not given"
    for k in keys:
        if k in item and k not in given[:1]:
            del item[k]
    if not given:
        item[default] = [0.5] * DIM if default == "vector" else [[0.5] * DIM]
    return item


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    )


def _schema(fx: Fuzz, config: dict[str, Any]) -> OpenApiSchema:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", _without_lifespan(fx.app), config=SchemathesisConfig.from_dict(config)
    )

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        # Half the time, names and ids that exist: a random one only ever meets the 404.
        known = {
            "name": [DENSE, MULTI],
            "point_id": ["1", "2", "s"],
            "job_id": fx.jobs,
            "snapshot_id": fx.snapshots,
        }
        swap = {k: st.sampled_from(v) for k, v in known.items() if k in (path_parameters or {})}
        if not swap:
            return st.just(path_parameters)
        aimed = st.fixed_dictionaries(swap).map(lambda s: {**(path_parameters or {}), **s})
        return st.one_of(st.just(path_parameters), aimed)

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        # Only what the schema leaves open: a negative body stays exactly as negative.
        return st.sampled_from([_resize(body), body])

    return schema


def _config(max_examples: int, coverage: bool, deterministic: bool) -> dict[str, Any]:
    return {
        "headers": AUTH,
        "generation": {"max-examples": max_examples, "deterministic": deterministic},
        "phases": {
            # ``?collection=a&collection=b`` means the last one, as in most frameworks; not
            # a schema violation worth a failure.
            "coverage": {"enabled": coverage, "generate-duplicate-query-parameters": False},
        },
    }


@pytest.fixture(scope="module")
def quick_schema(fuzz: Fuzz) -> OpenApiSchema:
    # Deterministic: the default run sends the same requests every time.
    return _schema(fuzz, _config(QUICK, coverage=False, deterministic=True))


@pytest.fixture(scope="module")
def thorough_schema(fuzz: Fuzz) -> OpenApiSchema:
    return _schema(fuzz, _config(THOROUGH, coverage=True, deterministic=False))


def _call(fx: Fuzz, case: Case) -> None:
    """Send ``case``; a valid one (by the schema) also gets a tamed twin (see ``_tame``).

    The twin is a case of its own, not a hook's rewrite: a hook could turn a negative body
    into a valid one while schemathesis still counts it as negative.
    """
    fx.seed()
    response = case.call()
    fx.record("single", case, response)
    case.validate_response(response, checks=CHECKS)
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    by = "vectors" if case.path_parameters.get("name") == MULTI else "vector"
    twin = case.operation.Case(
        path_parameters=case.path_parameters,
        headers=AUTH,
        query=case.query,
        body=_resize(_tame(copy.deepcopy(case.body), case.operation.path, by)),
        media_type=case.media_type,
    )
    response = twin.call()
    fx.record("tamed", twin, response)
    twin.validate_response(response, checks=CHECKS)


quick = schemathesis.pytest.from_fixture("quick_schema")
thorough = schemathesis.pytest.from_fixture("thorough_schema")


@quick.parametrize()
def test_every_operation(case: Case, fuzz: Fuzz) -> None:
    _call(fuzz, case)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # every operation runs as one test item
@thorough.parametrize()
def test_every_operation_thorough(case: Case, fuzz: Fuzz) -> None:
    _call(fuzz, case)


def _stateful(fx: Fuzz, schema: OpenApiSchema, scenarios: int, derandomize: bool = False) -> None:
    """Chains of calls along the links schemathesis infers from the schema (a created
    collection's name into its routes, a job's id into /jobs/{id}, ...).

    The app's state outlives each scenario, so replaying one does not always take the same
    path; hypothesis then calls the strategy flaky. Like schemathesis' own runner, this
    collects check failures as they happen and takes a ``Flaky`` with none as a pass.
    """
    failures: list[str] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            fx.seed()

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            fx.record("stateful", case, response)

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            try:
                case.validate_response(
                    response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs or None
                )
            except Exception as exc:
                failures.append(f"{case.as_curl_command()}\n{exc}")
                raise

    run = settings(
        max_examples=scenarios,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        derandomize=derandomize,
    )
    try:
        Workflow.run(settings=run)
    except Flaky:
        if not failures:
            print(
                "\nstateful: ended early on a flaky replay (the app's state moved on), no failures"
            )
            return
    assert not failures, "\n\n".join(dict.fromkeys(failures))


def test_stateful(fuzz: Fuzz, quick_schema: OpenApiSchema) -> None:
    _stateful(fuzz, quick_schema, QUICK_SCENARIOS, derandomize=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_stateful_thorough(fuzz: Fuzz, thorough_schema: OpenApiSchema) -> None:
    _stateful(fuzz, thorough_schema, THOROUGH_SCENARIOS)
