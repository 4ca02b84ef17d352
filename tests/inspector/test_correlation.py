"""MQTT 5 correlation data on results: kept with the stored record for every re-send, and a repeat of an inspection_id
still being inspected answered with its own (against a real Mosquitto, with the tiny model)."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time

import pytest

from inspector import outbox
from inspector.config import StationConfig
from inspector.health import Metrics
from inspector.intake import Intake
from inspector.mqtt import Message, Reply, Topics
from inspector.outbox import Repeats
from inspector.store import Store
from model.errors import InspectorError
from tests.inspector.conftest import running, wait_until


def held(monkeypatch, d, fail: bool = False) -> threading.Event:
    """Hold the daemon's inference until the returned event is set (then inspect, or fail as a frame without the
    model's region does), so that a job stays under way."""
    gate, inspect = threading.Event(), d.inference.inspector.inspect_batch

    def hold(*a, **k):
        gate.wait(30)
        if fail:
            raise InspectorError("trigger: no region of interest in this frame")
        return inspect(*a, **k)

    monkeypatch.setattr(d.inference.inspector, "inspect_batch", hold)
    return gate


def test_a_result_left_unpublished_by_a_stopped_station_keeps_its_correlation_data(station, broker, listen, tiny_inspector, good_png,
                                                                                    monkeypatch):
    """Broker down, station stopped while it held the result (as a kill would leave it): the next start re-sent it
    without the CorrelationData of the input it answers (30 of 40 such results in the audit)."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        gate = held(monkeypatch, d)
        lst.publish("trigger", json.dumps({"inspection_id": "k-1", "base64": base64.b64encode(good_png).decode()}), correlation=b"k1")
        wait_until(lambda: d.metrics.total("inspector_frames_total") == 1, 10, "the trigger accepted")
        broker.kill()  # no persistence: the restarted broker redelivers nothing, so only the store can answer
        wait_until(lambda: not d.mqtt.connected, 5, "the daemon to notice")
        gate.set()
        wait_until(lambda: d.store.count() == 1, 15, "the result stored")
        assert d.store.counts()["unpublished"] == 1
    broker.start()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        got = wait_until(lambda: lst.on("result"), 15, "the stored result re-sent")
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 10, "acknowledged")
    assert [(json.loads(p)["inspection_id"], c) for p, c in got] == [("k-1", b"k1")]
    assert "correlation" not in json.loads(got[0][0])  # kept beside the record, not in it (the published contract)


def test_a_repeat_of_a_part_under_way_gets_its_result_with_its_own_correlation_data(station, broker, listen, tiny_inspector, good_png,
                                                                                     monkeypatch):
    """Two triggers with one inspection_id back to back: the first's result came, the repeat was acknowledged and never
    answered."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    b64 = base64.b64encode(good_png).decode()
    trigger = lambda corr: lst.publish("trigger", json.dumps({"inspection_id": "dup-1", "base64": b64}), correlation=corr)  # noqa: E731
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        gate = held(monkeypatch, d)
        trigger(b"f1")
        wait_until(lambda: d.metrics.total("inspector_frames_total") == 1, 10, "the first accepted")
        trigger(b"f2")
        # the intake takes inputs in order: once this one is refused, the repeat was taken while the first was under way
        lst.publish("trigger", json.dumps({"capture": False}), correlation=b"mark")
        wait_until(lambda: [c for _, c in lst.on("error")] == [b"mark"], 10, "the marker refused")
        gate.set()
        results = wait_until(lambda: len(lst.on("result")) >= 2 and lst.on("result"), 15, "both answered")
        assert sorted(c for _, c in results) == [b"f1", b"f2"] and results[0][0] == results[1][0]  # one record, twice
        assert d.store.count() == 1 and d.metrics.total("inspector_frames_total") == 1  # inspected once
        trigger(b"f3")  # once stored, a repeat is answered from the store, with its own correlation data
        wait_until(lambda: len(lst.on("result")) == 3, 10, "the stored repeat answered")
        assert lst.on("result")[2] == (results[0][0], b"f3")
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 10, "acknowledged")
    assert [c for _, c in lst.on("error")] == [b"mark"]


def test_repeats_of_a_part_that_gets_no_result_get_its_error_and_too_many_are_refused(station, broker, listen, tiny_inspector,
                                                                                       good_png, monkeypatch):
    monkeypatch.setattr(outbox, "REPEATS_KEPT", 1)
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    b64 = base64.b64encode(good_png).decode()
    trigger = lambda corr: lst.publish("trigger", json.dumps({"inspection_id": "gone-1", "base64": b64}), correlation=corr)  # noqa: E731
    errors = lambda: {c: json.loads(p) for p, c in lst.on("error")}  # noqa: E731
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        gate = held(monkeypatch, d, fail=True)
        trigger(b"f1")
        wait_until(lambda: d.metrics.total("inspector_frames_total") == 1, 10, "the first accepted")
        trigger(b"f2")
        trigger(b"f3")  # beyond the repeats remembered for one id: told so at once
        wait_until(lambda: b"f3" in errors(), 10, "the third refused")
        assert "too many repeats" in errors()[b"f3"]["error"] and errors()[b"f3"]["inspection_id"] == "gone-1"
        gate.set()
        wait_until(lambda: {b"f1", b"f2"} <= set(errors()), 15, "the first and its repeat answered")
        first, repeat = errors()[b"f1"], errors()[b"f2"]
        assert "no region" in first["error"] and "kept at" in first["error"]  # set aside, as the first is told
        assert {k: repeat[k] for k in ("error", "input", "inspection_id")} == {k: first[k] for k in ("error", "input", "inspection_id")}
        assert d.store.count() == 0 and not lst.on("result") and len(lst.on("error")) == 3


@pytest.mark.parametrize(("end", "taken_first", "expected"), [
    ("stored", True, (True, [Reply(b"f2")], [])),  # its publish took none: the intake answers it from the store
    ("stored", False, (True, [], [Reply(b"f2")])),  # its publish took it too
    ("set_aside", True, (False, [], [])),  # the sink's error reply took none: inspected as a new part, as after a set-aside
    ("set_aside", False, (True, [], [Reply(b"f2")])),  # the sink's error reply took it too
])
def test_a_repeat_whose_job_ends_as_it_is_remembered_is_answered_once(tmp_path, monkeypatch, end, taken_first, expected):
    """The job ends between the intake's look at the journal and its remembering the repeat, and the sink takes the
    repeats remembered either before this one or after it: answered once either way, never left waiting."""
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    store, repeats, republished, taken = Store(tmp_path / "data"), Repeats(), [], []
    intake = Intake(cfg, store, queue.Queue(4), Metrics(), Topics("p"), publish=lambda *a, **k: None,
                    republish=lambda r, c: republished.append(c), repeats=repeats)
    store.accept("j1", {}, b"img")
    real = repeats.add

    def add_as_the_job_ends(ident, corr):
        if end == "stored":  # the sink: the result stored (its publish takes the repeats)
            store.add({"inspection_id": "j1", "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS"})
        else:  # or the job set aside (its error reply takes them)
            store.drop_pending("j1")
        if taken_first:
            taken.extend(repeats.take(ident))
        kept = real(ident, corr)
        if not taken_first:
            taken.extend(repeats.take(ident))
        return kept

    monkeypatch.setattr(repeats, "add", add_as_the_job_ends)
    answered = intake._answered("j1", Message("p/trigger", b"{}", 1, 1, correlation=b"f2"))
    assert (answered, republished, taken) == expected and repeats.take("j1") == []


def test_a_repeat_whose_job_is_stored_between_the_intakes_looks_is_not_inspected_again(tmp_path, monkeypatch):
    """The store looked at before the journal: a job stored in between was in neither, and its repeat was inspected anew
    (a second, different result published under the id the store kept the first for)."""
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    store, republished = Store(tmp_path / "data"), []
    intake = Intake(cfg, store, queue.Queue(4), Metrics(), Topics("p"), publish=lambda *a, **k: None,
                    republish=lambda r, c: republished.append(c))
    store.accept("j1", {}, b"img")
    real, looks = store.get, []

    def get_as_the_job_ends(ident):
        found = real(ident)
        if not looks:  # the sink stores the job's result just after the intake's first look at the store
            store.add({"inspection_id": "j1", "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS"})
        looks.append(ident)
        return found

    monkeypatch.setattr(store, "get", get_as_the_job_ends)
    assert intake._answered("j1", Message("p/trigger", b"{}", 1, 1, correlation=b"f2")) and republished == [Reply(b"f2")]


def test_a_repeat_without_correlation_data_gets_no_copy_of_the_result(station, broker, listen, tiny_inspector, good_png, monkeypatch):
    """It has nothing to match a reply by but the inspection_id the first's result carries (every repeat on 3.1.1)."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    payload = json.dumps({"inspection_id": "dup-0", "base64": base64.b64encode(good_png).decode()})
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        gate = held(monkeypatch, d)
        lst.publish("trigger", payload, correlation=b"f1")
        wait_until(lambda: d.metrics.total("inspector_frames_total") == 1, 10, "the first accepted")
        lst.publish("trigger", payload)
        lst.publish("trigger", json.dumps({"capture": False}), correlation=b"mark")
        wait_until(lambda: [c for _, c in lst.on("error")] == [b"mark"], 10, "the marker refused")
        gate.set()
        wait_until(lambda: lst.on("result"), 15, "the result")
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 10, "acknowledged")
        time.sleep(0.5)  # a copy for the repeat would have come by now
        assert d.store.count() == 1
    assert [c for _, c in lst.on("result")] == [b"f1"]
