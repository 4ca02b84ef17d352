"""File digests (no torch import, so runtimes can verify files cheaply)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from model.errors import InspectorError


def sha256_file(path: str | Path) -> str:
    """A file's sha256; an unreadable file (permissions, I/O error) ends in one line naming it."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise InspectorError(f"file {path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    return h.hexdigest()
