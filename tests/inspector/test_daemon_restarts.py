"""The station daemon over a long run and across restarts: Sparkplug order after a reconnect, the journal
after a crash, and what a station holds as it runs."""

from __future__ import annotations

import socket
import threading

import pytest

from inspector.sparkplug import SparkplugNode, decode_payload
from inspector.store import Store
from tests.inspector.conftest import born_node, running, wait_until


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
    window = [{"inspection_id": i, "serial": "s", "verdict": "PASS", "score": 0.1, "threshold": 1.0} for i in "ac"]
    with born_node(broker.port, lst, "spb-a50", lambda n: _in_the_window(n, window)) as node:
        node.publish_result({"inspection_id": "b", "serial": "s", "verdict": "FAIL", "score": 2.0, "threshold": 1.0})
        wait_until(lambda: lst.on("spBv1.0/G/DDATA/N/D"), 10, "DDATA")
        # the connection drops (a network fault): the node reconnects, and a result comes in the same window again
        node.client._client.socket().shutdown(socket.SHUT_RDWR)
        wait_until(lambda: len(lst.on("spBv1.0/G/DBIRTH/N/D")) == 2, 20, "births after the reconnect")
        node.publish_result({"inspection_id": "d", "serial": "s", "verdict": "PASS", "score": 0.3, "threshold": 1.0})
        wait_until(lambda: len(lst.on("spBv1.0/G/DDATA/N/D")) >= 2, 10, "DDATA after the reconnect")
    seen = [(t.split("/")[2], decode_payload(p)) for t, p, _ in lst.messages if t.startswith("spBv1.0/G/") and "NDEATH" not in t]
    kinds = [k for k, _ in seen]
    assert kinds == ["NBIRTH", "DBIRTH", "DDATA", "NBIRTH", "DBIRTH", "DDATA"], kinds  # no DDATA ahead of a connection's births
    assert [p["seq"] for _, p in seen] == [0, 1, 2, 0, 1, 2]
    # the results of the window are carried by the births that followed them
    assert seen[1][1]["metrics"]["inspection_id"] == "a" and seen[4][1]["metrics"]["inspection_id"] == "c"
    assert seen[4][1]["metrics"]["counters/inspected"] == 3


# -- an input journaled, its acknowledgement lost with a crash ---------------------------------------------------

@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_input_journaled_before_a_crash_is_not_inspected_again_when_the_broker_sends_it_again(station, broker, listen, tiny_inspector,
                                                                                             good_png, defect_png, protocol):
    """A station that crashed after journaling inputs, before their acknowledgements reached the broker, got each again
    at its next start (DUP, the same packet id): a part sent without an inspection_id was inspected twice, two results
    under two generated ids. Its copy is known by what the journal kept of it; the same image sent anew is a new part."""
    cfg = station(mqtt={"protocol": protocol}, watchdog={"interval_s": 5}, daemon={"drain_timeout_s": 0.5})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        d.mqtt._client.ack = lambda mid, qos: None  # the crash to come: no acknowledgement reaches the broker
        lst.publish("image/A1", good_png).wait_for_publish(5)  # inspected and stored before the crash
        wait_until(lambda: lst.json("result"), 30, "A1's result")
        d.workers["inference"].join(5)  # ... and B2 journaled, never inspected
        lst.publish("image/B2", defect_png).wait_for_publish(5)
        wait_until(lambda: d.store.counts()["pending"] == 1, 20, "B2 journaled")
    left = Store(cfg.store.data_dir)
    assert left.counts() == {"unpublished": 0, "pending": 1, "records": 1}
    left.close()
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: d.store.counts()["records"] >= 2 and not d.store.counts()["pending"], 30, "B2 recovered")
        lst.publish("image/A1", good_png).wait_for_publish(5)  # sent anew: a new part, with the image of the first
        wait_until(lambda: [r["serial"] for r in lst.json("result")].count("A1") >= 2, 30, "the new part's result")
        wait_until(lambda: not d.store.counts()["pending"], 30, "nothing left journaled")
        serials = sorted(r["serial"] for r in d.store.records())
    assert serials == ["A1", "A1", "B2"], serials  # without: A1 A1 A1 B2 B2 (each copy a part inspected again)


def test_what_the_journal_kept_of_inputs_is_void_in_a_session_the_broker_does_not_have(station, broker, listen, tiny_inspector, good_png):
    """A broker that kept no session of the station (restarted without persistence, or a new client id) numbers its
    packets from 1 again: an input journaled before is no longer known by its packet id."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        lst.publish("image/A1", good_png).wait_for_publish(5)
        wait_until(lambda: lst.json("result"), 30, "A1's result")
        assert [t for _, t, _ in d.store.deliveries(60)] == [f"{cfg.mqtt.prefix}/image/A1"]
    again = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"client_id": cfg.mqtt.client_id + "-new"})})
    with running(again, tiny_inspector) as d:
        assert d.store.deliveries(60) == [] and not d.mqtt._acked


def test_a_watchdog_check_that_fails_once_does_not_end_the_watchdog(station, tiny_inspector, caplog):
    """The watchdog's check reads the store's counts: one SQLite error there (a disk I/O error) ended its thread for good,
    and no dead worker was restarted after it, nor the status kept."""
    import sqlite3

    cfg = station(watchdog={"interval_s": 0.2})
    with running(cfg, tiny_inspector) as d:
        counts, failed = d.store.counts, []

        def once(*a, **kw):
            if not failed and threading.current_thread() is d._watchdog:
                failed.append(True)
                raise sqlite3.OperationalError("disk I/O error")
            return counts(*a, **kw)

        d.store.counts = once
        wait_until(lambda: failed, 10, "the failing check")
        sink = d.workers["sink"]
        sink._thread = threading.Thread(target=lambda: None)  # a worker that died after it
        sink._thread.start()
        sink._thread.join()
        wait_until(lambda: sink.alive, 10, "the dead worker restarted")
        assert d._watchdog.is_alive() and sink.restarts == 1
        # restarted, said for a while; the check runs again (the worker is alive before that check ends and clears its
        # failed predecessor's problem: asked at once, health said failing once in CI)
        wait_until(lambda: d.health()["status"] == "degraded", 10, "degraded, no longer failing")
    assert "watchdog: its check failed" in caplog.text and "disk I/O error" in caplog.text
