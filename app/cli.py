"""``innerspace`` command line: ``serve``, ``import``, ``jobs``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import app as app_pkg
from app.cli_jobs import add_commands


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.app import create_app
    from app.config import Settings

    overrides = {
        k: v
        for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir}.items()
        if v is not None
    }
    settings = Settings(**overrides)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One process owns the data directory: the WAL and segments have a single writer.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="innerspace", description=__doc__)
    parser.add_argument("--version", action="version", version=app_pkg.__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server on the embedded store")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, INNERSPACE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, INNERSPACE_PORT)")
    serve.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    serve.set_defaults(func=_serve)
    add_commands(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
