"""Output folders and files: folders checked before any long work (a bad --out should cost seconds, not a fit), files written whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from model.errors import InspectorError


def writable_folder(path: str | Path, flag: str = "--out", keep: bool = True) -> Path:
    """Make sure files can be written into the folder `path`, making it (and its parents) if missing; one-line
    InspectorError naming `flag` if not. keep=False removes again the folders it made (a check, no side effect)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InspectorError(f"{flag} {out}: is a file; give a folder")
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise InspectorError(f"{flag} {out}: cannot be written ({exc.strerror or exc}); choose a writable folder") from None
    if not keep:
        for p in made:  # deepest first
            p.rmdir()
    return out


def replace_file(path: Path, data: bytes) -> None:
    """Write through a temporary file of this process's own (two writers at once must not share one), so a
    reader never sees half a file; the file's mode follows the umask, as any file the user writes."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        if tmp.is_file():
            tmp.unlink()
        raise
