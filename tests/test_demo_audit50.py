"""Audit of `inspector demo`: its broker on a busy port, signals half way, a second run into the same --out, the report's config."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from inspector.demo import broker as demo_broker
from model.errors import InspectorError


@pytest.fixture
def mosquitto() -> str:
    binary = demo_broker.find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return binary


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program listens on (and never answers MQTT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_taken_before_mosquitto_binds_is_given_up_for_another(mosquitto, busy_port, tmp_path, monkeypatch):
    """free_port() -> mosquitto's bind is a race; a listener that took the port passed the connect-only check, mosquitto
    exited, and the station then waited on a port where no broker was (120 s + 10 s a part) before it failed."""
    real, ports = demo_broker.free_port, [busy_port]
    monkeypatch.setattr(demo_broker, "free_port", lambda: ports.pop() if ports else real())
    broker = demo_broker.start_broker(mosquitto, tmp_path)
    try:
        assert broker.port != busy_port
        assert broker.proc.poll() is None and demo_broker.speaks_mqtt(broker.port)
    finally:
        broker.stop()


def test_ports_taken_every_time_end_in_one_line(mosquitto, busy_port, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_broker, "free_port", lambda: busy_port)
    with pytest.raises(InspectorError) as err:
        demo_broker.start_broker(mosquitto, tmp_path, tries=2)
    msg = str(err.value)
    assert "\n" not in msg and str(busy_port) in msg and "--no-mqtt" in msg
