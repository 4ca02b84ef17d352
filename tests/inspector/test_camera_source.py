"""OpenCV sources (camera, stream, video) at their edges: a stop during a capture, a source that cannot deliver, a video
that decodes nothing, credentials in a stream's URL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest

from inspector.config import StreamSource, VideoSource
from inspector.sources import OpenCVSource, safe_url
from model.errors import InspectorError
from tests.inspector.conftest import MJPEGServer, running, wait_until


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:p@ss@cam1/stream", "rtsp://cam1/stream"),  # ffmpeg takes the last @: the first left "ss@cam1"
    ("http://u:pw@10.0.0.5:8080/v.mjpg?token=SECRET42", "http://10.0.0.5:8080/v.mjpg?…"),
    ("rtsp://cam1:554/h264", "rtsp://cam1:554/h264"),
])
def test_a_stream_url_is_shown_without_credentials_or_query(url, shown):
    assert safe_url(url) == shown


def test_a_video_that_opens_but_decodes_no_frame_is_refused_at_start(tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    writer.release()  # a container with no frame: opened, then "no more frames; set source.loop: true" with loop on
    assert cv2.VideoCapture(str(path)).isOpened()
    with pytest.raises(InspectorError, match="no frame of .* can be decoded"):
        OpenCVSource(VideoSource(type="video", path=str(path), loop=True))


def test_a_trigger_during_a_long_reconnect_wait_is_refused_at_once(monkeypatch):
    """Each capture waited its whole timeout behind a dead camera, and every part after it waited too; and it still did
    when it read the state `reconnecting` in the moment before the next try's time was set (state first, then the time)."""
    retry_in: list[float] = []  # the next try's time as the state turns `reconnecting`
    real = OpenCVSource.__setattr__

    def noted(self, name, value):
        if name == "state" and value == "reconnecting":
            retry_in.append(self._retry_at - time.monotonic())
        real(self, name, value)

    monkeypatch.setattr(OpenCVSource, "__setattr__", noted)
    server = MJPEGServer().start()
    src = OpenCVSource(StreamSource(type="stream", url=server.url, reconnect={"initial_s": 60.0, "max_s": 60.0}))
    src.start(lambda f: True)
    try:
        src.capture(timeout=20)
        server.stop()
        wait_until(lambda: src.state.startswith("reconnecting"), 15, "the drop noticed")
        assert retry_in[0] > 5, retry_in
        with pytest.raises(InspectorError, match=r"not delivering frames \(the next reconnect is in"):
            src.capture(timeout=5)
    finally:
        src.stop()


def test_a_stop_during_a_capture_says_so_and_blames_no_camera():
    """It said `no frame within 30 s; check the camera or stream` of a healthy camera, at once."""
    server = MJPEGServer().start()
    src = OpenCVSource(StreamSource(type="stream", url=server.url, capture_timeout_s=30))
    src.start(lambda f: True)
    try:
        src.capture()
        server.slow(src)  # a slow camera: the next frame is a minute away
        stopper = __import__("threading").Timer(0.5, src.stop)
        stopper.start()
        with pytest.raises(InspectorError, match="was stopped .* before a frame came; trigger again"):
            src.capture()
    finally:
        server.stop()  # first: it ends the slow camera's connection, so the reader stops now, not at its 5 s read timeout
        src.stop()


def test_a_stop_while_a_video_frame_is_read_does_not_crash_the_process(tmp_path):
    """The device was released under a read in progress (a trigger's capture at fps: max): a segmentation fault."""
    path = tmp_path / "big.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (2400, 1600))
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.write(rng.integers(0, 255, (1600, 2400, 3), dtype=np.uint8))
    writer.release()
    script = textwrap.dedent(f"""
        import threading, time
        from inspector.config import VideoSource
        from inspector.sources import OpenCVSource
        from model.errors import InspectorError
        for _ in range(8):
            src = OpenCVSource(VideoSource(type="video", path={str(path)!r}, fps="max", mode="trigger", loop=True))
            src.start(lambda f: True)
            def read():
                try:
                    while True:
                        src.capture()
                except InspectorError:
                    pass
            t = threading.Thread(target=read)
            t.start()
            time.sleep(0.15)
            src.stop()
            t.join(10)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


def test_a_trigger_cut_short_by_a_stop_is_answered_and_not_inspected_at_the_next_start(station, broker, listen, tiny_inspector,
                                                                                         monkeypatch):
    """Left unacknowledged, the broker would hand it to the next start, which would capture whatever part is there by
    then under its id and serial: it is answered (trigger again) and acknowledged."""
    server = MJPEGServer().start()
    cfg = station(source={"type": "stream", "url": server.url, "mode": "trigger", "capture_timeout_s": 30})
    lst = listen(broker.port, cfg.mqtt.prefix)
    try:
        with running(cfg, tiny_inspector) as d:
            wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 10, "status online")
            capturing, capture = threading.Event(), d.source.capture
            monkeypatch.setattr(d.source, "capture", lambda *a, **k: capturing.set() or capture(*a, **k))
            server.slow(d.source)
            lst.publish("trigger", json.dumps({"inspection_id": "cut-1"}))
            # not the inbox empty: it is so before the trigger arrives, and a stop then left it for the next start
            wait_until(capturing.is_set, 5, "the trigger taken, its capture under way")
            time.sleep(0.5)  # waiting for the slow camera's next frame
        [error] = wait_until(lambda: lst.json("error"), 10, "the trigger answered")
        assert error["inspection_id"] == "cut-1" and "trigger again" in error["error"] and "check the camera" not in error["error"]
        server.period = 0.04
        with running(cfg, tiny_inspector):
            wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 10, "status online again")
            time.sleep(1.0)
        assert not lst.on("result") and len(lst.on("error")) == 1  # acknowledged: not handed over again
    finally:
        server.stop()


def test_the_status_is_degraded_while_the_camera_gives_no_frames(station, broker, listen, tiny_inspector):
    """`online` stayed retained through a camera outage (/health said degraded): a PLC gating its triggers on the
    status kept triggering a dead camera."""
    server = MJPEGServer().start()
    cfg = station(source={"type": "stream", "url": server.url, "mode": "trigger", "reconnect": {"initial_s": 0.2, "max_s": 0.5}})
    lst = listen(broker.port, cfg.mqtt.prefix)
    try:
        with running(cfg, tiny_inspector) as d:
            status = lambda: lst.on("status")[-1][0] if lst.on("status") else None  # noqa: E731
            wait_until(lambda: status() == b"online", 10, "status online")
            server.stop()
            wait_until(lambda: status() == b"degraded", 15, "status degraded with the camera gone")
            assert d.health()["status"] == "degraded" and d.metrics.value("inspector_source_up") == 0
            server.start()
            wait_until(lambda: status() == b"online", 15, "status online again")
            assert d.metrics.value("inspector_source_reconnects") >= 1
    finally:
        server.stop()


def test_a_source_the_watchdog_cannot_reopen_is_tried_again_and_the_watchdog_lives_on(station, broker, listen, tiny_inspector, tmp_path):
    """open_source raised in the watchdog's thread (the folder gone when a silent watcher was replaced), which ended it:
    no more status, no worker restarts, no systemd ping."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    cfg = station(source={"type": "folder", "path": str(folder), "poll_s": 0.05}, watchdog={"interval_s": 0.2, "stall_s": 1.0})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        status = lambda: lst.on("status")[-1][0] if lst.on("status") else None  # noqa: E731
        wait_until(lambda: status() == b"online", 10, "status online")
        hung = d.source
        # the folder goes first: gone only after the stop, a watchdog check in between (stall_s 1 s: a main thread starved
        # that long on a loaded machine) replaced the silent source while its folder was still there, and nothing failed
        shutil.rmtree(folder)
        hung._stop.set()  # its thread ends without saying so: silent, as a hung one is
        hung._thread.join(5)
        wait_until(lambda: d._reopen_failed is not None, 10, "the replacement refused")
        assert "no such folder" in d._reopen_failed
        wait_until(lambda: status() == b"degraded", 10, "status degraded")
        folder.mkdir()
        wait_until(lambda: d.source is not hung and d.source.state == "watching", 10, "the source reopened")
        wait_until(lambda: status() == b"online", 10, "status online again")
        assert d._watchdog.is_alive() and d._reopen_failed is None


def test_refused_frames_of_a_live_source_are_kept_at_most_ten_a_minute(station, broker, listen, tiny_inspector, tmp_path):
    """A camera whose frames the model cannot take wrote an image and a JSON under refused/ and an error for each frame:
    418 files in 10 s at 30 frames a second."""
    from pathlib import Path

    from inspector.pipeline import LIVE_REFUSALS_KEPT

    path = tmp_path / "tiny.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (8, 6))
    for i in range(10):
        writer.write(np.full((6, 8, 3), 20 * i, np.uint8))
    writer.release()
    cfg = station(source={"type": "video", "path": str(path), "fps": 30, "loop": True, "mode": "continuous"})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: d.metrics.value("inspector_frames_dropped_total", {"reason": "refused"}) >= 20, 30, "refused frames dropped")
    kept = list((Path(cfg.store.data_dir) / "refused").rglob("*.json"))
    assert len(kept) == LIVE_REFUSALS_KEPT and len(lst.on("error")) == LIVE_REFUSALS_KEPT
    assert d.metrics.value("inspector_rejected_total", {"reason": "inspection_failed"}) == LIVE_REFUSALS_KEPT  # not also the dropped
    assert all(e["input"] == "video:tiny.avi" for e in lst.json("error"))


def test_a_capture_trigger_that_waited_behind_other_inputs_is_refused_not_given_a_later_part(tmp_path):
    """Behind a slow input (a URL fetch, a full queue), a trigger's frame was taken seconds after it came: the camera
    showed what was there then, perhaps the next part, under this trigger's serial."""
    import queue

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Message, Topics
    from inspector.store import Store

    server = MJPEGServer().start()
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "mqtt": {"prefix": "p"},
                                        "source": {"type": "stream", "url": server.url, "mode": "trigger", "capture_timeout_s": 10},
                                        "store": {"data_dir": str(tmp_path / "data")}})
    sent: list = []
    src = OpenCVSource(cfg.source)
    src.start(lambda f: True)
    intake = Intake(cfg, Store(tmp_path / "data"), queue.Queue(4), Metrics(), Topics("p"), source=src, republish=lambda r, c: None,
                    publish=lambda topic, body, reply=None: sent.append(json.loads(body)))
    try:
        src.capture(timeout=20)
        now = time.monotonic()
        # 10 s for its turn: the on-time one is on time however long this thread waits for a core (at 2 s, not quite)
        intake._trigger(Message("p/trigger", json.dumps({"serial": "LATE-1"}).encode(), 0, 1, received=now - 20.0))
        intake._trigger(Message("p/trigger", json.dumps({"serial": "ON-TIME-1"}).encode(), 0, 2, received=now))
    finally:
        src.stop()
        server.stop()
    assert [(e["serial"], "for its turn" in e["error"]) for e in sent] == [("LATE-1", True)]
    assert intake.jobs.get_nowait().serial == "ON-TIME-1"
