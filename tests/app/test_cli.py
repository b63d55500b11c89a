"""The ``innerspace`` CLI against a real server: import with a progress bar, list jobs."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import Server

from app.cli import build_parser, main
from app.store.keys import KeyStore


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("innerspace")
    cmd = [exe] if exe else [sys.executable, "-m", "app"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("server_path", [False, True])
def test_import_and_jobs(tmp_path: Path, server_path: bool) -> None:
    srv = Server(tmp_path / "data").start()
    try:
        httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": 3})
        f = tmp_path / "points.ndjson"
        lines = [json.dumps({"id": i, "vector": [i, 1, 2]}) for i in range(2500)]
        f.write_text("\n".join(lines + ['{"id": "bad", "vector": [1]}']) + "\n")
        extra = ["--server-path"] if server_path else []
        r = cli("import", str(f), "--collection", "c", "--url", srv.url, *extra)
        assert r.returncode == 0, r.stderr
        assert "imported 2,500, failed 1" in r.stderr
        assert "line 2501" in r.stderr
        assert httpx.get(f"{srv.url}/collections/c").json()["count"] == 2500
        r = cli("jobs", "--url", srv.url)
        assert r.returncode == 0 and "import" in r.stdout and "succeeded" in r.stdout
        r = cli("import", str(f), "--collection", "nope", "--url", srv.url)
        assert r.returncode == 1 and "404" in r.stderr
    finally:
        srv.stop()


def _subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _subcommands(sub, (*prefix, name))
    return out


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _subcommands(build_parser())
    assert {("serve",), ("keys", "create"), ("keys", "list"), ("keys", "revoke"), ("search",),
            ("index",), ("import",), ("jobs",)} <= set(commands)  # fmt: skip
    for cmd in commands:
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: innerspace" in capsys.readouterr().out


def test_keys_on_the_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert (
        main(["keys", "create", "--role", "write", "--collection", "docs", "--data-dir", data]) == 0
    )
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("isk_") and "not shown again" in out.err
    key_id = token.split("_")[1]
    assert main(["keys", "list", "--json", "--data-dir", data]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["id"], k["role"], k["collection"]) for k in listed] == [(key_id, "write", "docs")]
    assert token not in json.dumps(listed)
    assert main(["keys", "list", "--data-dir", data]) == 0
    assert key_id in capsys.readouterr().out
    assert main(["keys", "revoke", key_id, "--data-dir", data]) == 0
    assert main(["keys", "revoke", "nope", "--data-dir", data]) == 1
    store = KeyStore(tmp_path / "data" / "catalog.sqlite")
    assert store.verify(token) is None
    store.close()


def test_search_index_and_keys_against_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = Server(tmp_path / "data", INNERSPACE_AUTH="on", INNERSPACE_ADMIN_KEY="root").start()
    try:
        auth = {"api-key": "root"}
        httpx.post(f"{srv.url}/collections", json={"name": "c", "dim": 3}, headers=auth)
        pts = [{"id": i, "vector": [i, 1, 0], "payload": {"i": i}} for i in range(50)]
        httpx.put(f"{srv.url}/collections/c/points", json={"points": pts}, headers=auth)
        remote = ["--url", srv.url, "--api-key", "root"]
        assert main(["search", "c", "--vector", "[1, 0, 0]", "-k", "3", *remote]) == 0
        out = capsys.readouterr()
        assert "49" in out.out and "48" in out.out and "3 hits, exact" in out.err
        assert main(["search", "c", "--id", "3", "-k", "2", "--json", *remote]) == 0
        assert [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]] == [49, 48]
        assert main(["search", "c", "-k", "2", *remote]) == 2  # no query given
        assert main(["search", "c", "--vector", "[1]", *remote]) == 1  # 422 from the server
        assert "422" in capsys.readouterr().err
        assert (
            main(["search", "c", "--vector", "[1, 0, 0]", "--url", srv.url, "--api-key", ""]) == 1
        )
        assert "401" in capsys.readouterr().err
        assert main(["index", "c", "HNSW(m=8)", *remote]) == 0
        assert "built HNSW(m=8" in capsys.readouterr().err
        body = {"name": "late", "dim": 3, "multivector": True}
        httpx.post(f"{srv.url}/collections", json=body, headers=auth)
        pts = [{"id": i, "vectors": [[i, 1, 0], [0, 0, 1]]} for i in range(10)]
        httpx.put(f"{srv.url}/collections/late/points", json={"points": pts}, headers=auth)
        q = ["--vectors", "[[1, 0, 0], [0, 0, 1]]", "--params", '{"exact": true}', "--json"]
        assert main(["search", "late", *q, "-k", "2", *remote]) == 0
        assert [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]] == [9, 8]
        assert main(["keys", "create", "--role", "read", *remote]) == 0
        token = capsys.readouterr().out.strip()
        assert main(["keys", "list", "--json", *remote]) == 0
        assert token.split("_")[1] in capsys.readouterr().out
        r = cli("jobs", "--url", srv.url, "--api-key", token)
        assert r.returncode == 0 and "build" in r.stdout, r.stderr
        assert cli("jobs", "--url", srv.url).returncode == 1  # no key
    finally:
        srv.stop()
