"""Frame sources other than MQTT, from a line integrator's audit (session 50)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.inspector.conftest import running, wait_until
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

