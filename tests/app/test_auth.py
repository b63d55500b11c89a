"""API keys: hashing and revocation, when auth is on, and every route's role (from OpenAPI)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import Server, wait_ready

from app.api.app import create_app
from app.auth import auth_required, is_loopback
from app.config import Settings
from app.store.keys import KeyStore

ROOT = "root-secret-for-tests"

#: Open routes: no key, ever.
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}

#: The least role every other route needs. A route missing here fails
#: ``test_every_route_is_classified``, so a new route cannot slip through unprotected.
ROLE = {
    ("POST", "/collections"): "write",
    ("GET", "/collections"): "read",
    ("GET", "/collections/{name}"): "read",
    ("DELETE", "/collections/{name}"): "admin",
    ("POST", "/collections/{name}/flush"): "write",
    ("PUT", "/collections/{name}/points"): "write",
    ("GET", "/collections/{name}/points/{point_id}"): "read",
    ("POST", "/collections/{name}/points/delete"): "write",
    ("POST", "/collections/{name}/points/scroll"): "read",
    ("POST", "/collections/{name}/points/count"): "read",
    ("POST", "/collections/{name}/search"): "read",
    ("POST", "/collections/{name}/search/batch"): "read",
    ("POST", "/collections/{name}/query"): "read",
    ("POST", "/collections/{name}/pipelines"): "write",
    ("GET", "/collections/{name}/pipelines"): "read",
    ("DELETE", "/collections/{name}/pipelines/{pipeline}"): "write",
    ("GET", "/collections/{name}/quality"): "read",
    ("POST", "/collections/{name}/evaluate"): "read",
    ("POST", "/collections/{name}/index"): "write",
    ("POST", "/collections/{name}/compact"): "write",
    ("POST", "/collections/{name}/snapshots"): "write",
    ("GET", "/collections/{name}/snapshots"): "read",
    ("POST", "/collections/{name}/snapshots/{snapshot_id}/restore"): "admin",
    ("DELETE", "/collections/{name}/snapshots/{snapshot_id}"): "admin",
    ("POST", "/collections/{name}/import"): "admin",  # reads a file on the server
    ("POST", "/collections/{name}/import/upload"): "write",
    ("GET", "/jobs"): "read",
    ("GET", "/jobs/{job_id}"): "read",
    ("POST", "/jobs/{job_id}/cancel"): "write",
    ("GET", "/jobs/{job_id}/events"): "read",
    ("POST", "/encode"): "read",
    ("POST", "/keys"): "admin",
    ("GET", "/keys"): "admin",
    ("DELETE", "/keys/{key_id}"): "admin",
}
WEAKER = {"admin": "write", "write": "read"}


def _operations() -> list[tuple[str, str]]:
    spec = create_app(Settings(data_dir=Path("/nonexistent"))).openapi()
    return sorted(
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    )


OPERATIONS = _operations()
PROTECTED = [op for op in OPERATIONS if op not in OPEN]


def test_every_route_is_classified() -> None:
    assert set(OPERATIONS) == OPEN | set(ROLE), "classify new routes in ROLE (or OPEN)"
    assert len(PROTECTED) >= 20


class Secured:
    """An app with auth on, a collection ``c``, a job on it and keys of every kind."""

    def __init__(self, client: TestClient) -> None:
        self.c = client
        root = {"authorization": f"Bearer {ROOT}"}
        assert client.post("/collections", json={"name": "c", "dim": 3}, headers=root).status_code
        self.job = client.post("/collections/c/compact", headers=root).json()["id"]
        self.keys = {
            (role, scope): client.post(
                "/keys", json={"role": role, "collection": scope}, headers=root
            ).json()["key"]
            for role in ("read", "write", "admin")
            for scope in (None, "c", "other")
        }

    def url(self, path: str) -> str:
        return path.format(
            name="c",
            point_id="1",
            job_id=self.job,
            key_id="nokey",
            snapshot_id="nosnap",
            pipeline="nopipe",
        )

    def call(self, op: tuple[str, str], key: str | None) -> httpx.Response:
        method, path = op
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        body = {} if method in ("POST", "PUT") else None
        return self.c.request(method, self.url(path), json=body, headers=headers)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    settings = Settings(data_dir=tmp_path / "data", auth="on", admin_key=ROOT)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield Secured(c)


@pytest.mark.parametrize("op", PROTECTED, ids=lambda op: f"{op[0]} {op[1]}")
def test_protected_route_refuses_missing_and_weak_keys(
    secured: Secured, op: tuple[str, str]
) -> None:
    r = secured.call(op, None)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert secured.call(op, "isk_000000000000_not-a-key").status_code == 401
    role = ROLE[op]
    if role in WEAKER:
        r = secured.call(op, secured.keys[(WEAKER[role], None)])
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "forbidden"
    if "{name}" in op[1] or "{job_id}" in op[1] or op[1] == "/keys" or "{key_id}" in op[1]:
        # the right role, limited to another collection (keys: any collection scope)
        r = secured.call(op, secured.keys[(role, "other")])
        assert r.status_code == 403, r.text
    # the least role that should do is let through (whatever the handler then says)
    r = secured.call(op, secured.keys[(role, None)])
    assert r.status_code not in (401, 403), r.text


def test_open_routes_need_no_key(secured: Secured) -> None:
    for op in sorted(OPEN):
        assert secured.call(op, None).status_code == 200, op


def test_api_key_header_and_scoped_views(secured: Secured) -> None:
    c = secured.c
    scoped = secured.keys[("read", "c")]
    assert c.get("/collections/c", headers={"api-key": scoped}).status_code == 200
    assert c.get("/collections/c", headers={"authorization": f"bearer {scoped}"}).status_code == 200
    assert c.get("/collections/c", headers={"authorization": f"Basic {scoped}"}).status_code == 401
    # a scoped key sees only its collection in lists
    root = {"authorization": f"Bearer {ROOT}"}
    c.post("/collections", json={"name": "d", "dim": 3}, headers=root)
    names = [
        x["name"] for x in c.get("/collections", headers={"api-key": scoped}).json()["collections"]
    ]
    assert names == ["c"]
    jobs = c.get("/jobs", headers={"api-key": secured.keys[("read", "other")]}).json()["jobs"]
    assert jobs == []
    assert c.get("/jobs?collection=c", headers={"api-key": scoped}).status_code == 200
    # a scoped write key may create its own collection, not another
    w = {"api-key": secured.keys[("write", "other")]}
    assert c.post("/collections", json={"name": "d2", "dim": 3}, headers=w).status_code == 403
    assert c.post("/collections", json={"name": "other", "dim": 3}, headers=w).status_code == 201
    # a scoped admin key may delete its collection but not manage keys
    a = {"api-key": secured.keys[("admin", "other")]}
    assert c.get("/keys", headers=a).status_code == 403
    assert c.delete("/collections/other", headers=a).status_code == 204


def test_revoked_key_is_refused_at_once(secured: Secured) -> None:
    c = secured.c
    root = {"authorization": f"Bearer {ROOT}"}
    key = secured.keys[("read", None)]
    assert c.get("/collections", headers={"api-key": key}).status_code == 200
    key_id = key.split("_")[1]
    r = c.delete(f"/keys/{key_id}", headers=root)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert c.get("/collections", headers={"api-key": key}).status_code == 401
    listed = {k["id"]: k for k in c.get("/keys", headers=root).json()["keys"]}
    assert listed[key_id]["revoked_at"] is not None and "key" not in listed[key_id]
    assert c.delete("/keys/nokey", headers=root).status_code == 404


def test_keys_are_stored_hashed(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "catalog.sqlite")
    key, token = store.create("write", "docs", "ci")
    assert token.startswith("isk_") and key.id in token
    verified = store.verify(token)
    assert verified is not None and (verified.id, verified.role) == (key.id, "write")
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify("isk_" + key.id) is None and store.verify("") is None
    assert store.verify(f"isk_{'0' * 12}_{token.split('_', 2)[2]}") is None
    other, token2 = store.create("read")
    store.close()
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    rows = db.execute("SELECT id, salt, hash FROM api_keys").fetchall()
    db.close()
    assert len({r[1] for r in rows}) == 2  # a salt per key
    raw = (tmp_path / "catalog.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("catalog.sqlite-*")
    )
    for t in (token, token2):
        assert t.split("_", 2)[2].encode() not in raw
    store = KeyStore(tmp_path / "catalog.sqlite")
    assert store.revoke(other.id) is not None and store.verify(token2) is None
    assert store.revoke("nope") is None
    assert store.active_count() == 1
    store.close()


@pytest.mark.parametrize(
    ("host", "mode", "required"),
    [
        ("127.0.0.1", "auto", False),
        ("localhost", "auto", False),
        ("::1", "auto", False),
        ("0.0.0.0", "auto", True),
        ("::", "auto", True),
        ("10.1.2.3", "auto", True),
        ("127.0.0.1", "on", True),
        ("0.0.0.0", "off", False),
    ],
)
def test_when_keys_are_required(host: str, mode: str, required: bool) -> None:
    assert auth_required(Settings(host=host, auth=mode)) is required  # type: ignore[arg-type]


def test_loopback() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("") and not is_loopback("example.com")


def test_auth_off_by_default_on_loopback(client: TestClient) -> None:
    assert client.get("/collections").status_code == 200
    assert client.post("/collections", json={"name": "c", "dim": 3}).status_code == 201
    assert client.delete("/collections/c").status_code == 204


def test_auto_requires_keys_on_all_interfaces(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", host="0.0.0.0")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.get("/collections").status_code == 401
        assert c.get("/healthz").status_code == 200


def test_served_on_all_interfaces_needs_a_key(tmp_path: Path) -> None:
    """A real ``innerspace serve --host 0.0.0.0``: keys made with the CLI's store work."""
    store = KeyStore(tmp_path / "data" / "catalog.sqlite")
    _, token = store.create("read")
    store.close()
    srv = Server(tmp_path / "data", host="0.0.0.0").start()
    try:
        assert httpx.get(f"{srv.url}/collections").status_code == 401
        r = httpx.get(f"{srv.url}/collections", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200
        r = httpx.post(
            f"{srv.url}/collections", json={"name": "x", "dim": 2}, headers={"api-key": token}
        )
        assert r.status_code == 403
    finally:
        srv.stop()
