"""Frame sources without a broker: video replay, capture freshness, folder watching, stream reconnects."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inspector.config import FolderSource, StreamSource, VideoSource
from inspector.sources import FolderWatcher, OpenCVSource, open_source
from model.errors import InspectorError
from tests.inspector.conftest import MJPEGServer, png, wait_until, write_video
from tests.synthetic import good_image


def bright_rows(rgb: np.ndarray) -> int:
    """write_video marks frame i with 2*i white rows at the top."""
    return int((rgb.mean(axis=(1, 2)) > 250).sum())


def test_video_replayed_as_fast_as_possible_reads_every_frame_in_order(tmp_path):
    video = write_video(tmp_path / "v.avi", n=6)
    src = OpenCVSource(VideoSource(type="video", path=str(video), fps="max", loop=False))
    src.start(lambda f: True)
    assert [bright_rows(src.capture().rgb) // 2 for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(InspectorError, match="end of video"):
        src.capture()
    src.stop()
    looping = OpenCVSource(VideoSource(type="video", path=str(video), fps="max", loop=True))
    looping.start(lambda f: True)
    assert [bright_rows(looping.capture().rgb) // 2 for _ in range(8)] == [0, 1, 2, 3, 4, 5, 0, 1]
    looping.stop()


def test_video_continuous_submits_all_frames_and_waits_for_room(tmp_path):
    video = write_video(tmp_path / "v.avi", n=10)
    got, refusals = [], [0]

    def submit(frame):
        if refusals[0] < 3:  # the daemon is busy at first: the source must offer the same frame again
            refusals[0] += 1
            return False
        got.append(bright_rows(frame.rgb) // 2)
        return True

    src = OpenCVSource(VideoSource(type="video", path=str(video), fps="max", loop=False, mode="continuous"))
    src.start(submit)
    wait_until(lambda: src.state == "finished", 10, "end of file")
    assert got == list(range(10))


def test_video_at_native_rate_behaves_like_a_camera(tmp_path):
    video = write_video(tmp_path / "v.avi", n=50, fps=25.0)
    read_at: list[float] = []  # when each frame was read: the source's own pace, whatever the test thread's
    src = OpenCVSource(VideoSource(type="video", path=str(video), fps="native"))
    read = src._read
    src._read = lambda: (read(), read_at.append(time.monotonic()))[0]
    src.start(lambda f: True)
    try:
        first = src.capture()
        t0 = time.time()
        second = src.capture()  # a frame taken after the call, about one frame period later
        assert second.timestamp > first.timestamp and second.timestamp >= t0
        wait_until(lambda: len(read_at) >= 11, 5, "eleven frames")
        assert read_at[10] - read_at[0] >= 0.3  # replayed at 25 fps (0.4 s for ten frames), not as fast as it decodes
    finally:
        src.stop()


def test_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InspectorError, match="no such video file"):
        open_source(VideoSource(type="video", path=str(tmp_path / "nope.mp4")))
    with pytest.raises(InspectorError, match="no such folder"):
        open_source(FolderSource(type="folder", path=str(tmp_path / "nope")))
    (tmp_path / "fake.mp4").write_bytes(b"not a video")
    with pytest.raises(InspectorError, match="OpenCV cannot open"):
        open_source(VideoSource(type="video", path=str(tmp_path / "fake.mp4"), fps="max")).start(lambda f: True)


def test_folder_waits_for_files_to_settle_and_never_repeats(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames, lock = [], threading.Lock()

    def submit(frame):
        with lock:
            frames.append(frame)
        frame.done(True)
        return True

    w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.05, settle_s=0.3, after="keep"))
    w.start(submit)
    try:
        data = png(good_image(1))
        part = folder / "SN-7.png"
        with open(part, "wb") as f:  # written slowly: must not be read half-written
            for i in range(0, len(data), 4000):
                f.write(data[i:i + 4000])
                f.flush()
                time.sleep(0.1)
        (folder / "notes.txt").write_text("ignored")
        wait_until(lambda: frames, 5, "the file")
        time.sleep(0.4)
        assert len(frames) == 1 and frames[0].encoded == data and frames[0].serial == "SN-7"
        w.stop()
        again = FolderWatcher(w.cfg)  # a restart sees the same file under the same id
        seen = []
        again.start(lambda f: seen.append(f) or True)
        wait_until(lambda: seen, 5, "rescan")
        again.stop()
        assert seen[0].inspection_id == frames[0].inspection_id
    finally:
        w.stop()


def test_a_new_file_under_a_name_seen_before_waits_to_settle_and_hidden_files_are_left_alone(tmp_path):
    """A writer staging each part as stage.png, then renaming it: the second stage.png (same name, same size) was taken
    as settled at once, from the first one's memory, and inspected half-way (serial "stage")."""
    folder = tmp_path / "in"
    folder.mkdir()
    frames: list = []
    w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.05, settle_s=3.0, after="move"))
    w.start(lambda f: frames.append(f) or f.done(True) or True)
    try:
        data = png(good_image(1))
        for i in (1, 2):
            stage = folder / "stage.png"
            stage.write_bytes(data)
            (folder / f".tmp_{i}.png").write_bytes(data)  # a partial write by convention: never read
            time.sleep(0.5)  # well short of settle_s (the bug read the second stage.png at once)
            assert [f.source for f in frames] == [f"folder:P{k}.png" for k in range(1, i)]
            stage.replace(folder / f"P{i}.png")
            wait_until(lambda i=i: len(frames) == i, 5, f"P{i}")
        time.sleep(0.2)
        assert [f.serial for f in frames] == ["P1", "P2"] and sorted(p.name for p in folder.glob(".tmp_*")) == [".tmp_1.png", ".tmp_2.png"]
        # P2's memory goes as its `done` moves it, on the watcher's thread after the frame was handed over
        wait_until(lambda: not w._sizes and not w._seen, 5, "nothing kept of files gone")
    finally:
        w.stop()


def test_stream_reconnects_with_backoff_after_the_camera_drops():
    server = MJPEGServer().start()
    src = OpenCVSource(StreamSource(type="stream", url=server.url, capture_timeout_s=10.0, reconnect={"initial_s": 0.2, "max_s": 1.0}))
    src.start(lambda f: True)
    try:
        assert src.capture().rgb.shape == (96, 96, 3)
        server.stop()
        wait_until(lambda: src.state.startswith("reconnecting"), 15, "the drop noticed")
        with pytest.raises(InspectorError, match="no frame within|not delivering frames"):
            src.capture(timeout=0.3)
        server.start()  # same port
        assert src.capture(timeout=20).rgb.shape == (96, 96, 3) and src.reconnects >= 1
    finally:
        src.stop()
        server.stop()


def drop(path, data: bytes) -> None:
    """Put a file in a watched folder whole (settle_s is 0 in these tests: a half-written file would be read)."""
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)


def watcher(folder, after: str, submitted: list, outcome=True) -> FolderWatcher:
    def submit(frame):
        submitted.append(frame)
        frame.done(outcome(frame) if callable(outcome) else outcome)
        return True

    w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.05, settle_s=0.0, after=after))
    w.start(submit)
    return w


def test_folder_keep_inspects_a_file_rewritten_under_its_name(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames: list = []
    w = watcher(folder, "keep", frames)
    try:
        part = folder / "current.png"
        for i in range(3):  # each a new part in the same file name (before: only the first was inspected)
            drop(part, png(good_image(i)))
            wait_until(lambda i=i: len(frames) == i + 1, 5, f"version {i}")
            time.sleep(0.2)
        assert len({f.inspection_id for f in frames}) == 3 and len(frames) == 3  # and none twice
    finally:
        w.stop()


def test_folder_file_the_store_could_not_take_stays_and_is_retried(tmp_path, monkeypatch):
    import inspector.sources

    monkeypatch.setattr(inspector.sources, "STORE_RETRY_S", 0.3)
    folder = tmp_path / "in"
    folder.mkdir()
    frames: list = []
    w = watcher(folder, "move", frames, outcome=lambda f: None if len(frames) == 1 else True)  # the first try: store full
    try:
        drop(folder / "P1.png", png(good_image(1)))
        wait_until(lambda: len(frames) == 2, 5, "a second try")
        wait_until(lambda: (folder / "done" / "P1.png").exists(), 5, "moved to done/")
        assert not (folder / "rejected").exists()  # before: moved to rejected/ and never tried again
    finally:
        w.stop()


@pytest.mark.parametrize("fix", ["mend the folder", "take the file away"])
def test_folder_file_that_cannot_be_moved_is_read_once_shown_and_settled_once_it_can_be(tmp_path, monkeypatch, fix):
    """It was read and inspected again every poll; once the folder was mended it stayed for good, the state reading ok
    only at the next file; and one taken away by hand left `cannot move` (and /health degraded) for good."""
    import inspector.sources as sources

    monkeypatch.setattr(sources, "MOVE_RETRY_S", 0.1)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "done").write_text("a file where the done/ folder should be")
    frames: list = []
    w = watcher(folder, "move", frames)
    try:
        drop(folder / "P3.png", png(good_image(3)))
        wait_until(lambda: frames, 5, "the file")
        wait_until(lambda: w.state.startswith("cannot move P3.png"), 5, "the state")
        time.sleep(0.4)
        assert len(frames) == 1
        if fix == "mend the folder":  # e.g. room on the disk again
            (folder / "done").unlink()
            wait_until(lambda: (folder / "done" / "P3.png").exists() and w.state == "watching", 5, "moved on a later try")
        else:
            (folder / "P3.png").unlink()
            wait_until(lambda: w.state == "watching", 5, "the problem gone with the file")
        assert len(frames) == 1
    finally:
        w.stop()


def test_folder_file_without_a_serial_is_said(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    frames: list = []
    w = watcher(folder, "keep", frames)
    try:
        drop(folder / "SN 001.png", png(good_image(3)))
        wait_until(lambda: frames, 5, "the file")
    finally:
        w.stop()
    assert frames[0].serial is None and any("SN 001.png is inspected without a serial (a serial is 1-64 ASCII letters" in r.message for r in caplog.records)


def test_a_video_that_is_no_video_fails_at_start_at_any_rate(tmp_path):
    (tmp_path / "fake.mp4").write_bytes(b"not a video")
    with pytest.raises(InspectorError, match="OpenCV cannot open"):  # when the source is made: before serve makes its store
        open_source(VideoSource(type="video", path=str(tmp_path / "fake.mp4")))
    video = write_video(tmp_path / "v.avi", n=3, fps=50.0)
    src = open_source(VideoSource(type="video", path=str(video)))  # native rate: retried forever before
    video.write_bytes(b"not a video any more")  # replaced before it started
    with pytest.raises(InspectorError, match="OpenCV cannot open"):
        src.start(lambda f: True)
    src.stop()


@pytest.mark.parametrize("fps", ["max", "native"])
def test_an_exhausted_video_says_so_at_once(tmp_path, fps):
    video = write_video(tmp_path / "v.avi", n=3, fps=50.0)
    src = OpenCVSource(VideoSource(type="video", path=str(video), fps=fps, loop=False, capture_timeout_s=60.0))
    src.start(lambda f: True)
    try:
        wait_until(lambda: src.state == "finished" or fps == "max", 5, "the end")
        for _ in range(3 if fps == "max" else 0):
            src.capture()
        with pytest.raises(InspectorError, match="end of video"):  # native: waited capture_timeout_s for "no frame" before
            src.capture()
        assert src.state == "finished"  # max: read "open" before
    finally:
        src.stop()


def test_links_and_oversized_files_in_a_watched_folder_are_not_read_and_done_must_be_a_real_folder(tmp_path):
    """A link to a file elsewhere was read and stored as a part; `done` made a link moved parts, overwriting, where it
    led; a 2 GB file was read whole before it was refused."""
    folder, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    secret = elsewhere / "secret.png"
    secret.write_bytes(png(good_image(1)))
    (folder / "linked.png").symlink_to(secret)
    (folder / "done").symlink_to(elsewhere)
    (folder / "huge.png").write_bytes(b"\x89PNG" + bytes(200_000))
    frames: list = []
    w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.05, settle_s=0.0, after="move", max_file_bytes=100_000))
    w.start(lambda f: frames.append(f) or f.done(True) or True)
    try:
        wait_until(lambda: (folder / "rejected" / "huge.png").exists(), 5, "the big file set aside")
        wait_until(lambda: (folder / "rejected" / "linked.png").is_symlink(), 5, "the link set aside, unread")  # left, unsaid, before
        drop(folder / "P1.png", png(good_image(2)))
        wait_until(lambda: frames, 5, "P1")
        wait_until(lambda: "not a real folder" in w.state, 5, "the linked done folder refused")
    finally:
        w.stop()
    assert [f.serial for f in frames] == ["P1"] and (folder / "P1.png").exists()  # kept where it was, not moved through the link
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.png"]
