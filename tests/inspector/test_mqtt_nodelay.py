"""Each MQTT packet goes out as it is written: under Nagle's algorithm a result waited for the delayed ACK of the packet
before it (about 15 ms a part from the station's side, as much again from the broker's)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from inspector.config import MqttSection
from inspector.demo.broker import start_broker
from inspector.mqtt import MqttClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_stations_connection_sends_each_packet_at_once(broker, protocol):
    client = MqttClient(MqttSection.model_validate({"port": broker.port, "prefix": "t/s", "connect_timeout_s": 5.0,
                                                    "protocol": protocol}), "nodelay58")
    client.start()
    try:
        sock = client._client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.stop()


def test_the_brokers_the_project_writes_and_ships_send_each_packet_at_once(tmp_path, mosquitto_bin):
    assert "\nset_tcp_nodelay true\n" in (ROOT / "configs" / "mosquitto.conf").read_text()
    demo = start_broker(mosquitto_bin, tmp_path / "broker")  # mosquitto accepts the option: it answers MQTT
    try:
        assert "set_tcp_nodelay true" in demo.conf.read_text().splitlines()
    finally:
        demo.stop()
