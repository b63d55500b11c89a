"""Shared benchmark output: JSON results and the marked sections of ``BENCHMARKS.md``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dirty() -> bool:
    """True when index/ or bench/ differ from the commit the figures are attributed to."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "index", "bench"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return True
    return bool(out.stdout.strip())


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def update_section(name: str, markdown: str, path: Path = BENCHMARKS) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (appended
    at the end when the markers are absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def publish(section: str, result: dict[str, Any], text: str, out: Path, md: Path | None) -> None:
    """Write ``result`` to ``out`` and ``text`` as the ``section`` of ``md`` (a tiny or
    exploratory run passes no ``md`` and gets the text printed instead)."""
    write_json(out, result)
    if md:
        update_section(section, text, md)
        print(f"wrote {out} and the {section} section of {md}")
    else:
        print(text)
        print(f"wrote {out} (commit {str(result.get('commit', ''))[:10]})")
