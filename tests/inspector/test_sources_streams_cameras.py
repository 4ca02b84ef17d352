"""Frame sources other than MQTT as a line integrator meets them: streams, cameras and watched folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.config import CameraSource, StreamSource
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


class FakeCameraServer:
    """An RTSP (DESCRIBE) or HTTP (GET) server on a loopback port that asks for a user name and password (Digest or
    Basic) and answers 404 for any path but /stream: it serves no video, so OpenCV never opens it."""

    def __init__(self, proto: str = "RTSP", scheme: str = "Digest", user: str = "admin", password: str = "Pa/ss#9") -> None:
        import socket
        import threading

        self.proto, self.scheme, self.user, self.password = proto, scheme, user, password
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _authorised(self, method: str, uri: str, auth: str) -> bool:
        import base64
        import hashlib
        import re

        if self.scheme == "Basic":
            return auth == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        f = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        md5 = lambda t: hashlib.md5(t.encode()).hexdigest()  # noqa: E731
        ha1, ha2 = md5(f"{self.user}:cam:{self.password}"), md5(f"{method}:{uri}")
        want = md5(f"{ha1}:n0nce:{f.get('nc')}:{f.get('cnonce')}:auth:{ha2}") if f.get("qop") == "auth" else md5(f"{ha1}:n0nce:{ha2}")
        return auth.startswith("Digest ") and f.get("username") == self.user and f.get("response") == want

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while True:
                        while b"\r\n\r\n" not in data:
                            chunk = conn.recv(4096)
                            if not chunk:
                                raise OSError
                            data += chunk
                        head, _, data = data.partition(b"\r\n\r\n")
                        lines = head.decode().split("\r\n")
                        self.seen.append(head.decode())
                        method, uri, _ = lines[0].split(" ")
                        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                        cseq = f"CSeq: {fields.get('cseq', '1')}\r\n"
                        if not uri.split("?")[0].endswith("/stream"):
                            answer = f"{self.proto}/1.0 404 Not Found\r\n{cseq}Content-Length: 0\r\n\r\n"
                        elif not self._authorised(method, uri, fields.get("authorization", "")):
                            challenge = 'Digest realm="cam", nonce="n0nce", qop="auth"' if self.scheme == "Digest" else 'Basic realm="cam"'
                            answer = f"{self.proto}/1.0 401 Unauthorized\r\n{cseq}WWW-Authenticate: {challenge}\r\nContent-Length: 5\r\n\r\nnope!"
                        else:  # a description of no stream OpenCV can read
                            answer = f"{self.proto}/1.0 200 OK\r\n{cseq}Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
                        conn.sendall(answer.encode())
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(("proto", "scheme", "given", "path", "said"), [
    ("RTSP", "Digest", "admin:wrong", "/stream", "refuses the user name and password in source.url (RTSP 401 Unauthorized)"),
    ("RTSP", "Digest", None, "/stream", "asks for a user name and password (RTSP 401): give them in source.url"),
    ("RTSP", "Digest", "admin:Pa%2Fss%239", "/stream", "answers, but OpenCV cannot read its stream"),  # the right ones, %-encoded
    ("RTSP", "Basic", "admin:Pa%2Fss%239", "/stream", "answers, but OpenCV cannot read its stream"),
    ("RTSP", "Digest", "admin:Pa%2Fss%239", "/strem", "has no stream at source.url's path (RTSP 404)"),
    ("HTTP", "Basic", "admin:wrong", "/stream", "refuses the user name and password in source.url (HTTP 401 Unauthorized)"),
    ("HTTP", "Digest", "admin:Pa%2Fss%239", "/stream", "answers with application/sdp, not a video stream"),
])
def test_a_stream_that_does_not_open_says_why(proto, scheme, given, path, said, caplog, capfd):
    """'cannot open; retrying' was all a wrong password, a wrong path or a camera that is off ever said (FFmpeg says
    nothing of a 401): each is said in the log, on /health (the state) and in a refused trigger, without the password."""
    server = FakeCameraServer(proto, scheme)
    auth = f"{given}@" if given else ""
    url = f"{proto.lower()}://{auth}127.0.0.1:{server.port}{path}?token=T0k3n"
    src = OpenCVSource(StreamSource(type="stream", url=url, reconnect={"initial_s": 30, "max_s": 30}))
    src.start(lambda f: True)
    try:
        state = wait_until(lambda: src.state.startswith("reconnecting") and src.state, 30, "the stream given up for now")
        with pytest.raises(InspectorError) as caught:
            src.capture(timeout=0.2)
    finally:
        src.stop()
        server.close()
    assert said in state and said in str(caught.value) and said in caplog.text
    shown = f"{state} {caught.value} {caplog.text} {capfd.readouterr()}"  # FFmpeg's and OpenCV's own lines too
    assert not any(secret in shown for secret in ("wrong", "Pa%2F", "Pa/ss", "T0k3n"))


def test_a_stream_host_that_refuses_or_is_unknown_is_said(caplog):
    from inspector.sources import _why_stream_not_open

    assert "nothing answers at 127.0.0.1:1 (connection refused)" in _why_stream_not_open("rtsp://u:Secret@127.0.0.1:1/s")
    assert "nosuchcamera.invalid is not a known host name" in _why_stream_not_open("http://nosuchcamera.invalid/v.mjpg")
    assert _why_stream_not_open("rtsp://admin:Pa/ss@127.0.0.1:1/s") is None  # no telling the host from the password


def test_a_camera_index_with_no_device_says_so(caplog):
    src = OpenCVSource(CameraSource(type="camera", device=97, reconnect={"initial_s": 30, "max_s": 30}))
    src.start(lambda f: True)
    try:
        wait_until(lambda: src.state.startswith("reconnecting"), 15, "the camera given up for now")
    finally:
        src.stop()
    assert "/dev/video97 does not exist (video devices on this machine:" in caplog.text


def test_a_camera_that_gives_another_mode_than_asked_says_so_once(monkeypatch, caplog):
    """Asked for 1280x960, a camera that has no such mode gives its nearest (here 640x480) without a word: its frames
    were refused as lacking the model's region, or inspected at another scale, and nothing said why."""

    class SmallCamera(FakeCamera):
        frame = np.zeros((480, 640, 3), np.uint8)

        def get(self, prop) -> float:
            return {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0, cv2.CAP_PROP_FPS: 30.0}.get(prop, 0.0)

        def read(self):
            self.reads = getattr(self, "reads", 0) + 1
            return (self.reads < 3), self.frame.copy()  # drops after two frames: reopened

    monkeypatch.setattr(cv2, "VideoCapture", SmallCamera)
    src = OpenCVSource(CameraSource(type="camera", device=0, width=1280, height=960, fps=30, reconnect={"initial_s": 0.05, "max_s": 0.05}))
    src.start(lambda f: True)
    try:
        wait_until(lambda: src.reconnects >= 3, 15, "reopened")
    finally:
        src.stop()
    said = [r.getMessage() for r in caplog.records if "does not give the mode" in r.getMessage()]
    assert len(said) == 1 and "width 1280, it gives 640; height 960, it gives 480" in said[0] and "fps 30" not in said[0]


def test_a_watched_folder_that_goes_away_and_comes_back_is_said_in_the_log(tmp_path, caplog):
    """A share unmounted, a folder removed: /health read `unreadable`, but the log, where a line's staff look, said
    nothing, at the loss nor at the return."""
    import shutil

    from inspector.config import FolderSource
    from inspector.sources import FolderWatcher

    folder = tmp_path / "incoming"
    folder.mkdir()
    w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.02, settle_s=0.0))
    w.start(lambda f: True)
    try:
        wait_until(lambda: w.state == "watching", 5, "watching")
        shutil.rmtree(folder)
        wait_until(lambda: w.state.startswith("unreadable") and not w.delivering, 5, "the folder missed")
        folder.mkdir()
        wait_until(lambda: w.state == "watching" and w.delivering, 10, "the folder back")
    finally:
        w.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "inspector.sources"]
    assert sum("cannot read" in m and "No such file or directory" in m for m in said) == 1, said
    assert any("can be read again" in m for m in said)


def test_a_url_given_as_a_cameras_device_is_read_as_a_stream_without_its_password(monkeypatch, caplog):
    """OpenCV opens a URL given as `type: camera, device: rtsp://...`: the source's name, and so every record and log
    line, carried its password, and it was opened without the stream's read timeout (a stall hung the reader)."""
    server = MJPEGServer().start()
    real, opened = cv2.VideoCapture, []
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: opened.append(a[1:]) or real(*a))
    src = OpenCVSource(CameraSource(type="camera", device=server.url.replace("//", "//admin:Secr3t@")))
    src.start(lambda f: True)
    try:
        frame = src.capture(timeout=20)
    finally:
        src.stop()
        server.stop()
    assert frame.source == f"camera:{server.url}" and "Secr3t" not in caplog.text and "read as a stream" in caplog.text
    assert opened and all(args and args[0] == cv2.CAP_FFMPEG and cv2.CAP_PROP_READ_TIMEOUT_MSEC in args[1] for args in opened)



def _watcher_on(folder: Path, monkeypatch, mounted: dict[str, bool]):
    """A FolderWatcher of `folder`, which is a mount point while mounted["now"] says so."""
    import os

    from inspector.config import FolderSource
    from inspector.sources import FolderWatcher

    folder.mkdir()
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: mounted["now"] if Path(p) == folder else real(p))
    return FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.02, settle_s=0.0))


def test_a_share_unmounted_from_the_watched_folder_itself_is_not_read_as_watching(tmp_path, caplog, monkeypatch):
    """A share mounted on source.path itself, unmounted: the folder stayed, empty, and the station read `watching` and
    `online` for good while the parts went nowhere."""
    mounted = {"now": True}
    w = _watcher_on(tmp_path / "share", monkeypatch, mounted)
    w.start(lambda f: True)
    try:
        wait_until(lambda: w.state == "watching", 5, "watching")
        mounted["now"] = False
        wait_until(lambda: w.state.startswith("unreadable") and not w.delivering, 5, "the unmount missed")
        assert "no longer a mount point" in w.state
        mounted["now"] = True
        wait_until(lambda: w.state == "watching" and w.delivering, 10, "the share back")
    finally:
        w.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "inspector.sources"]
    assert sum("cannot read" in m and "unmounted share" in m for m in said) == 1, said


def test_a_folder_that_was_no_mount_point_at_start_is_watched_as_before(tmp_path, monkeypatch):
    """Only a mount lost is a problem: a plain folder (or a share mounted after the start) is watched."""
    mounted = {"now": False}
    w = _watcher_on(tmp_path / "plain", monkeypatch, mounted)
    got = []
    w.start(lambda f: got.append(f) or True)
    try:
        mounted["now"] = True
        cv2.imwrite(str(w.folder / "SN1.png"), good_image(0))
        wait_until(lambda: got, 10, "the part")
        mounted["now"] = False
        cv2.imwrite(str(w.folder / "SN2.png"), good_image(1))
        wait_until(lambda: len(got) == 2, 10, "the second part")
        assert w.state == "watching"
    finally:
        w.stop()
