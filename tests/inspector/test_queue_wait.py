"""Images sent over MQTT wait a while for room in a full queue before they are refused."""

from __future__ import annotations

import base64
import json

from tests.inspector.conftest import running, wait_until


def test_a_burst_of_images_waits_for_room_instead_of_being_refused(station, broker, listen, tiny_inspector, good_png):
    """At a start the broker sends the parts it held for the station at once: all but the first queue_size were
    refused as "the inspection queue is full; slow the trigger rate", though the line had sent them at its pace."""
    cfg = station(model={"queue_size": 2, "batch_size": 1, "queue_wait_s": 120})
    lst = listen(broker.port, cfg.mqtt.prefix)
    b64 = base64.b64encode(good_png).decode()
    with running(cfg, tiny_inspector):
        for i in range(20):
            lst.publish("image", good_png, user={"inspection_id": f"img-{i}"})
            lst.publish("trigger", json.dumps({"inspection_id": f"b64-{i}", "base64": b64}))
        wait_until(lambda: len(lst.result_ids()) + len(lst.on("error")) >= 40, 120, "every input answered")
    assert not lst.json("error") and len(lst.result_ids()) == 40
