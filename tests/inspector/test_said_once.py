"""Races in the product: a refusal kept after its error was published; a
client id's clash logged at every reconnect (about once a second: each reconnect set the state it was judged by back to
"connected"). The third, a camera's state set before its next try's time, is in test_camera_source."""

from __future__ import annotations

import logging
import time

import pytest

from inspector.mqtt import MqttClient
from tests.inspector.test_mqtt import mqtt_cfg
from tests.inspector.test_mqtt_intake import _intake


def test_a_refused_part_is_kept_for_the_shift_report_before_its_error_is_published(tmp_path):
    from inspector.mqtt import Message

    intake = _intake(tmp_path)
    kept_when_told: list[int] = []
    intake._publish = lambda topic, body, reply=None: kept_when_told.append(
        sum(intake.store.refused_on_arrival(None, None)[0].values()))
    intake._message(Message("p/image", b"not an image", 1, 1))
    assert kept_when_told == [1]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_client_id_clash_is_logged_once_per_client_while_it_lasts(broker, protocol, caplog):
    caplog.set_level(logging.ERROR, "inspector.mqtt")
    a, b = MqttClient(mqtt_cfg(broker.port, protocol=protocol), "dup-59"), MqttClient(mqtt_cfg(broker.port, protocol=protocol), "dup-59")
    a.start()
    b.start()
    try:
        said = lambda: [r for r in caplog.records if "client id dup-59 is" in r.getMessage()]  # noqa: E731
        deadline = time.monotonic() + 30
        while not said() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert said(), "the clash was never named"
        time.sleep(6.0)  # several more drops and reconnects (about one a second)
        assert len(said()) <= 2, [r.getMessage() for r in said()]
    finally:
        a.stop()
        b.stop()

