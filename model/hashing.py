"""File digests (no torch import, so runtimes can verify files cheaply)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
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


def labelled_set_sha256(items: Iterable[tuple[str | Path, str]]) -> str:
    """One sha256 of labelled files, in any order and under any names: whether two folders hold the same images
    with the same labels (e.g. the test images a checkpoint was calibrated on)."""
    return digest_set_sha256((sha256_file(path), label) for path, label in items)


def digest_set_sha256(items: Iterable[tuple[str, str]]) -> str:
    """labelled_set_sha256 from the files' digests already taken."""
    h = hashlib.sha256()
    for line in sorted(f"{digest} {label}" for digest, label in items):
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")  # a type folder named in Latin-1 (its bytes kept as surrogates)
    return h.hexdigest()
