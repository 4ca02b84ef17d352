"""Audit 51 of a running station's less-audited parts: Sparkplug B, the verification images, the live view, the outbox."""

from __future__ import annotations

from inspector.config import MqttSection, Sparkplug
from inspector.sparkplug import SparkplugNode, decode_payload
from tests.inspector.conftest import wait_until


def test_sparkplug_counts_every_defect_region_not_only_those_the_record_lists(broker, listen):
    """A part with 35 regions: the record lists the 20 most severe, and DDATA's `defects` read 20."""
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    node = SparkplugNode(MqttSection(port=broker.port, prefix="x"), Sparkplug(enabled=True, group_id="G", device_id="D"), "N", "spb-a51")
    node.start()
    try:
        wait_until(lambda: lst.on("spBv1.0/G/DBIRTH/N/D"), 10, "births")
        node.publish_result({"inspection_id": "many", "verdict": "FAIL", "score": 9.0, "threshold": 1.0, "defects": [{}] * 20,
                             "defects_found": 35})
        node.publish_result({"inspection_id": "old", "verdict": "FAIL", "score": 9.0, "threshold": 1.0, "defects": [{}] * 3})  # no count
        data = wait_until(lambda: len(lst.on("spBv1.0/G/DDATA/N/D")) == 2 and lst.on("spBv1.0/G/DDATA/N/D"), 10, "DDATA")
    finally:
        node.stop()
    assert [decode_payload(p)["metrics"]["defects"] for p, _ in data] == [35, 3]
