"""Sparkplug B: the hand-written protobuf round-trips; births, data and rebirth against a real broker."""

from __future__ import annotations

import struct

from inspector.config import MqttSection, Sparkplug
from inspector.sparkplug import BOOLEAN, DOUBLE, STRING, UINT32, UINT64, SparkplugNode, decode_payload, encode_payload
from tests.inspector.conftest import wait_until


def test_payload_round_trip_and_wire_format():
    metrics = [("bdSeq", UINT64, 300), ("score", DOUBLE, -1.25), ("verdict", STRING, "FAIL"), ("ok", BOOLEAN, True),
               ("defects", UINT32, 3), ("serial", STRING, None)]
    data = encode_payload(metrics, seq=7, ts=1_700_000_000_000)
    out = decode_payload(data)
    assert out == {"timestamp": 1_700_000_000_000, "seq": 7,
                   "metrics": {"bdSeq": 300, "score": -1.25, "verdict": "FAIL", "ok": True, "defects": 3, "serial": None}}
    # field 1 (timestamp) is a varint, field 13 (double_value) little-endian fixed64: what Sparkplug B hosts decode
    assert data[0] == 0x08 and struct.pack("<d", -1.25) in data
    assert decode_payload(encode_payload([("bdSeq", UINT64, 0)], seq=None))["seq"] is None  # NDEATH carries no seq


def test_births_data_and_rebirth(broker, listen):
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    node = SparkplugNode(MqttSection(port=broker.port, prefix="x"), Sparkplug(enabled=True, group_id="G", device_id="D"), "N", "spb-test")
    node.start()
    try:
        wait_until(lambda: lst.on("spBv1.0/G/DBIRTH/N/D"), 10, "births")
        for i in range(3):
            node.publish_result({"inspection_id": f"i{i}", "serial": f"s{i}", "verdict": "FAIL" if i == 1 else "PASS", "score": 0.5 * i,
                                 "threshold": 1.0, "defects": [{}] * i})
        wait_until(lambda: len(lst.on("spBv1.0/G/DDATA/N/D")) == 3, 10, "DDATA")
        nbirth = decode_payload(lst.on("spBv1.0/G/NBIRTH/N")[0][0])
        assert nbirth["seq"] == 0 and nbirth["metrics"] == {"bdSeq": 0, "Node Control/Rebirth": False}
        assert decode_payload(lst.on("spBv1.0/G/DBIRTH/N/D")[0][0])["seq"] == 1
        ddata = [decode_payload(p) for p, _ in lst.on("spBv1.0/G/DDATA/N/D")]
        assert [d["seq"] for d in ddata] == [2, 3, 4]
        assert ddata[1]["metrics"]["verdict"] == "FAIL" and ddata[2]["metrics"]["counters/fail"] == 1
        assert ddata[2]["metrics"]["counters/inspected"] == 3 and ddata[2]["metrics"]["defects"] == 2
        # a SCADA host asks for a rebirth: births again, seq restarts at 0, the counters carried over
        lst.client.publish("spBv1.0/G/NCMD/N", encode_payload([("Node Control/Rebirth", BOOLEAN, True)], seq=0), qos=0)
        wait_until(lambda: len(lst.on("spBv1.0/G/DBIRTH/N/D")) == 2, 10, "rebirth")
        assert decode_payload(lst.on("spBv1.0/G/NBIRTH/N")[1][0]) | {"timestamp": None} == nbirth | {"timestamp": None}  # same session
        assert decode_payload(lst.on("spBv1.0/G/DBIRTH/N/D")[1][0])["metrics"]["counters/inspected"] == 3
    finally:
        node.stop()
    ndeath = wait_until(lambda: lst.on("spBv1.0/G/NDEATH/N"), 5, "NDEATH on a graceful stop")
    assert decode_payload(ndeath[0][0])["metrics"]["bdSeq"] == 0 and node.bdseq == 1  # the next connection's will carries 1
