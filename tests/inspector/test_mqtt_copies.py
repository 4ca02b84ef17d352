"""Copies a broker sends again are dropped only where the first one's acknowledgement may have been lost."""

from __future__ import annotations

import time

import paho.mqtt.client as paho

from inspector.config import MqttSection
from inspector.mqtt import MqttClient, ack_lost_s
from inspector.store import Store


def client() -> tuple[MqttClient, list[int]]:
    c = MqttClient(MqttSection(port=1, prefix="p", keepalive_s=30), "copies", subscriptions=["p/trigger"], manual_ack=True)
    acks: list[int] = []
    c._client.ack = lambda mid, qos: acks.append(mid)
    return c, acks


def arrive(c: MqttClient, payload: bytes, mid: int, dup: bool) -> None:
    msg = paho.MQTTMessage(mid, b"p/trigger")
    msg.payload, msg.qos, msg.dup = payload, 1, dup
    c._message(c._client, None, msg)


def handed_on(c: MqttClient) -> list[bytes]:
    out = []
    while not c.inbox.empty():
        out.append(c.inbox.get_nowait().payload)
    return out


def test_a_capture_trigger_on_a_packet_id_given_again_is_a_new_part():
    """`{}` is the same bytes for every capture: once its acknowledgement had surely reached the broker, which may then
    give the packet id to the next input, a DUP `{}` on that id was taken for a copy and the part was never inspected."""
    c, acks = client()
    arrive(c, b"{}", 1, False)
    c.ack(c.inbox.get_nowait())
    c._lost_at = time.monotonic() + ack_lost_s(c.cfg) + 60  # the connection was lost long after that acknowledgement
    arrive(c, b"{}", 1, True)
    assert handed_on(c) == [b"{}"] and acks == [1]


def test_a_copy_whose_acknowledgement_may_have_been_lost_is_dropped():
    c, acks = client()
    arrive(c, b"{}", 1, False)
    c.ack(c.inbox.get_nowait())
    c._lost_at = time.monotonic() + 1  # lost just after: the broker may not have it
    arrive(c, b"{}", 1, True)
    assert handed_on(c) == [] and acks == [1, 1]


def test_a_new_input_on_an_acknowledged_id_forgets_the_old_one():
    """A non-DUP input on a packet id shows that the broker had the last acknowledgement on it."""
    c, acks = client()
    arrive(c, b"{}", 5, False)
    c.ack(c.inbox.get_nowait())
    arrive(c, b'{"serial": "S2"}', 5, False)
    c.ack(c.inbox.get_nowait())
    arrive(c, b'{"serial": "S2"}', 5, True)  # a copy of the second: dropped
    arrive(c, b"{}", 5, True)  # the first one's digest is forgotten: a part
    assert handed_on(c) == [b"{}"]


def test_the_journal_recalls_only_inputs_that_may_still_wait_at_the_broker(tmp_path):
    store = Store(tmp_path / "data")
    store.accept("old", {}, b"x", delivery=(1, "p/trigger", b"d1"))
    store._db.execute("UPDATE deliveries SET at = at - 3600")  # journaled an hour before the last one
    store.accept("new", {}, b"x", delivery=(2, "p/trigger", b"d2"))
    assert store.deliveries(60) == [(2, "p/trigger", b"d2")]
    assert [m for m, _, _ in store.deliveries(7200)] == [1, 2]
    store.close()
