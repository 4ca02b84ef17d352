"""Fixtures for runtime tests: a real Mosquitto on a free loopback port, station configs, a listening client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from inspector.config import MqttSection, Sparkplug
from inspector.demo.broker import find_mosquitto, free_port
from inspector.sparkplug import SparkplugNode
from tests.synthetic import defect_image, good_image

WAIT_FLOOR_S = 30.0


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """`cond()`'s first true value; an AssertionError naming `what` after `timeout` s, or 30 at least: a bound, not a
    timing: `make test` runs 4 workers on CI's 2 cores, where a few seconds are no promise. A test of what happens at once
    rather than later puts the later event off instead (see test_folder_source's idle folder)."""
    timeout = max(timeout, WAIT_FLOOR_S)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Broker:
    """A mosquitto process with a generated config; kill() and start() again keep the port."""

    def __init__(self, root: Path, extra: str = "", listener_extra: str = "", anonymous: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = root / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""  # as root mosquitto would drop to `mosquitto`, who cannot write here
        self.conf.write_text(f"{user}listener {self.port} 127.0.0.1\n{listener_extra}\nallow_anonymous {str(anonymous).lower()}\n"
                             f"max_inflight_messages 0\nset_tcp_nodelay true\n{extra}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        log = open(self.root / "mosquitto.log", "ab")  # noqa: SIM115 (owned by the process)
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {(self.root / 'mosquitto.log').read_text()[-500:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, 10, "mosquitto to listen")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    path = find_mosquitto()
    if path is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto): MQTT integration tests need a real broker")
    os.environ["PATH"] = f"{os.path.dirname(path)}:{os.environ['PATH']}"
    return path


@pytest.fixture
def make_broker(tmp_path, mosquitto_bin) -> Iterator[Callable[..., Broker]]:
    brokers: list[Broker] = []

    def make(**kw) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", **kw)
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.kill()


@pytest.fixture
def broker(make_broker) -> Broker:
    return make_broker()


@pytest.fixture(scope="session")
def tiny_inspector(tiny_ckpt):
    from inspector.api import Inspector

    return Inspector.load(tiny_ckpt)


def png(rgb) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def good_png() -> bytes:
    return png(good_image(7))


@pytest.fixture(scope="session")
def defect_png() -> bytes:
    return png(defect_image(1)[0])


def station_dict(tmp_path: Path, broker: Broker, model_path: str | Path, **sections: dict) -> dict:
    """A station config mapping for tests; `sections` are deep-merged over it."""
    from inspector.config import deep_merge

    base = {"station": {"name": "st1"}, "model": {"path": str(model_path), "queue_size": 1000, "batch_size": 16},
            "source": {"type": "mqtt"},
            "mqtt": {"port": broker.port, "prefix": f"test/{uuid.uuid4().hex[:8]}", "client_id": f"insp-{uuid.uuid4().hex[:8]}",
                     "keepalive_s": 5},
            "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0},
            "watchdog": {"interval_s": 0.5}, "daemon": {"drain_timeout_s": 20.0}}
    return deep_merge(base, sections)


@pytest.fixture
def station(tmp_path, broker, tiny_ckpt) -> Callable[..., Any]:
    """station(**sections) -> a validated StationConfig on the test broker with the tiny model."""
    from inspector.config import StationConfig

    def make(**sections):
        return StationConfig.model_validate(station_dict(tmp_path, broker, tiny_ckpt, **sections))

    return make


def write_video(path: Path, n: int = 12, size: int = 96, fps: float = 25.0) -> Path:
    """An MJPG AVI whose frame i has i bright rows at the top (so frames are told apart)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    assert w.isOpened()
    for i in range(n):
        frame = cv2.cvtColor(good_image(i, size), cv2.COLOR_RGB2BGR)
        frame[: 2 * i] = 255
        w.write(frame)
    w.release()
    return path


class MJPEGServer:
    """multipart/x-mixed-replace JPEG stream on a loopback port, as IP cameras serve it; can be stopped and restarted."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.frames = [cv2.imencode(".jpg", cv2.cvtColor(good_image(i), cv2.COLOR_RGB2BGR))[1].tobytes() for i in range(5)]
        self.period = 0.04  # seconds between frames (a slow camera: longer)
        self.sent = 0  # frames written, all connections together
        self.long_wait = False  # between the last frame written and the next, at a period of a second or more
        self.port = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not server.stopping.is_set():
                        jpg = server.frames[i % len(server.frames)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                        i += 1
                        server.sent += 1
                        server.long_wait = server.period >= 1.0
                        server.stopping.wait(server.period)  # stop() ends a slow camera's wait at once
                        server.long_wait = False
                except OSError:
                    pass

            def log_message(self, *a) -> None:
                pass

        self._cls = (ThreadingHTTPServer, Handler)
        self.stopping = threading.Event()
        self.httpd = None

    def start(self) -> MJPEGServer:
        cls, handler = self._cls
        self.stopping.clear()
        self.httpd = cls(("127.0.0.1", self.port), handler)
        self.httpd.daemon_threads = True
        self.httpd.allow_reuse_address = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def slow(self, source, period: float = 60.0) -> None:
        """The next frame `period` seconds away, once `source` has read every frame sent before it: a capture from then
        on waits for that frame (a frame still in flight, or unread, was taken by a capture begun after the change)."""
        self.period = period
        wait_until(lambda: self.long_wait and source._seq >= self.sent, 30, "the camera slowed down, its frames sent read")

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


@pytest.fixture
def mjpeg():
    s = MJPEGServer().start()
    yield s
    s.stop()


@contextlib.contextmanager
def running(cfg, inspector, **kw) -> Iterator[Any]:
    """An in-process daemon (sharing the test's loaded model), shut down in order afterwards."""
    from inspector.daemon import Daemon

    d = Daemon(cfg, inspector=inspector, **kw)
    d.start()
    try:
        yield d
    finally:
        d.shutdown()


@contextlib.contextmanager
def serving(argv: list[str], log: Path, lst: Listener) -> Iterator[subprocess.Popen]:
    """A station process (`python argv...`, its output in `log`), once `lst` hears it online; on leaving, stopped by
    SIGTERM, which it must end with exit 0 and no traceback (killed instead when the body failed)."""
    import sys

    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *argv], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (s := lst.on("status")) and s[-1][0] == b"online" or proc.poll() is not None, 120, "daemon online")
        assert proc.poll() is None, f"rc {proc.returncode}: {log.read_text()[-2000:]}"
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Listener:
    """A test-side MQTT 5 client: collects everything under the station prefix (and `extra_topics`); publishes with
    correlation data and a Response Topic."""

    def __init__(self, port: int, prefix: str, extra_topics: tuple[str, ...] = (), client_id: str | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.prefix = prefix
        self.messages: list[tuple[str, bytes, Any]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._message
        self.client.on_connect = self._connect
        self.client.on_subscribe = self._subscribed
        self._pending: set[int] = set()
        self.topics = (f"{prefix}/#", *extra_topics)
        if login is not None:
            self.client.username_pw_set(*login)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self.client.connect("127.0.0.1", port, keepalive=5, clean_start=client_id is None, properties=props)
        self.client.loop_start()
        assert self.connected.wait(WAIT_FLOOR_S), "test client could not connect"

    def _connect(self, client, userdata, flags, reason, properties) -> None:
        # ready only once the broker has acknowledged every subscription (else early messages are missed)
        with self.lock:
            for t in self.topics:
                self._pending.add(client.subscribe(t, qos=1)[1])

    def _subscribed(self, client, userdata, mid, reason_codes, properties) -> None:
        with self.lock:
            self._pending.discard(mid)
            if not self._pending:
                self.connected.set()

    def _message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), getattr(msg.properties, "CorrelationData", None)))

    def publish(self, topic: str, payload: bytes | str, correlation: bytes | None = None, user: dict | None = None, qos: int = 1,
                retain: bool = False, response_topic: str | None = None):
        props = None
        if correlation is not None or user or response_topic:
            props = Properties(PacketTypes.PUBLISH)
            if correlation is not None:
                props.CorrelationData = correlation
            if user:
                props.UserProperty = list(user.items())
            if response_topic:
                props.ResponseTopic = response_topic
        return self.client.publish(f"{self.prefix}/{topic}", payload, qos=qos, properties=props, retain=retain)

    def on(self, topic: str) -> list[tuple[bytes, Any]]:
        with self.lock:
            return [(p, c) for t, p, c in self.messages if t == f"{self.prefix}/{topic}" or t == topic]

    def json(self, topic: str) -> list[dict]:
        return [json.loads(p) for p, _ in self.on(topic)]

    def result_ids(self) -> set[str]:
        return {r["inspection_id"] for r in self.json("result")}

    def close(self) -> None:
        # DISCONNECT first: the network thread sends it and ends at once; stopping the thread first waited out its
        # 1 s select() before the disconnect went (about a second per test)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(port: int, prefix: str, **kw) -> Listener:
        made.append(Listener(port, prefix, **kw))
        return made[-1]

    yield make
    for lst in made:
        lst.close()


@contextlib.contextmanager
def born_node(port: int, lst: Listener, client_id: str,
              before_start: Callable[[SparkplugNode], None] | None = None) -> Iterator[SparkplugNode]:
    """A Sparkplug node (group G, edge node N, device D, prefix x) started, its births seen by `lst`; stopped after."""
    node = SparkplugNode(MqttSection(port=port, prefix="x"), Sparkplug(enabled=True, group_id="G", device_id="D"), "N", client_id)
    if before_start is not None:
        before_start(node)
    node.start()
    try:
        wait_until(lambda: lst.on("spBv1.0/G/DBIRTH/N/D"), 10, "births")
        yield node
    finally:
        node.stop()
