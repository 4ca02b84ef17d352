"""Frame sources other than MQTT, from a line integrator's audit (session 50)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.config import StreamSource
from inspector.sources import OpenCVSource, safe_url
from model.errors import InspectorError
from tests.inspector.conftest import MJPEGServer, running, wait_until
from tests.synthetic import good_image


class FakeCamera:
    """cv2.VideoCapture of a camera that gives `frame` on every read."""

    frame: np.ndarray = np.zeros((8, 8, 3), np.uint8)

    def __init__(self, *args, **kw) -> None:
        self.opened = True

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def set(self, *a) -> bool:
        return True

    def get(self, *a) -> float:
        return 0.0

    def read(self):
        import time
        time.sleep(0.02)
        return True, self.frame.copy()

    def release(self) -> None:
        self.opened = False


def test_a_16_bit_mono_cameras_frames_are_inspected_and_stored_like_16_bit_files(station, broker, listen, tiny_inspector, monkeypatch):
    """A 12/16-bit mono camera (OpenCV with Aravis or GStreamer GRAY16) gave uint16 frames: inspected, then refused by
    the overlay and the stored image: 'could not be stored ... tried again every 5 s', and no result ever."""
    grey = cv2.cvtColor(good_image(3, 96), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 16  # 12 bits used
    FakeCamera.frame = grey
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    cfg = station(source={"type": "camera", "device": 0, "mode": "trigger"}, store={"save_images": "all", "save_overlays": "all"})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 10, "online")
        lst.publish("trigger", json.dumps({"inspection_id": "t16"}))
        [result] = wait_until(lambda: lst.json("result"), 20, "the result")
    assert not lst.on("error") and result["inspection_id"] == "t16" and set(result["images"]) == {"image", "overlay"}
    stored = cv2.imread(str(Path(cfg.store.data_dir) / result["images"]["image"]), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint8 and stored.max() == 255 and stored.min() == 0  # spread over 0-255, as a 16-bit file is


@pytest.mark.parametrize("url", [
    "rtsp://admin:Pa/ss9@cam4/stream1",  # urlsplit ended the user info at the /: all of it was shown
    "rtsp://admin:Pa?ss9@cam4/stream1",
    "rtsp://admin:Pa#ss9@cam4/stream1",
    "rtsp://admin:P@ss#9@cam4/stream1",  # "rtsp://ss"
    "rtsp://admin:1234?ss9@cam4/stream1",  # "admin:1234" reads as a host and port
])
def test_a_password_holding_a_slash_question_mark_or_hash_is_never_shown(url, caplog, capfd):
    shown = safe_url(url)
    assert not any(secret in shown for secret in ("Pa", "ss9", "admin", "1234")), shown
    src = OpenCVSource(StreamSource(type="stream", url=url.replace("cam4", "127.0.0.1:1"), reconnect={"initial_s": 30, "max_s": 30}))
    src.start(lambda f: True)
    try:
        wait_until(lambda: src.state.startswith("reconnecting"), 15, "the refused connection")
        with pytest.raises(InspectorError) as caught:
            src.capture(timeout=0.2)
    finally:
        src.stop()
    said = f"{src.name} {caught.value} {caplog.text} {capfd.readouterr()}"
    assert "Pa" not in said and "ss9" not in said and "1234" not in said and "%-encoded" in caplog.text


@pytest.mark.parametrize(("url", "shown"), [
    ("http://cam4/v.mjpg?user=me@x.com&pw=Pa.ss9", "http://cam4/v.mjpg?…"),  # an @ in the query alone
    ("rtsp://admin:P@ss9@[fe80::1]:554/s", "rtsp://[fe80::1]:554/s"),
    ("rtsp://admin:Pa%2Fss9@cam4:554/stream1", "rtsp://cam4:554/stream1"),
])
def test_a_url_without_that_ambiguity_keeps_its_host(url, shown):
    assert safe_url(url) == shown


def test_a_stream_that_stalls_without_closing_is_not_shown_open(station, broker, listen, tiny_inspector):
    """An IP camera that keeps its connection but stops sending read `open` (status online) until FFmpeg's 5 s read
    timeout, then `open` again as soon as a reconnect's open gave one frame: a stalled camera looked healthy nearly all
    the time, and a PLC gating its triggers on the status kept triggering it."""
    server = MJPEGServer().start()
    cfg = station(source={"type": "stream", "url": server.url, "mode": "trigger", "capture_timeout_s": 0.5,
                          "reconnect": {"initial_s": 0.2, "max_s": 0.5}})
    lst = listen(broker.port, cfg.mqtt.prefix)
    status = lambda: lst.on("status")[-1][0] if lst.on("status") else None  # noqa: E731
    try:
        with running(cfg, tiny_inspector) as d:
            wait_until(lambda: status() == b"online" and d.source.state == "open", 10, "status online")
            server.period = 60.0  # the connection stays open, and no frame comes
            wait_until(lambda: d.health()["source"].startswith("stalled (no frame for"), 10, "the stall shown")
            assert not d.source.delivering and "degraded" in json.dumps(d.health())
            wait_until(lambda: status() == b"degraded", 10, "status degraded")
            server.period = 0.04
            wait_until(lambda: status() == b"online" and d.source.state == "open", 30, "status online again")
    finally:
        server.stop()
