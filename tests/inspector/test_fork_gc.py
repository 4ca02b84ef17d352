"""A forked child (a multiprocessing worker) inherits no garbage to collect once onnxruntime engines are in use: a session
finalised in the child waited on a lock a thread of the parent held at the fork, for ever (a full test run hung so)."""

from __future__ import annotations

import gc
import os

import pytest


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_garbage_is_collected_in_the_parent_before_a_fork():
    import inspector.engines.onnx_engine  # noqa: F401 - registers the collection before each fork

    finalised: list[int] = []

    class Cycle:
        def __del__(self) -> None:
            finalised.append(os.getpid())

    gc.disable()  # no automatic collection between the cycle's making and the fork
    try:
        cycle = Cycle()
        cycle.me = cycle
        del cycle
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            gc.collect()
            os.write(w, repr(finalised).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            seen_in_child = f.read()
        os.waitpid(pid, 0)
    finally:
        gc.enable()
    assert finalised == [os.getpid()] and seen_in_child == repr([os.getpid()]).encode()  # in the parent, before the fork
