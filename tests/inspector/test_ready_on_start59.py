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
