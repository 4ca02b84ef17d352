"""Audit 50 of the station daemon over a long run and across restarts: Sparkplug order after a reconnect, the journal
after a crash, and what a station holds as it runs."""

from __future__ import annotations

import socket

from inspector.config import MqttSection, Sparkplug
from inspector.sparkplug import SparkplugNode, decode_payload
from tests.inspector.conftest import wait_until


def _in_the_window(node: SparkplugNode, records: list[dict]) -> None:
    """At each connection, a result (the next of `records`) reaching the node in paho's window between 'connected'
    and the on_connect callback, where the births are sent: the sink's thread sees connected, and published its DDATA."""
    births = node.client._client.on_connect

    def on_connect(*a):
        assert node.client.connected  # paho's order: the state first, then the callback
        node.publish_result(records.pop(0))
        births(*a)

    node.client._client.on_connect = on_connect


def test_sparkplug_sends_no_ddata_before_the_births_of_its_connection(broker, listen):
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    node = SparkplugNode(MqttSection(port=broker.port, prefix="x"), Sparkplug(enabled=True, group_id="G", device_id="D"), "N", "spb-a50")
    _in_the_window(node, [{"inspection_id": i, "serial": "s", "verdict": "PASS", "score": 0.1, "threshold": 1.0} for i in "ac"])
    node.start()
    try:
        wait_until(lambda: lst.on("spBv1.0/G/DBIRTH/N/D"), 10, "births")
        node.publish_result({"inspection_id": "b", "serial": "s", "verdict": "FAIL", "score": 2.0, "threshold": 1.0})
        wait_until(lambda: lst.on("spBv1.0/G/DDATA/N/D"), 10, "DDATA")
        # the connection drops (a network fault): the node reconnects, and a result comes in the same window again
        node.client._client.socket().shutdown(socket.SHUT_RDWR)
        wait_until(lambda: len(lst.on("spBv1.0/G/DBIRTH/N/D")) == 2, 20, "births after the reconnect")
        node.publish_result({"inspection_id": "d", "serial": "s", "verdict": "PASS", "score": 0.3, "threshold": 1.0})
        wait_until(lambda: len(lst.on("spBv1.0/G/DDATA/N/D")) >= 2, 10, "DDATA after the reconnect")
    finally:
        node.stop()
    seen = [(t.split("/")[2], decode_payload(p)) for t, p, _ in lst.messages if t.startswith("spBv1.0/G/") and "NDEATH" not in t]
    kinds = [k for k, _ in seen]
    assert kinds == ["NBIRTH", "DBIRTH", "DDATA", "NBIRTH", "DBIRTH", "DDATA"], kinds  # no DDATA ahead of a connection's births
    assert [p["seq"] for _, p in seen] == [0, 1, 2, 0, 1, 2]
    # the results of the window are carried by the births that followed them
    assert seen[1][1]["metrics"]["inspection_id"] == "a" and seen[4][1]["metrics"]["inspection_id"] == "c"
    assert seen[4][1]["metrics"]["counters/inspected"] == 3
