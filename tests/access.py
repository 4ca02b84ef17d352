"""Running test code as a user with less access than the test's: the denials are the operating system's, not simulated.

Run as root, the code runs in a forked child that drops to uid/gid 65534 (nobody); the modules it needs must be loaded
before (on some machines the Python installation is private to root). Run as anyone else, the child keeps the user,
and the files are made read-only to it instead (`read_only`); only a folder its owner cannot enter needs root.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from model.errors import InspectorError

NOBODY = 65534
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can make a folder its owner cannot enter")


def fork() -> int:
    """os.fork(), its child with the garbage collector off: a collection there finalised an onnxruntime session an earlier
    test had left as garbage, whose destructor waited on a lock a thread of the parent held at the fork (a full run hung
    so). The parent collects first, where such a finaliser runs safely."""
    gc.collect()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        gc.disable()
    return pid


def as_other_user(fn: Callable[[], object]) -> dict:
    """fn() in a forked child with less access: {"value": its value} or {"error": an InspectorError's text}."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                out = {"value": fn()}
            except InspectorError as exc:
                out = {"error": str(exc)}
            except BaseException as exc:
                out = {"crash": f"{type(exc).__name__}: {exc}"}
            os.write(w, json.dumps(out, default=str).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    out = json.loads(data)
    assert "crash" not in out, out["crash"]
    return out


def cli_as_other_user(main: Callable[[list[str]], int], *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `inspector ARGV` run by `as_other_user`."""
    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
        return rc, out.getvalue(), err.getvalue()

    return tuple(as_other_user(run)["value"])


def read_only(folder: Path, writable: bool = False) -> None:
    """Leave `folder` and its files readable by all and (unless `writable`) writable by none but root."""
    folder.chmod(0o777 if writable else 0o555)
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o444)
