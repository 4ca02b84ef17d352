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


def test_images_the_broker_held_through_a_slow_start_wait_for_room(station, broker, listen, tiny_inspector, good_png, monkeypatch):
    """The wait counted from each image's arrival, and the broker hands over what it held while the model still
    loads: a load longer than queue_wait_s refused all but queue_size of them at once."""
    import time

    import inspector.daemon as daemon

    # the wait (8 s) well over the 18 inspections it must cover after the start (under a second here; a loaded CI machine
    # is slower), the load (12 s) well over the wait: counted from arrival, every wait is over before the start
    cfg = station(model={"queue_size": 2, "batch_size": 1, "queue_wait_s": 8})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        pass  # the station's broker session, which keeps its inputs while it is down
    for i in range(20):
        lst.publish("image", good_png, user={"inspection_id": f"held-{i}"})
    real = daemon.verify
    monkeypatch.setattr(daemon, "verify", lambda *a, **k: (time.sleep(12), real(*a, **k))[1])  # a model loading for 12 s
    with running(cfg, tiny_inspector):
        wait_until(lambda: len(lst.result_ids()) + len(lst.on("error")) >= 20, 120, "every input answered")
    assert not lst.json("error") and len(lst.result_ids()) == 20


def test_an_image_waiting_for_room_when_the_station_stops_is_left_to_the_broker(station, broker, listen, tiny_inspector, good_png,
                                                                               monkeypatch):
    """Refused as the station stopped, it was answered with an error and taken from the broker; left unacknowledged,
    the broker sends it again at the next start, and it is inspected then."""
    import time

    cfg = station(model={"queue_size": 1, "batch_size": 1, "queue_wait_s": 600}, daemon={"drain_timeout_s": 30})
    lst = listen(broker.port, cfg.mqtt.prefix)
    engine = tiny_inspector.engine
    real = engine.infer
    # 5 s a part: the four take 20 s, far beyond the stop below (at 1 s a part, a stop delayed 2 s on a loaded machine
    # came after all four were inspected)
    monkeypatch.setattr(engine, "infer", lambda *a, **k: (time.sleep(5.0), real(*a, **k))[1])
    with running(cfg, tiny_inspector):
        for i in range(4):
            lst.publish("image", good_png, user={"inspection_id": f"w-{i}"})
        time.sleep(2.5)  # one inspected, one queued, the others waiting for room
    assert len(lst.result_ids()) < 4
    monkeypatch.setattr(engine, "infer", real)
    with running(cfg, tiny_inspector):
        wait_until(lambda: len(lst.result_ids()) >= 4, 60, "every image inspected")
    assert not lst.json("error") and lst.result_ids() == {f"w-{i}" for i in range(4)}
