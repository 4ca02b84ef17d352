"""Audit 50 of the MQTT side: malformed NCMDs, payloads as integrators' tools write them, and results and replies
at the broker's edges."""

from __future__ import annotations

import pytest

from inspector.config import MqttSection, Sparkplug
from inspector.sparkplug import BOOLEAN, SparkplugNode, _field, _varint, decode_payload, encode_payload
from tests.inspector.conftest import wait_until

# NCMD payloads a SCADA host, a test tool or a typo may send: a metric that is a number, a double cut short, a name
# that is a number. Each raised something other than ValueError in decode_payload.
MALFORMED_NCMD = [_field(2, 0, _varint(5)), _field(2, 2, _varint(3) + _field(13, 1, b"\x00")),
                  _field(2, 2, _varint(2) + _field(1, 0, _varint(3))), _field(1, 1, b"\x01\x02")]


@pytest.mark.parametrize("payload", MALFORMED_NCMD)
def test_a_malformed_sparkplug_payload_is_a_value_error(payload):
    with pytest.raises(ValueError, match="not a Sparkplug B payload|truncated|wire type"):
        decode_payload(payload)


def test_a_malformed_ncmd_leaves_rebirth_working(broker, listen):
    """The NCMD thread died on the first malformed NCMD (TypeError, struct.error, AttributeError escaped its
    `except ValueError`): every later Rebirth request went unanswered, and SCADA hosts showed the node stale."""
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    node = SparkplugNode(MqttSection(port=broker.port, prefix="x"), Sparkplug(enabled=True, group_id="G", device_id="D"), "N", "spb-a50")
    node.start()
    try:
        wait_until(lambda: lst.on("spBv1.0/G/DBIRTH/N/D"), 10, "births")
        for bad in MALFORMED_NCMD:
            lst.client.publish("spBv1.0/G/NCMD/N", bad, qos=1)
        lst.client.publish("spBv1.0/G/NCMD/N", encode_payload([("Node Control/Rebirth", BOOLEAN, True)], seq=0), qos=1)
        wait_until(lambda: len(lst.on("spBv1.0/G/DBIRTH/N/D")) == 2, 10, "a rebirth after malformed NCMDs")
        assert node._thread.is_alive()
    finally:
        node.stop()
