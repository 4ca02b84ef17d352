"""Watched folders fed hostile files (audit 53): names that are not UTF-8 or hold control characters, entries named
as images that are no regular file, a file swapped for a FIFO or a device link after it was listed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.inspector.conftest import png, wait_until
from tests.inspector.test_sources import drop, watcher
from tests.synthetic import good_image


def in_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


def test_a_file_whose_name_is_not_utf8_or_holds_a_newline_is_inspected_and_the_watcher_goes_on(tmp_path):
    """A name of bytes that are not UTF-8 (b'\\xff') ended the watcher's thread (its id's .encode() refused it) while
    /health still read `watching`: no later file was ever read. A newline in a name forged a line in the log."""
    folder = in_folder(tmp_path)
    frames: list = []
    drop(folder / os.fsdecode(b"bad\xff\xfe.png"), png(good_image(1)))
    drop(folder / "two\nlines\x1b[31m.png", png(good_image(2)))
    w = watcher(folder, "move", frames)
    try:
        wait_until(lambda: len(frames) == 2, 5, "both odd names read")
        drop(folder / "P3.png", png(good_image(3)))
        wait_until(lambda: len(frames) == 3, 5, "the next good file read")
        assert w._thread.is_alive()
    finally:
        w.stop()
    shown = sorted(f.source for f in frames)
    assert shown == ["folder:P3.png", "folder:bad\\xff\\xfe.png", "folder:two\\nlines\\x1b[31m.png"]
    assert all(s.isprintable() and s.encode("utf-8") for s in shown)  # the store, the broker and the log take them
    assert len({f.inspection_id for f in frames}) == 3
    assert sorted(os.listdir(folder / "done")) == sorted(["P3.png", os.fsdecode(b"bad\xff\xfe.png"), "two\nlines\x1b[31m.png"])
