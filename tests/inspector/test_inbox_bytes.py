"""The station's inbox is bounded in the bytes of the payloads waiting, not only in their count: a burst of QoS 0 images
(which the broker's ReceiveMaximum does not hold back) queued up to 10,000 x mqtt.max_payload_bytes, and the station
was killed for memory with everything queued lost."""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading

import numpy as np
import paho.mqtt.client as paho
import pytest

from inspector.config import MqttSection
from inspector.mqtt import SMALL_INPUT, Inbox, Message, MqttClient
from tests.inspector.conftest import png, running, wait_until


def _msg(size: int, topic: str = "p/image/SN1", qos: int = 0) -> Message:
    return Message(topic, b"x" * size, qos, 0)


def test_an_input_beyond_the_bytes_waiting_is_refused_and_the_bytes_are_released_when_taken():
    inbox = Inbox(10_000, max_bytes=1_000_000)
    inbox.put_nowait(_msg(400_000))
    inbox.put_nowait(_msg(400_000))
    with pytest.raises(queue.Full, match=r"^\(800,000 bytes of inputs waiting, and this one's 400,000 would pass mqtt.max_waiting_bytes, 1,000,000\); slow down, or raise"):
        inbox.put_nowait(_msg(400_000))  # before: taken, up to 10,000 of them
    assert inbox.waiting_bytes == 800_000 and inbox.qsize() == 2  # the refused one is not counted
    inbox.put_nowait(_msg(SMALL_INPUT, "p/trigger"))  # a trigger costs next to nothing: refusing it frees nothing
    inbox.put_nowait("a source's frame")  # no payload: no bytes
    assert inbox.waiting_bytes == 800_000 + SMALL_INPUT
    for _ in range(4):
        inbox.get_nowait()
    assert inbox.waiting_bytes == 0 and inbox.empty()  # nothing leaks
    inbox.put_nowait(_msg(3_000_000))  # alone, one bigger than the budget goes in (mqtt.max_payload_bytes bounds it)
    with pytest.raises(queue.Full):
        inbox.put_nowait(_msg(SMALL_INPUT + 1))
    assert inbox.waiting_bytes == 3_000_000


def test_the_count_bound_still_says_how_many_wait_and_leaves_no_bytes_counted():
    inbox = Inbox(2, max_bytes=10_000_000)
    inbox.put_nowait(_msg(10))
    inbox.put_nowait(_msg(20))
    with pytest.raises(queue.Full, match=r"^\(2 inputs waiting\); slow down$"):
        inbox.put_nowait(_msg(30))
    assert inbox.waiting_bytes == 30


def test_the_client_answers_an_image_past_the_budget_as_an_overflow_saying_why():
    c = MqttClient(MqttSection(port=1, prefix="p", max_waiting_bytes=1_000_000), "inbox-test")
    assert isinstance(c.inbox, Inbox) and c.inbox.max_bytes == 1_000_000
    assert MqttSection(prefix="p").max_waiting_bytes == 1 << 30
    overflowed: list[tuple[bytes, str]] = []
    c._on_overflow = lambda m, why: overflowed.append((m.topic.encode(), why))
    for n in range(3):
        msg = paho.MQTTMessage(n + 1, f"p/image/SN{n}".encode())
        msg.payload, msg.qos = b"x" * 400_000, 0
        c._message(c._client, None, msg)
    assert c.inbox.qsize() == 2 and [t for t, _ in overflowed] == [b"p/image/SN2"]
    assert "mqtt.max_waiting_bytes" in overflowed[0][1]


def test_refused_response_topics_stop_being_warned_after_a_hundred(caplog):
    c = MqttClient(MqttSection(port=1, prefix="p", response_topics=["hmi/#"]), "topics-test")
    with caplog.at_level(logging.DEBUG, logger="inspector.mqtt"):
        for i in range(150):
            assert c._response_topic(f"other/{i}", "p/trigger") is None
        c._response_topic("other/0", "p/trigger")  # said already: not again
    said = [r for r in caplog.records if "asks for its answer" in r.getMessage()]
    warned = [r for r in said if r.levelno == logging.WARNING]
    assert len(warned) == 100  # before: one warning for each of the 150, and for as many as a client names
    assert "further refused Response Topics are logged at debug level only" in warned[-1].getMessage()
    assert len(said) == 150 and all(r.levelno == logging.DEBUG for r in said[100:])


def test_a_burst_of_qos0_images_past_the_byte_budget_is_answered_overloaded(station, broker, listen, tiny_inspector):  # noqa: F811
    """The intake held on its first image; the images after it fill the budget and the rest are answered `overloaded` (with
    their serial, a QoS 1 one acknowledged), a small trigger still gets in, and once all is handled no bytes wait."""
    image = png(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))  # noise: it does not compress
    size = len(image)
    assert size > SMALL_INPUT
    cfg = station(mqtt={"max_waiting_bytes": 5 * size + size // 2})  # room for five while the intake is held
    trigger = json.dumps({"serial": "T1", "base64": base64.b64encode(png(np.full((16, 16, 3), 128, np.uint8))).decode()}).encode()
    assert len(trigger) <= SMALL_INPUT
    with running(cfg, tiny_inspector) as d:
        lst = listen(broker.port, cfg.mqtt.prefix)
        entered, go = threading.Event(), threading.Event()
        handle = d.intake._message

        def held(msg: Message) -> None:
            entered.set()
            go.wait(120)
            handle(msg)

        d.intake._message = held
        try:
            lst.publish("image/SN0", image, qos=0)
            assert entered.wait(30), "the intake took the first image"
            for i in range(1, 12):
                lst.publish(f"image/SN{i}", image, qos=0)
            lst.publish("image/SN12", image, qos=1).wait_for_publish(30)
            lst.publish("trigger", trigger, qos=0)
            wait_until(lambda: d.intake.inbox.waiting_bytes == 5 * size + len(trigger), 60, "five images and the trigger waiting")
            refused = wait_until(lambda: len(lst.json("error")) >= 7 and lst.json("error"), 60, "the refusals")
            assert d.health()["inbox_bytes"] == 5 * size + len(trigger)
            assert d.metrics.value("inspector_inbox_bytes") == 5 * size + len(trigger)  # set by health()
        finally:
            go.set()
        assert sorted(e["serial"] for e in refused) == sorted(f"SN{i}" for i in range(6, 13))
        assert all(e["error"].startswith(f"{cfg.mqtt.prefix}/image/{e['serial']}: the station is overloaded ({5 * size:,} bytes of inputs "
                   "waiting, and this one's") and e["error"].endswith("where the station has the memory") for e in refused)
        assert d.metrics.value("inspector_rejected_total", {"reason": "overloaded"}) == 7
        wait_until(lambda: len(lst.json("result")) == 7, 120, "the results of the images let in and of the trigger")
        assert sorted(r["serial"] for r in lst.json("result")) == sorted([*(f"SN{i}" for i in range(6)), "T1"])
        assert d.intake.inbox.waiting_bytes == 0 and d.intake.inbox.empty()  # released as taken: nothing leaks
        assert d.health()["inbox_bytes"] == 0
        assert not d.mqtt._held  # the refused QoS 1 image was acknowledged, as an overflow's is
        assert len(lst.json("error")) == 7
