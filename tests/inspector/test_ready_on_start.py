"""Daemon.start() returns ready to receive: an input published at once was lost when the broker took it before the
station's SUBSCRIBE (a test failed so in CI, its part never reaching the engine)."""

from __future__ import annotations

import base64
import json
import time

from inspector.mqtt import MqttClient
from tests.inspector.conftest import running, wait_until


def test_an_input_published_as_start_returns_is_inspected(station, listen, tiny_inspector, good_png, monkeypatch):
    real = MqttClient._connected

    def late(self, *args):  # paho writes a callback's packets after it returns: the SUBSCRIBEs reach the broker 1 s late
        real(self, *args)
        if self.subscriptions:
            time.sleep(1.0)

    monkeypatch.setattr(MqttClient, "_connected", late)
    cfg = station()
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        lst.publish("trigger", json.dumps({"inspection_id": "first", "base64": base64.b64encode(good_png).decode()})).wait_for_publish(10)
        wait_until(lambda: "first" in lst.result_ids(), 20, "the input published as start() returned, answered")


def test_subscriptions_never_acknowledged_are_said_and_the_station_starts_anyway(station, tiny_inspector, monkeypatch, caplog):
    monkeypatch.setattr(MqttClient, "_subscribed", lambda self, *args: None)  # the SUBACKs never seen
    cfg = station(mqtt={"connect_timeout_s": 1.0})
    with running(cfg, tiny_inspector) as d:
        assert d.ready
    said = [r.getMessage() for r in caplog.records if "has not acknowledged every subscription within 1 s" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"mqtt 127.0.0.1:{cfg.mqtt.port}: ")
