"""Run the station daemon on the demo line: a generated video replayed as the camera.

With a broker, a stand-in for the line's PLC publishes one trigger per part on `<prefix>/trigger` and
the daemon captures the next video frame for it; results come back on `<prefix>/result`. Without one,
the daemon's video source runs in continuous mode and inspects every frame by itself. Either way the
daemon is the real one (`inspector serve`), in this process, writing its log to a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import yaml

from model.errors import InspectorError

PREFIX = "demo/line1/tile-station"
STATION = "tile-station"
IN_FLIGHT = 4  # triggers the PLC stand-in sends ahead of results, like parts queued on a conveyor


@dataclass
class ServeRun:
    """What the daemon did: stored records, frame index per record, rejections, timings."""

    records: list[dict[str, Any]]
    frame_of: dict[str, int]  # inspection_id -> index of the video frame it inspected
    seconds: float
    errors: list[str] = field(default_factory=list)
    published: int = 0  # results that arrived on <prefix>/result (MQTT mode)
    config: dict[str, Any] = field(default_factory=dict)  # the station config it ran with (as in station.yaml)


def station_config(out: Path, model: Path, video: Path, mqtt_port: int, with_mqtt: bool) -> dict[str, Any]:
    """The station file for this run (also written to out/station.yaml for `inspector serve --config`)."""
    source = {"type": "video", "path": str(video), "fps": "max", "loop": False, "mode": "trigger" if with_mqtt else "continuous"}
    return {
        "station": {"name": STATION, "line": "demo line 1"},
        "model": {"path": str(model), "batch_size": 4, "queue_size": 64},
        "source": source,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "prefix": PREFIX, "client_id": f"inspector-demo-{uuid.uuid4().hex[:6]}",
                 "keepalive_s": 10, "connect_timeout_s": 5.0},
        "store": {"data_dir": str(out / "station"), "save_images": "all", "save_overlays": "fail"},
        "http": {"host": "127.0.0.1", "port": 0},  # any free port: the live view while it runs, saved as live.html at the end
        "daemon": {"drain_timeout_s": 60.0},
    }


def frame_digests(video: Path) -> dict[str, int]:
    """sha256 of each decoded RGB frame -> its index: the daemon records the same digest for the frame it inspected."""
    cap = cv2.VideoCapture(str(video))
    out, i = {}, 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out[hashlib.sha256(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes()).hexdigest()] = i
        i += 1
    cap.release()
    return out


class LiveLine:
    """One status line, rewritten in place on a terminal (a line every few seconds otherwise)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.stream = total, stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last = 0.0
        self.t0 = time.monotonic()

    def show(self, records: Callable[[], list[dict[str, Any]]], final: bool = False) -> None:
        """Redraw from `records()` (called only when a redraw is due)."""
        now = time.monotonic()
        if not final and now - self._last < (0.25 if self.tty else 5.0):
            return
        self._last = now
        records = records()
        n = len(records)
        fails = sum(r["verdict"] == "FAIL" for r in records)
        totals = [r["timings_ms"].get("total") for r in records if r["timings_ms"].get("total") is not None]
        latency = f"{statistics.median(totals):.0f} ms" if totals else "-"
        rate = n / max(now - self.t0, 1e-6)
        line = f"  parts {n}/{self.total} | PASS {n - fails} | FAIL {fails} | latency median {latency} | {rate:.1f} parts/s"
        if self.tty:
            self.stream.write("\r" + line.ljust(90) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _log_to(path: Path) -> Callable[[], None]:
    """Send the daemon's log (the `inspector` loggers) to a file instead of the terminal; returns the undo."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logger = logging.getLogger("inspector")
    old = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def undo() -> None:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(old[0])
        logger.propagate = old[1]

    return undo


def _plc(cfg, n: int, serials: list[str], daemon, live: LiveLine, deadline: float,
         broker_alive: Callable[[], bool] | None = None) -> tuple[int, list[str]]:
    """Publish one trigger per part (at most IN_FLIGHT ahead of the results); returns (results received, errors).

    `broker_alive`: whether the demo's mosquitto still runs; once it has exited no trigger can arrive, and the loop
    waited out its whole deadline (half an hour for the full demo) showing `parts 0/160`."""
    from inspector.config import MqttSection
    from inspector.mqtt import ONLINE, MqttClient, Topics

    topics = Topics(cfg.mqtt.prefix)
    section = MqttSection(host=cfg.mqtt.host, port=cfg.mqtt.port, prefix=cfg.mqtt.prefix, keepalive_s=10, connect_timeout_s=5.0)
    plc = MqttClient(section, f"demo-plc-{uuid.uuid4().hex[:6]}", persistent=False,
                     subscriptions=[topics.status, topics.result, topics.error])
    plc.start()
    got, errors, sent, online = set(), [], 0, False
    try:
        while len(got) + len(errors) < n:
            if time.monotonic() > deadline:
                raise InspectorError(f"the station answered {len(got)} of {n} triggers in time; see the daemon log")
            if broker_alive is not None and not broker_alive():
                raise InspectorError(f"mosquitto exited half way (after {len(got)} of {n} results); see its log in the demo's"
                                     " broker/ folder, and run the demo again (or with --no-mqtt)")
            # the contract: a PLC triggers once the station's retained status says `online`
            while online and plc.connected and sent < n and sent - len(got) - len(errors) < IN_FLIGHT:
                body = {"inspection_id": f"demo-{serials[sent]}-{uuid.uuid4().hex[:6]}", "serial": serials[sent]}
                plc.publish(topics.trigger, json.dumps(body), qos=1)
                sent += 1
            try:
                msg = plc.inbox.get(timeout=0.2)
            except queue.Empty:
                msg = None
            if msg is not None and msg.topic == topics.status:
                online = msg.payload == ONLINE
            elif msg is not None and msg.topic == topics.result:
                got.add(json.loads(msg.payload)["inspection_id"])
            elif msg is not None and msg.topic == topics.error:
                errors.append(json.loads(msg.payload).get("error", "?"))
            live.show(daemon.store.records)
    finally:
        plc.stop(timeout=1)
    return len(got), errors


def serve(out: Path, model: Path, video: Path, serials: list[str], mqtt_port: int | None, log: Path,
          broker_alive: Callable[[], bool] | None = None) -> ServeRun:
    """Run the daemon over the whole video; `mqtt_port` None: no broker (continuous video source); `broker_alive`:
    whether that broker still runs (the PLC stand-in gives up at once when it has exited)."""
    from inspector.config import load_config
    from inspector.daemon import Daemon
    from inspector.store import Store

    with_mqtt = mqtt_port is not None
    # no broker: the daemon still wants one for results; a port where none listens keeps them in the outbox
    if mqtt_port is None:
        from inspector.demo.broker import free_port

        mqtt_port = free_port()
    config_path = out / "station.yaml"
    note = "" if with_mqtt else f"# this run had no broker: results wait in the store's outbox until one listens on 127.0.0.1:{mqtt_port}\n"
    config = station_config(out, model, video, mqtt_port, with_mqtt)
    config_path.write_text(f"# written by `inspector demo`; run it yourself with: inspector serve --config {shlex.quote(str(config_path))}\n{note}"
                           + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    cfg = load_config(config_path)
    n = len(serials)
    undo = _log_to(log)
    daemon = Daemon(cfg)
    t0 = time.monotonic()
    deadline = t0 + 120 + 10 * n  # far beyond any healthy run; a stuck station ends in one line, not a hang
    errors: list[str] = []
    published = 0
    try:
        daemon.start()
        live = LiveLine(n)
        live.stream.write(f"  live view: http://127.0.0.1:{daemon.http.port}/ while the station runs (saved as {out / 'live.html'})\n")
        if with_mqtt:
            published, errors = _plc(cfg, n, serials, daemon, live, deadline, broker_alive)
        # the sink counts a part and shows it on the live view just after storing it: wait for the sink too
        while daemon.store.count() + len(errors) < n or daemon.results.unfinished_tasks:
            if time.monotonic() > deadline:
                raise InspectorError(f"the station inspected {daemon.store.count()} of {n} frames in time; see {log}")
            live.show(daemon.store.records)
            time.sleep(0.1)
        live.show(daemon.store.records, final=True)
        (out / "live.html").write_bytes(daemon.live.page())
    finally:
        daemon.shutdown()
        undo()
    seconds = time.monotonic() - t0
    store = Store(cfg.store.data_dir)
    try:
        records = store.records()
    finally:
        store.close()
    digests = frame_digests(video)
    frame_of = {r["inspection_id"]: digests[r["image"]["sha256"]] for r in records if r["image"]["sha256"] in digests}
    return ServeRun(records, frame_of, seconds, errors, published, config)
