"""Watched folders fed hostile files: names that are not UTF-8 or hold control characters, entries named
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


def test_a_fifo_socket_or_folder_named_as_an_image_is_set_aside_and_said(tmp_path):
    """They were neither read nor said: each sat in the folder for good, and nothing told the line why."""
    import socket

    folder = in_folder(tmp_path)
    frames: list = []
    said: list = []
    w = watcher(folder, "move", frames)
    w.on_set_aside = lambda text, source, serial: said.append(text)  # before they are there: the thread is running
    os.mkfifo(folder / "fifo.png")
    (folder / "lot.png").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.png"))
    try:
        wait_until(lambda: len(said) == 3, 5, "the three set aside")
        drop(folder / "P1.png", png(good_image(1)))
        wait_until(lambda: frames, 5, "the next good file read")
    finally:
        w.stop()
        sock.close()
    assert sorted(os.listdir(folder / "rejected")) == ["fifo.png", "lot.png", "sock.png"]
    assert all("no regular file" in text for text in said) and [f.serial for f in frames] == ["P1"]


def test_a_file_swapped_for_a_fifo_after_it_was_listed_does_not_hang_the_watcher(tmp_path, monkeypatch):
    """Opened as a file, a FIFO put under its name blocked the watcher's thread for good (no writer ever came)."""
    import inspector.sources as sources

    folder = in_folder(tmp_path)
    real = sources.FolderWatcher._too_big

    def swapped(self, path):
        if path.name == "A.png" and not (folder / "rejected").exists():
            path.unlink()
            os.mkfifo(path)
        return real(self, path)

    monkeypatch.setattr(sources.FolderWatcher, "_too_big", swapped)
    drop(folder / "A.png", png(good_image(1)))
    frames: list = []
    w = watcher(folder, "move", frames)
    try:
        wait_until(lambda: (folder / "rejected" / "A.png").exists(), 5, "the FIFO set aside")
        drop(folder / "P2.png", png(good_image(2)))
        wait_until(lambda: frames, 5, "the next good file read")
    finally:
        if (folder / "A.png").exists():  # a watcher stuck in the FIFO's open: let it go
            os.close(os.open(folder / "A.png", os.O_WRONLY | os.O_NONBLOCK))
        w.stop()
    assert [f.serial for f in frames] == ["P2"]


def test_a_file_grown_past_the_limit_after_it_was_measured_is_not_read_whole(tmp_path, monkeypatch):
    import inspector.sources as sources
    from inspector.config import FolderSource
    from inspector.sources import FolderWatcher

    folder = in_folder(tmp_path)
    real = sources.FolderWatcher._too_big

    def grown(self, path):
        over = real(self, path)
        if path.name == "A.png":
            with open(path, "ab") as f:
                f.write(bytes(200_000))
        return over

    monkeypatch.setattr(sources.FolderWatcher, "_too_big", grown)
    drop(folder / "A.png", png(good_image(1)))
    frames: list = []
    w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.05, settle_s=0.0, after="move", max_file_bytes=100_000))
    w.start(lambda f: frames.append(f) or f.done(True) or True)
    try:
        wait_until(lambda: (folder / "rejected" / "A.png").exists(), 5, "the grown file set aside")
        drop(folder / "P2.png", png(good_image(2)))
        wait_until(lambda: frames, 5, "the next good file read")
    finally:
        w.stop()
    assert [f.serial for f in frames] == ["P2"]


def test_a_video_path_that_is_a_folder_fifo_or_device_is_not_said_to_be_missing(tmp_path):
    import pytest

    from inspector.config import VideoSource
    from inspector.sources import OpenCVSource
    from model.errors import InspectorError

    os.mkfifo(tmp_path / "fifo.avi")
    (tmp_path / "dir.avi").mkdir()
    (tmp_path / "zero.avi").symlink_to("/dev/zero")
    for name in ("fifo.avi", "dir.avi", "zero.avi"):
        with pytest.raises(InspectorError, match="no regular file"):
            OpenCVSource(VideoSource(type="video", path=str(tmp_path / name)))
    with pytest.raises(InspectorError, match="no such video file"):
        OpenCVSource(VideoSource(type="video", path=str(tmp_path / "none.avi")))
