"""Sparkplug B: the hand-written protobuf round-trips; births, data and rebirth against a real broker."""

from __future__ import annotations

import struct

from inspector.config import MqttSection, Sparkplug
from inspector.sparkplug import BOOLEAN, DOUBLE, STRING, UINT32, UINT64, SparkplugNode, decode_payload, encode_payload
from tests.inspector.conftest import born_node, wait_until


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
    with born_node(broker.port, lst, "spb-test") as node:
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
    ndeath = wait_until(lambda: lst.on("spBv1.0/G/NDEATH/N"), 5, "NDEATH on a graceful stop")
    assert decode_payload(ndeath[0][0])["metrics"]["bdSeq"] == 0 and node.bdseq == 1  # the next connection's will carries 1


def test_the_shipped_acl_lets_a_node_publish_its_device_data(make_broker, listen, tmp_path, monkeypatch):
    """configs/mosquitto.acl's Sparkplug line covered the node's topics alone: the broker dropped every DBIRTH and DDATA
    (spBv1.0/G/DDATA/<node>/<device>), and the SCADA host saw births and deaths only, nothing said."""
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    pw = tmp_path / "passwd"
    for i, user in enumerate(("st1", "scada")):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(pw), user, f"{user}-pw"], check=True, capture_output=True)
    pw.chmod(0o644)
    shipped = (Path(__file__).parents[2] / "configs" / "mosquitto.acl").read_text()
    # as a line using Sparkplug turns it on: its commented-out Sparkplug lines uncommented
    acl = tmp_path / "acl"
    acl.write_text("\n".join(line[2:] if line.startswith(("# pattern readwrite spBv1.0", "# user scada", "# topic ")) and
                             ("spBv1.0" in line or "scada" in line) else line for line in shipped.splitlines()) + "\n")
    assert "\npattern readwrite spBv1.0" in acl.read_text() and "\nuser scada\n" in acl.read_text()
    broker = make_broker(anonymous=False, extra=f"password_file {pw}\nacl_file {acl}")
    monkeypatch.setenv("TEST_SPB_PW", "st1-pw")
    scada = listen(broker.port, "unused", extra_topics=("spBv1.0/#",), login=("scada", "scada-pw"))
    node = SparkplugNode(MqttSection(port=broker.port, prefix="plant/st1", username="st1", password_env="TEST_SPB_PW"),
                         Sparkplug(enabled=True, group_id="G", device_id="D", edge_node_id="st1"), "station-1", "spb-acl")
    node.start()
    try:
        wait_until(lambda: scada.on("spBv1.0/G/NBIRTH/st1"), 10, "NBIRTH")
        node.publish_result({"inspection_id": "i1", "serial": "s1", "verdict": "PASS", "score": 0.1, "threshold": 1.0, "defects": []})
        wait_until(lambda: scada.on("spBv1.0/G/DDATA/st1/D"), 10, "DDATA through the shipped ACL")
        assert scada.on("spBv1.0/G/DBIRTH/st1/D")
        scada.client.publish("spBv1.0/G/NCMD/st1", encode_payload([("Node Control/Rebirth", BOOLEAN, True)], seq=0), qos=0)
        wait_until(lambda: len(scada.on("spBv1.0/G/DBIRTH/st1/D")) == 2, 10, "a rebirth the SCADA user asked for")
    finally:
        node.stop()


def test_bdseq_goes_on_over_a_restart(broker, listen, tmp_path):
    """Each start began again at bdSeq 0: the new session shared its bdSeq with the last one's NDEATH, and a host that
    got that will late took it for the new session's death (the node shown offline while it ran)."""
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    kept = tmp_path / "sparkplug.bdseq"
    for run in range(2):
        node = SparkplugNode(MqttSection(port=broker.port, prefix="x"), Sparkplug(enabled=True, group_id="G", device_id="D"), "N",
                             f"spb-run{run}", kept)
        node.start()
        try:
            wait_until(lambda r=run: len(lst.on("spBv1.0/G/NBIRTH/N")) == r + 1, 10, f"run {run}'s NBIRTH")
        finally:
            node.stop()
        wait_until(lambda r=run: len(lst.on("spBv1.0/G/NDEATH/N")) == r + 1, 10, f"run {run}'s NDEATH")
    births = [decode_payload(p)["metrics"]["bdSeq"] for p, _ in lst.on("spBv1.0/G/NBIRTH/N")]
    deaths = [decode_payload(p)["metrics"]["bdSeq"] for p, _ in lst.on("spBv1.0/G/NDEATH/N")]
    assert births == deaths == [0, 1] and kept.read_text() == "2\n"
    kept.write_text("not a number")
    assert SparkplugNode(MqttSection(port=broker.port, prefix="x"), Sparkplug(enabled=True), "N", "spb-bad", kept).bdseq == 0
