"""Model files on disk: existence checks with clear errors, and content fingerprints."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from encoders.base import EncoderError

_lock = threading.Lock()
#: sha256 by (path, size, mtime): a 23 MB model hashes in ~50 ms, but specs are re-resolved often.
_digests: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """sha256 hex of a file's bytes (cached while its size and mtime are unchanged)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _digests:
            return _digests[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _lock:
        _digests[key] = digest
    return digest


def fingerprint(files: Mapping[str, Path]) -> str:
    """One sha256 over named files: of the lines ``"<name> <sha256 of the file>"``, sorted.

    Names are paths relative to the model directory, never absolute, so a copy of a model has
    the fingerprint of the original and ``onnx:<dir>`` over MiniLM's files matches ``minilm``.
    """
    lines = sorted(f"{name} {sha256_file(path)}\n" for name, path in files.items())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`EncoderError` unless ``path`` exists and hashes to ``expected``."""
    if not path.is_file():
        raise EncoderError(f"model file {path} does not exist")
    actual = sha256_file(path)
    if actual != expected:
        raise EncoderError(
            f"model file {path} has sha256 {actual}, expected {expected}: the file is corrupt "
            "or another version is installed; reinstall the package that provides it"
        )


def require_dir(path: Path, needs: Iterable[str], kind: str) -> None:
    """Raise :class:`EncoderError` unless ``path`` is a directory holding all of ``needs``."""
    if not path.is_dir():
        raise EncoderError(f"{kind} model directory {path} does not exist or is not a directory")
    missing = [n for n in needs if not (path / n).is_file()]
    if missing:
        raise EncoderError(f"{kind} model directory {path} lacks {', '.join(missing)}")
