"""``innerspace`` command line: ``serve``, ``keys``, ``search``, ``index``, ``import``, ``jobs``,
``train-hypencoder``, ``bench``.

Client commands talk to a running server (``--url``, default ``$INNERSPACE_URL`` or
http://127.0.0.1:8000) with ``--api-key`` (default ``$INNERSPACE_API_KEY``). ``keys`` works on
the data directory directly (the way to make the first admin key), or on a server with ``--url``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import app as app_pkg
from app.cli_jobs import add_commands, watch
from app.cli_train import add_train

err = Console(stderr=True)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app import logs
    from app.api.app import create_app
    from app.config import Settings

    given = {"host": args.host, "port": args.port, "data_dir": args.data_dir, "auth": args.auth}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    logs.configure(settings.log_level, settings.log_format)
    # One process owns the data directory: the WAL and segments have a single writer.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep the JSON handler from logs.configure
        access_log=False,  # app.logs.RequestLog writes the access log, with request ids
        timeout_graceful_shutdown=10,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


# ---- keys ---------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _local_keys(args: argparse.Namespace) -> Any:
    from app.config import Settings
    from app.store.keys import KeyStore

    data_dir = Path(args.data_dir) if args.data_dir else Path(Settings().data_dir)
    return KeyStore(data_dir / "catalog.sqlite")


def _remote(args: argparse.Namespace) -> Any:
    from app.client import Client

    return Client(args.url or _default_url(), api_key=args.api_key)


def _keys_create(args: argparse.Namespace) -> int:
    if args.url:
        with _remote(args) as c:
            created = c.create_key(args.role, args.collection, args.name)
        key_id, token = created.id, created.key
    else:
        store = _local_keys(args)
        try:
            record, token = store.create(args.role, args.collection, args.name)
        finally:
            store.close()
        key_id = record.id
    scope = f"collection {args.collection!r}" if args.collection else "every collection"
    err.print(f"created {args.role} key [bold]{key_id}[/bold] for {scope}")
    err.print("[yellow]store it now: the key is not shown again[/yellow]")
    print(token)  # noqa: T201 - the one thing on stdout, for scripts
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    if args.url:
        with _remote(args) as c:
            keys = [k.model_dump() for k in c.list_keys()]
    else:
        store = _local_keys(args)
        try:
            keys = [k.public() for k in store.list()]
        finally:
            store.close()
    if args.json:
        print(json.dumps(keys, indent=2))  # noqa: T201
        return 0
    table = Table("id", "role", "collection", "name", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k["id"],
            k["role"],
            k["collection"] or "*",
            k["name"] or "",
            _when(k["created_at"]),
            _when(k["last_used_at"]),
            _when(k["revoked_at"]),
        )
    Console().print(table)
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    if args.url:
        with _remote(args) as c:
            c.revoke_key(args.key_id)
    else:
        store = _local_keys(args)
        try:
            if store.revoke(args.key_id) is None:
                err.print(f"[red]no key {args.key_id!r}[/red]")
                return 1
        finally:
            store.close()
    err.print(f"revoked {args.key_id}")
    return 0


# ---- search and index ---------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    given = [x is not None for x in (args.vector, args.vectors, args.text, args.id)]
    if sum(given) != 1:
        err.print("[red]give exactly one of --vector, --vectors, --text, --id[/red]")
        return 2
    point_id: int | str | None = args.id
    if args.id is not None and args.id.isdigit():
        point_id = int(args.id)
    with _remote(args) as c:
        res = c.search(
            args.collection,
            vector=json.loads(args.vector) if args.vector else None,
            id=point_id,
            text=args.text,
            k=args.k,
            filter=json.loads(args.filter) if args.filter else None,
            with_payload=not args.no_payload,
            vectors=json.loads(args.vectors) if args.vectors else None,
            params=json.loads(args.params) if args.params else None,
        )
    if args.json:
        print(res.model_dump_json(exclude_none=True, indent=2))  # noqa: T201
        return 0
    table = Table("#", "id", "score", "payload", title=f"{args.collection}: top {args.k}")
    for rank, hit in enumerate(res.hits, 1):
        payload = "" if hit.payload is None else json.dumps(hit.payload, ensure_ascii=False)
        if len(payload) > 120:
            payload = payload[:117] + "..."
        table.add_row(str(rank), str(hit.id), f"{hit.score:.6g}", payload)
    Console().print(table)
    exact = "exact" if res.exact else "approximate"
    err.print(f"{len(res.hits)} hits, {exact}, {res.took_ms:.2f} ms")
    return 0


def _index(args: argparse.Namespace) -> int:
    with _remote(args) as c:
        job = c.build_index(args.collection, args.spec)
        if args.no_wait:
            print(job.id)  # noqa: T201
            return 0
        final = watch(c.http, job.model_dump())
    if final["state"] != "succeeded":
        err.print(f"[red]{final['state']}[/red]: {final.get('error')}")
        return 1
    result = final.get("result") or {}
    err.print(
        f"built {result.get('spec', args.spec)} over {result.get('vectors', 0):,} vectors "
        f"in {result.get('build_s', 0.0):.1f} s"
    )
    return 0


# ---- parser -------------------------------------------------------------------------------


def _default_url() -> str:
    return os.environ.get("INNERSPACE_URL", "http://127.0.0.1:8000")


def _client_args(p: argparse.ArgumentParser, url_default: bool = True) -> None:
    p.add_argument(
        "--url",
        default=_default_url() if url_default else None,
        help="server URL (default $INNERSPACE_URL or http://127.0.0.1:8000)"
        if url_default
        else "manage keys on this server instead of the local data directory",
    )
    p.add_argument("--api-key", help="API key (default $INNERSPACE_API_KEY)")


def _add_keys(sub: Any) -> None:
    keys = sub.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="API keys, stored hashed in the data directory's catalog. Without --url "
        "the commands work on the data directory itself (run them where the server's data "
        "lives; the server need not be running).",
    )
    ksub = keys.add_subparsers(dest="keys_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir", type=Path, help="data directory (default $INNERSPACE_DATA_DIR)"
        )
        _client_args(p, url_default=False)

    create = ksub.add_parser("create", help="create a key and print it (once) on stdout")
    create.add_argument("--role", required=True, choices=["read", "write", "admin"])
    create.add_argument("--collection", help="limit the key to this collection")
    create.add_argument("--name", help="a label shown by `keys list`")
    common(create)
    create.set_defaults(func=_keys_create)
    lst = ksub.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common(lst)
    lst.set_defaults(func=_keys_list)
    revoke = ksub.add_parser("revoke", help="revoke a key by id, effective at once")
    revoke.add_argument("key_id")
    common(revoke)
    revoke.set_defaults(func=_keys_revoke)


def _add_search(sub: Any) -> None:
    p = sub.add_parser("search", help="search a collection and print the hits as a table")
    p.add_argument("collection")
    p.add_argument("--vector", help="query vector as JSON, e.g. '[0.1, 0.2, 0.3]'")
    p.add_argument("--vectors", help="query token vectors as JSON (multi-vector collections)")
    p.add_argument("--params", help="index search parameters as JSON, e.g. '{\"exact\": true}'")
    p.add_argument("--text", help="query text (the collection needs an encoder)")
    p.add_argument("--id", help="search with this stored point's vector")
    p.add_argument("-k", type=int, default=10, help="hits to return (default %(default)s)")
    p.add_argument("--filter", help="payload filter as JSON, e.g. '{\"must\": [...]}'")
    p.add_argument("--no-payload", action="store_true", help="leave payloads out")
    p.add_argument("--json", action="store_true", help="print the response as JSON")
    _client_args(p)
    p.set_defaults(func=_search)


def _add_index(sub: Any) -> None:
    p = sub.add_parser("index", help="(re)build a collection's index, with a progress bar")
    p.add_argument("collection")
    p.add_argument("spec", help="index spec, e.g. 'HNSW(m=32)' or 'Flat'")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")
    _client_args(p)
    p.set_defaults(func=_index)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="innerspace",
        description="Innerspace: maximum inner product search as a service. Client commands "
        "use --url (default $INNERSPACE_URL) and --api-key (default $INNERSPACE_API_KEY); "
        "`innerspace COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=app_pkg.__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server on the embedded store")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, INNERSPACE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, INNERSPACE_PORT)")
    serve.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    serve.add_argument(
        "--auth",
        choices=["off", "on", "auto"],
        help="require API keys (default auto: when --host is not loopback; INNERSPACE_AUTH)",
    )
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="private key of --ssl-certfile (PEM)")
    serve.set_defaults(func=_serve)
    _add_keys(sub)
    _add_search(sub)
    _add_index(sub)
    add_commands(sub)
    add_train(sub)
    _add_bench(sub)
    return parser


#: The benchmarks ``innerspace bench`` runs (modules of the checkout's ``bench/`` package).
BENCHMARKS = ("flat", "http", "jobs", "text", "encoders", "binary", "muvera", "peers")


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    # `python -m` puts the working directory first on sys.path: bench/ must be right here.
    if not (Path.cwd() / "bench" / "__init__.py").is_file():
        err.print("benchmarks live in the source checkout: run this from the repository root")
        return 2
    cmd = [sys.executable, "-m", f"bench.{args.name}", *args.args]
    return subprocess.run(cmd, check=False).returncode


def _add_bench(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark (python -m bench.NAME) and update BENCHMARKS.md",
        description="Each benchmark takes --tiny for a seconds-long smoke run; "
        "`innerspace bench NAME -- --help` shows its own options.",
    )
    p.add_argument("name", choices=BENCHMARKS)
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    p.set_defaults(func=_bench)


def main(argv: Sequence[str] | None = None) -> int:
    from app.client import ApiError

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ApiError as exc:
        err.print(f"[red]{exc.status}[/red] {exc.code}: {exc.message}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
