"""``innerspace import`` and ``innerspace jobs``: client commands against a running server."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.jobs.imports import detect_format

console = Console(stderr=True)


def follow(client: httpx.Client, job_id: str) -> Iterator[dict[str, Any]]:
    """Yield the job as its Server-Sent Events stream reports it, ending with its final state."""
    with client.stream("GET", f"/jobs/{job_id}/events", timeout=None) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def watch(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """Show a progress bar for ``job`` until it ends; returns the final job."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    final = job
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{job['kind']} {job['collection']}", total=None, rate="", count="")
        for state in follow(client, job["id"]):
            final = state
            rate = f"{state['rate_per_s']:,.0f}/s" if state.get("rate_per_s") else ""
            total = state["total"]
            count = f"{state['done']:,}" + ("" if total is None else f"/{total:,}")
            bar.update(
                task,
                count=count,
                description=f"{state['kind']} {state['collection']}: {state['phase']}",
                completed=state["done"],
                total=state["total"],
                rate=rate,
            )
    return final


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization`` for ``--api-key`` (default ``$INNERSPACE_API_KEY``), if any."""
    key = api_key or os.environ.get("INNERSPACE_API_KEY")
    return {"authorization": f"Bearer {key}"} if key else {}


def import_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt = detect_format(str(path), args.format)
    headers = auth_headers(args.api_key)
    with httpx.Client(base_url=args.url, timeout=300, headers=headers) as client:
        if args.server_path:
            r = client.post(
                f"/collections/{args.collection}/import",
                json={"path": str(path.resolve()), "format": fmt},
            )
        else:
            with open(path, "rb") as fh:
                r = client.post(
                    f"/collections/{args.collection}/import/upload",
                    params={"format": fmt},
                    content=iter(lambda: fh.read(1 << 20), b""),
                )
        if r.status_code != 202:
            console.print(f"[red]{r.status_code}[/red] {r.json().get('message', r.text)}")
            return 1
        final = watch(client, r.json())
    result = final.get("result") or {}
    if final["state"] != "succeeded":
        console.print(f"[red]{final['state']}[/red]: {final.get('error')}")
        return 1
    console.print(f"imported {result['imported']:,}, failed {result['failed']:,}")
    for err in result.get("errors", [])[:20]:
        console.print(f"  line {err['line']}: {err['error']}")
    return 0


def jobs_command(args: argparse.Namespace) -> int:
    params = {k: v for k, v in {"collection": args.collection, "state": args.state}.items() if v}
    r = httpx.get(f"{args.url}/jobs", params=params, timeout=30, headers=auth_headers(args.api_key))
    if r.status_code != 200:
        console.print(f"[red]{r.status_code}[/red] {r.json().get('message', r.text)}")
        return 1
    table = Table("id", "kind", "collection", "state", "phase", "done", "total", "error")
    for j in r.json()["jobs"]:
        table.add_row(
            j["id"],
            j["kind"],
            j["collection"],
            j["state"],
            j["phase"],
            str(j["done"]),
            "" if j["total"] is None else str(j["total"]),
            j["error"] or "",
        )
    Console().print(table)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``import`` and ``jobs`` on the CLI's subparsers."""
    url = {
        "default": os.environ.get("INNERSPACE_URL", "http://127.0.0.1:8000"),
        "help": "server URL (default $INNERSPACE_URL or %(default)s)",
    }
    key = {"help": "API key (default $INNERSPACE_API_KEY)"}
    imp = sub.add_parser("import", help="import a file (NDJSON, .npy, Parquet) with progress")
    imp.add_argument("file")
    imp.add_argument("--collection", required=True)
    imp.add_argument("--format", choices=["ndjson", "npy", "parquet"])
    imp.add_argument("--url", **url)
    imp.add_argument("--api-key", **key)
    imp.add_argument(
        "--server-path", action="store_true", help="the file is on the server: send its path"
    )
    imp.set_defaults(func=import_command)
    jobs = sub.add_parser("jobs", help="list background jobs")
    jobs.add_argument("--collection")
    jobs.add_argument("--state")
    jobs.add_argument("--url", **url)
    jobs.add_argument("--api-key", **key)
    jobs.set_defaults(func=jobs_command)
