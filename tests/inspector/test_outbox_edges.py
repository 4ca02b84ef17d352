"""The outbox's bookkeeping at its edges (inspector/outbox.py), against a real Mosquitto: every result the broker
acknowledged while the store could not mark it is marked at the next drain, and each acknowledgement is counted."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inspector.config import MqttSection
from inspector.health import Metrics
from inspector.mqtt import MqttClient, Reply
from inspector.outbox import Outbox
from inspector.store import Store
from tests.inspector.conftest import wait_until


def mqtt_cfg(port: int) -> MqttSection:
    return MqttSection.model_validate({"port": port, "prefix": "t/s", "connect_timeout_s": 5.0})


def record(ident: str) -> dict:
    return {"inspection_id": ident, "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS", "score": 0.5, "threshold": 1.0}


@contextmanager
def outbox_on(port: int, data: Path, name: str, metrics: Metrics | None = None) -> Iterator[tuple[MqttClient, Store, Outbox]]:
    """A client connected to the broker at `port`, a store in `data` and the outbox between them; stopped and closed after."""
    client = MqttClient(mqtt_cfg(port), name)
    client.start()
    store = Store(data)
    try:
        wait_until(lambda: client.connected, 15, "connected")
        yield client, store, Outbox(store, client, "t/s/result", metrics or Metrics())
    finally:
        client.stop()
        store.close()


def full(ident):
    raise sqlite3.OperationalError("database or disk is full")


def test_all_results_acknowledged_during_a_full_disk_are_marked_when_it_clears(tmp_path, monkeypatch, broker):
    """Marking stopped at the first result it could mark: the others stayed unmarked (and unsent) one drain each."""
    metrics = Metrics()
    with outbox_on(broker.port, tmp_path / "data", "outbox-edges", metrics) as (client, store, box):
        for ident in ("a1", "a2", "a3"):
            store.add(record(ident))
            box.publish(record(ident))
        wait_until(lambda: client.acks.qsize() == 3, 10, "three acknowledgements")
        real = store.mark_published
        monkeypatch.setattr(store, "mark_published", full)
        assert box.drain_acks() == 3 and store.counts()["unpublished"] == 3
        monkeypatch.setattr(store, "mark_published", real)
        box.drain_acks()  # one drain, no new acknowledgements: all three marked
        assert store.counts()["unpublished"] == 0 and box.resend() == 0 and box.in_flight == 0
        # each acknowledgement counted once, with its publish latency observed
        assert metrics.total("inspector_published_total") == 3
        assert metrics.value("inspector_stage_seconds", {"stage": "publish"}) == 3


def test_a_result_the_broker_acknowledged_is_not_sent_again_while_the_store_cannot_mark_it(tmp_path, monkeypatch, broker, listen):
    """On a full disk marking a result published failed: a traceback every 2 s, and every such result re-sent to the
    line's consumers every 2 s (6 copies each in 15 s)."""
    lst = listen(broker.port, "t/s")
    with outbox_on(broker.port, tmp_path / "data", "outbox-ack") as (client, store, box):
        store.add(record("a1"))
        box.publish(record("a1"))
        wait_until(lambda: not client.acks.empty(), 10, "the broker's acknowledgement")
        real = store.mark_published
        monkeypatch.setattr(store, "mark_published", full)
        assert box.drain_acks() == 1  # no exception
        assert box.resend() == 0  # acknowledged: not sent again
        monkeypatch.setattr(store, "mark_published", real)
        box.drain_acks()
        assert store.counts()["unpublished"] == 0 and box.resend() == 0
        wait_until(lambda: lst.json("result"), 10, "the result")
        time.sleep(0.3)  # a copy sent again would have arrived by now, on loopback
        assert [r["inspection_id"] for r in lst.json("result")] == ["a1"]


def test_a_refused_result_waits_before_it_is_offered_again(tmp_path, monkeypatch, make_broker):
    """The broker's ACL refuses the result topic: offering it again at every resend (each 2 s) floods a broker that
    will refuse it again; it waits REFUSED_RETRY_S (60 s), and /health names the reason meanwhile."""
    from inspector import outbox

    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny t/s/result\n")
    broker = make_broker(extra=f"acl_file {acl}")
    with outbox_on(broker.port, tmp_path / "data", "outbox-refused") as (client, store, box):
        store.add(record("r1"))
        box.publish(record("r1"))
        wait_until(lambda: client.refused.qsize() == 1, 10, "the broker's refusal")
        assert box.drain_acks() == 0 and box.in_flight == 0 and store.counts()["unpublished"] == 1
        assert box.refusing() is not None and "authori" in box.refusing().lower()
        assert box.resend() == 0  # refused just now: not offered again yet
        monkeypatch.setattr(outbox, "REFUSED_RETRY_S", 0.0)
        assert box.resend() == 1 and box.refusing() is None  # once the wait is over, it is offered again


def test_a_result_left_by_an_earlier_run_is_sent_as_it_was_stored(tmp_path, broker, listen):
    """The store's bookkeeping column (published_at) is no part of the result: consumers get the record as stored."""
    lst = listen(broker.port, "t/s")
    with outbox_on(broker.port, tmp_path / "data", "outbox-resend") as (_, store, box):
        store.add(record("left1"))  # stored, never handed over: the process stopped before publishing
        assert box.resend() == 1 and box.resend() == 0  # handed over once: paho holds it until acknowledged
        wait_until(lambda: lst.json("result"), 10, "the result")
        [got] = lst.json("result")
        assert "published_at" not in got and {k: got[k] for k in record("left1")} == record("left1")


def test_a_result_resent_keeps_its_correlation_data_also_from_a_new_store_and_outbox(tmp_path, broker, listen):
    """A stored result re-sent (after an outage, after a restart) went out without the CorrelationData of the input it
    answers: the re-send read the record only."""
    lst = listen(broker.port, "t/s")
    with outbox_on(broker.port, tmp_path / "data", "outbox-corr") as (_, store, box):
        store.add(record("c1"), reply=Reply(b"\x00corr-1"))  # stored, not handed over: the broker was down
        store.add(record("c0"))  # an input without correlation data
        assert box.resend() == 2
        wait_until(lambda: len(lst.on("result")) == 2, 10, "both results")
    # never marked published (the process went before it drained the acks): a new one finds both in the store
    with outbox_on(broker.port, tmp_path / "data", "outbox-corr-again") as (_, store, box):
        assert box.resend() == 2
        wait_until(lambda: len(lst.on("result")) == 4, 10, "both results again")
    got = sorted((json.loads(p)["inspection_id"], c) for p, c in lst.on("result"))
    assert got == [("c0", None), ("c0", None), ("c1", b"\x00corr-1"), ("c1", b"\x00corr-1")]
    assert all(json.loads(p) == record(json.loads(p)["inspection_id"]) | {"images": {}} for p, _ in lst.on("result"))


def test_repeats_waiting_for_a_result_get_a_copy_each_when_it_is_handed_over(tmp_path, broker, listen):
    lst = listen(broker.port, "t/s")
    with outbox_on(broker.port, tmp_path / "data", "outbox-repeats") as (client, store, box):
        assert box.repeats.add("r1", Reply(b"f2")) and box.repeats.add("r1", None)
        store.add(record("r1"), reply=Reply(b"f1"))
        box.publish(record("r1"), Reply(b"f1"))
        wait_until(lambda: len(lst.on("result")) == 3, 10, "three copies")
        assert sorted(c or b"" for _, c in lst.on("result")) == [b"", b"f1", b"f2"] and box.repeats.take("r1") == []
        wait_until(lambda: client.acks.qsize() == 3, 10, "three acknowledgements")
        box.drain_acks()
        assert store.counts()["unpublished"] == 0 and box.in_flight == 0 and box.resend() == 0
