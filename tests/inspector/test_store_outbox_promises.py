"""The durability core's promises, checked at their edges (inspector/store.py, inspector/outbox.py): found by mutating
the code one change at a time and keeping each change no other test noticed. Each expected value is worked out by hand."""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
from datetime import datetime, timezone

import numpy as np
import pytest

from inspector import outbox as outbox_mod
from inspector import store as store_mod
from inspector.health import Metrics
from inspector.mqtt import Reply
from inspector.outbox import Outbox, Repeats
from inspector.store import Store


def record(ident: str, **extra) -> dict:
    return {"inspection_id": ident, "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS", "score": 0.1, "threshold": 1.0,
            "station": "s", "model": {"id": "m"}, **extra}


# -- the result rows ------------------------------------------------------------------------------------------


def test_a_second_result_of_one_id_leaves_the_first_as_it_was_stored_and_published(tmp_path):
    """A result stored twice (a recovery after a crash between store and ack) must not replace the first: that one was
    published already, and replacing it made it unpublished again (sent twice) with another verdict."""
    store = Store(tmp_path / "data")
    assert store.add(record("a", verdict="PASS"))
    store.mark_published("a")
    assert not store.add(record("a", verdict="FAIL"))
    assert store.get("a")["verdict"] == "PASS" and store.get("a")["published_at"] is not None
    assert store.counts() == {"unpublished": 0, "pending": 0, "records": 1}


def test_a_result_names_the_images_stored_with_it_and_the_callers_record_is_left_as_it_was(tmp_path):
    store = Store(tmp_path / "data")
    given = record("a", images={"heatmap": "images/2026-01-02/a_heatmap.png"})
    assert store.add(given, images={"image": np.zeros((4, 4, 3), np.uint8)})
    assert given == record("a", images={"heatmap": "images/2026-01-02/a_heatmap.png"})  # the caller publishes its own
    assert store.get("a")["images"] == {"heatmap": "images/2026-01-02/a_heatmap.png", "image": "images/2026-01-02/a_image.png"}
    assert (store.root / "images/2026-01-02/a_image.png").is_file()


def test_a_result_that_cannot_be_stored_leaves_its_job_journaled_and_the_store_usable(tmp_path):
    """A failure inside a transaction is rolled back and raised: swallowed, it was committed half-done; not rolled back,
    the store's connection stayed inside it and every later write failed."""
    store = Store(tmp_path / "data")
    store.accept("a", {"timestamp": "2026-01-02T03:04:05.000Z"}, b"x")
    with pytest.raises(TypeError):
        store.add(record("a", score=np.float32(0.5)))  # not JSON: fails inside the transaction
    assert store.is_pending("a") and store.get("a") is None
    assert store.add(record("b")) and store.accept("c", {}, b"y")
    store.close()
    again = Store(tmp_path / "data")
    assert again.get("b") is not None and [i for i, _, _ in again.pending()] == ["a", "c"]


# -- the deliveries journal -----------------------------------------------------------------------------------


def test_the_deliveries_journal_survives_a_restart(tmp_path):
    """What `accept` kept of an MQTT input is read at the next start to know the broker's copy: a migration that dropped
    the table at each open lost it exactly when it is needed (after a crash), and the copy was inspected again."""
    store = Store(tmp_path / "data")
    assert store.accept("a", {}, b"x", delivery=(7, "p/image/A", b"d7"))
    store.close()
    again = Store(tmp_path / "data")
    assert again.deliveries(60) == [(7, "p/image/A", b"d7")]
    again.close()


def test_a_record_edited_by_hand_without_its_verdict_or_its_time_stands_in_from_the_columns(tmp_path):
    """Each of id, verdict and time missing makes the stand-in: a record without a verdict was published and reported
    as it was (a consumer, a report, read no verdict)."""
    store = Store(tmp_path / "data")
    for ident in ("no-verdict", "no-time"):
        assert store.add(record(ident, verdict="FAIL"))
    edit = sqlite3.connect(store.path)
    edit.execute("UPDATE inspections SET record = ? WHERE inspection_id = 'no-verdict'",
                 (json.dumps({"inspection_id": "no-verdict", "timestamp": "2026-01-02T03:04:05.000Z"}),))
    edit.execute("UPDATE inspections SET record = ? WHERE inspection_id = 'no-time'",
                 (json.dumps({"inspection_id": "no-time", "verdict": "FAIL"}),))
    edit.commit()
    edit.close()
    for ident in ("no-verdict", "no-time"):
        got = store.get(ident)
        assert got["damaged"] is True and got["verdict"] == "FAIL" and got["timestamp"] == "2026-01-02T03:04:05.000Z"


def test_a_publish_mark_is_kept_from_the_first_acknowledgement(tmp_path, monkeypatch):
    """A second mark (an acknowledgement of a copy re-sent after a restart) leaves the time of the first."""
    store = Store(tmp_path / "data")
    store.add(record("a"))
    monkeypatch.setattr(store_mod, "utc_now", lambda: "2026-01-02T04:00:00.000Z")
    store.mark_published("a")
    monkeypatch.setattr(store_mod, "utc_now", lambda: "2026-01-02T05:00:00.000Z")
    store.mark_published("a")
    assert store.get("a")["published_at"] == "2026-01-02T04:00:00.000Z"


# -- retention -------------------------------------------------------------------------------------------------


NOW = datetime(2026, 1, 10, tzinfo=timezone.utc)  # max_age_days=2 cuts at 2026-01-08T00:00:00.000Z


def test_retention_by_age_keeps_a_record_exactly_at_the_cutoff_and_deletes_the_oldest_first(tmp_path):
    store = Store(tmp_path / "data")
    times = {"mid": "2026-01-07T12:00:00.000Z", "oldest": "2026-01-01T00:00:00.000Z", "edge": "2026-01-08T00:00:00.000Z",
             "just-before": "2026-01-07T23:59:59.999Z", "unsent": "2026-01-01T00:00:00.000Z"}
    for ident, ts in times.items():
        assert store.add(record(ident, timestamp=ts))
        if ident != "unsent":
            store.mark_published(ident)
    assert store.counts()["records"] == 5
    assert store.prune(max_age_days=2, limit=1, now=NOW) == 1 and store.get("oldest") is None  # the oldest first
    assert store.counts()["records"] == 4  # kept by the deletes within a pass, not recounted
    assert store.prune(max_age_days=2, limit=1, now=NOW) == 1 and store.get("mid") is None
    assert store.prune(max_age_days=2, limit=5, now=NOW) == 1 and store.get("just-before") is None
    assert store.prune(max_age_days=2, limit=5, now=NOW) == 0
    assert {r["inspection_id"] for r in store.records()} == {"edge", "unsent"}  # not older than 2 days; not acknowledged
    assert store.counts()["records"] == 2 == store.count()


def test_retention_by_rows_keeps_the_newest_published_rows_and_every_unpublished_one(tmp_path):
    store = Store(tmp_path / "data")
    # p3 and p4 share a time: the later id counts as newer (ts DESC, inspection_id DESC)
    times = {"p1": "2026-01-01T00:00:01.000Z", "p2": "2026-01-01T00:00:02.000Z", "p3": "2026-01-01T00:00:03.000Z",
             "p4": "2026-01-01T00:00:03.000Z", "p5": "2026-01-01T00:00:05.000Z", "u9": "2026-01-01T00:00:09.000Z"}
    for ident, ts in times.items():
        assert store.add(record(ident, timestamp=ts))
        if ident != "u9":
            store.mark_published(ident)
    assert store.counts()["records"] == 6
    # the newest unpublished u9 is not one of the 2 kept: p5 and p4 are; p3, p2 and p1 go
    assert store.prune(max_rows=2, limit=1) == 1 and store.get("p1") is None  # the oldest first
    assert store.counts()["records"] == 5
    assert store.prune(max_rows=2, limit=10) == 2 and store.prune(max_rows=2) == 0
    assert {r["inspection_id"] for r in store.records()} == {"p4", "p5", "u9"}
    assert store.counts()["records"] == 3 == store.count()


def test_retention_deletes_a_record_whose_image_file_is_already_gone(tmp_path):
    """An image removed by hand (or by a pass a crash cut short) must not stop retention at that record for good."""
    store = Store(tmp_path / "data")
    store.add(record("a", timestamp="2026-01-01T00:00:00.000Z", images={"image": "images/2026-01-01/a_image.png"}))
    store.mark_published("a")
    assert store.prune(max_age_days=2, now=NOW) == 1 and store.get("a") is None


# -- the intake journal ---------------------------------------------------------------------------------------


def test_a_repeat_of_a_pending_id_journals_no_delivery_and_a_reused_packet_id_names_the_newer_input(tmp_path):
    store = Store(tmp_path / "data")
    assert store.accept("a", {}, b"x", delivery=(1, "p/image/A", b"d1"))
    assert not store.accept("a", {}, b"x", delivery=(2, "p/image/A", b"d2"))  # not journaled: its delivery is not kept either
    assert store.deliveries(3600) == [(1, "p/image/A", b"d1")]
    assert store.accept("b", {}, b"y", delivery=(1, "p/image/B", b"d3"))  # the broker gave packet id 1 to a new input
    assert store.deliveries(3600) == [(1, "p/image/B", b"d3")]


def test_the_deliveries_journal_keeps_exactly_the_last_deliveries_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "DELIVERIES_KEPT", 3)
    store = Store(tmp_path / "data")
    for mid in range(1, 6):
        assert store.accept(f"j{mid}", {}, b"x", delivery=(mid, "p/trigger", b"d%d" % mid))
    assert [m for m, _, _ in store.deliveries(3600)] == [3, 4, 5]


def test_deliveries_within_the_window_include_its_edge(tmp_path):
    """`within_s` of the last one, the edge included: set to whole seconds by hand, so the sums are exact."""
    store = Store(tmp_path / "data")
    for mid in (1, 2, 3):
        store.accept(f"j{mid}", {}, b"x", delivery=(mid, "p/trigger", b"d"))
    for mid, at in ((1, 1000.0), (2, 1040.0), (3, 1100.0)):
        store._db.execute("UPDATE deliveries SET at = ? WHERE mid = ?", (at, mid))
    assert [m for m, _, _ in store.deliveries(60)] == [2, 3]  # 1040 >= 1100 - 60; 1000 is not
    assert [m for m, _, _ in store.deliveries(60.0 + 40)] == [1, 2, 3]  # exactly at the edge: included
    assert [m for m, _, _ in store.deliveries(0)] == [3]


def test_deliveries_after_the_clock_was_stepped_back_are_the_last_ones_journaled(tmp_path):
    """NTP stepping back a clock that ran an hour ahead: the inputs journaled since have earlier times than those
    before. The last ones are those that may wait at the broker (not recalled, each copy was inspected again); those
    before the step are of unknown age (recalled, a new input on a reused packet id could be taken for a copy)."""
    store = Store(tmp_path / "data")
    for mid in (1, 2, 3, 4):
        store.accept(f"j{mid}", {}, b"x", delivery=(mid, "p/trigger", b"d"))
    for mid, at in ((1, 4590.0), (2, 4600.0), (3, 1000.0), (4, 1010.0)):  # stepped back an hour between 2 and 3
        store._db.execute("UPDATE deliveries SET at = ? WHERE mid = ?", (at, mid))
    assert [m for m, _, _ in store.deliveries(60)] == [3, 4]
    assert [m for m, _, _ in store.deliveries(7200)] == [3, 4]
    store.close()


def test_recovery_attempts_are_counted_and_taken_back_one_by_one_never_below_zero(tmp_path):
    store = Store(tmp_path / "data")
    for ident in ("a", "b"):
        store.accept(ident, {"timestamp": "2026-01-02T03:04:05.000Z"}, b"x")
    store.count_attempts(["a", "b"])
    store.count_attempts(["a"])
    store.count_attempts(["a"])
    assert [(i, n) for i, _, n in store.pending()] == [("a", 3), ("b", 1)]
    store.uncount_attempts(["a"])
    assert [(i, n) for i, _, n in store.pending()] == [("a", 2), ("b", 1)]
    store.uncount_attempts(["b"])
    store.uncount_attempts(["b"])  # at 0: stays 0
    assert [(i, n) for i, _, n in store.pending()] == [("a", 2), ("b", 0)]


def test_a_repeat_is_journaled_beside_its_pending_job_only(tmp_path):
    store = Store(tmp_path / "data")
    assert not store.keep_repeat("none", Reply(b"k0"))  # no job: nothing journaled, said so
    assert store.pending() == []
    store.accept("a", {"timestamp": "2026-01-02T03:04:05.000Z"}, b"x")
    assert store.keep_repeat("a", Reply(b"k1")) and store.keep_repeat("a", Reply(b"k2", "r/2"))
    ((ident, job, _),) = store.pending()
    assert ident == "a" and job["repeats"] == [Reply(b"k1").to_meta(), Reply(b"k2", "r/2").to_meta()]
    assert not store.is_pending("none") and store.is_pending("a") and not store.is_pending("a\udcff")  # not UTF-8: never journaled


# -- the outbox -----------------------------------------------------------------------------------------------


class FakeMqtt:
    """What the outbox uses of MqttClient: publish (a mid, or None while `full`), acks and refusals as the broker gives them."""

    def __init__(self) -> None:
        self.acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.refused: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self.sent: list[tuple[int, str, Reply | None]] = []  # (mid, inspection_id, reply)
        self.full = False

    def publish(self, topic: str, payload: str, qos: int = 1, reply: Reply | None = None) -> int | None:
        if self.full:
            return None
        mid = len(self.sent) + 1
        self.sent.append((mid, json.loads(payload)["inspection_id"], reply))
        return mid

    def mid_of(self, ident: str) -> int:
        return [m for m, i, _ in self.sent if i == ident][-1]


def outbox(tmp_path) -> tuple[Store, FakeMqtt, Outbox, Metrics]:
    store, mqtt, metrics = Store(tmp_path / "data"), FakeMqtt(), Metrics()
    return store, mqtt, Outbox(store, mqtt, "t/s/result", metrics), metrics


def test_results_beyond_max_handed_wait_in_the_store_and_go_out_once_acknowledgements_make_room(tmp_path, monkeypatch):
    monkeypatch.setattr(outbox_mod, "MAX_HANDED", 2)
    store, mqtt, box, metrics = outbox(tmp_path)
    for ident in ("a", "b", "c"):
        store.add(record(ident))
        box.publish(record(ident))
    assert [i for _, i, _ in mqtt.sent] == ["a", "b"] and box.in_flight == 2  # exactly MAX_HANDED handed over
    assert box.resend() == 0  # a and b are paho's; c may not go while two wait
    mqtt.acks.put(mqtt.mid_of("a"))
    mqtt.acks.put(999)  # an acknowledgement of a status message: not counted
    assert box.drain_acks() == 1 and metrics.value("inspector_published_total") == 1
    assert [r["inspection_id"] for r, _ in store.unpublished()] == ["b", "c"]
    assert box.resend() == 1 and [i for _, i, _ in mqtt.sent] == ["a", "b", "c"]  # c once, b not again
    for ident in ("b", "c"):
        mqtt.acks.put(mqtt.mid_of(ident))
    assert box.drain_acks() == 2 and store.unpublished() == [] and box.in_flight == 0 and box.resend() == 0


def test_a_result_paho_cannot_take_is_handed_over_by_the_next_resend_with_its_reply(tmp_path, caplog):
    store, mqtt, box, _ = outbox(tmp_path)
    reply = Reply(b"k1", "answers/here")
    store.add(record("a"), reply=reply)
    again = Reply(b"k2")
    box.repeats.add("a", again)  # a repeat of it waits for its answer
    mqtt.full = True
    assert not box.publish(record("a"), reply)
    assert box.resend() == 0  # nothing handed over: not counted (it was logged as re-sent every 2 s)
    assert mqtt.sent == [] and box.in_flight == 0
    mqtt.full = False
    with caplog.at_level(logging.INFO, "inspector.outbox"):
        assert box.resend() == 1
    assert caplog.messages == ["outbox: re-sending 1 stored result(s) the broker had not acknowledged"]
    assert mqtt.sent == [(1, "a", reply), (2, "a", again)] and box.in_flight == 2  # the repeat waited with it
    assert box.resend() == 0  # handed over: not again while paho holds it


def test_a_refused_result_is_offered_again_only_after_refused_retry_s(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(outbox_mod.time, "monotonic", lambda: clock[0])
    store, mqtt, box, metrics = outbox(tmp_path)
    store.add(record("a"))
    box.publish(record("a"))
    mqtt.refused.put((mqtt.mid_of("a"), "not authorized"))
    assert box.drain_acks() == 0 and box.in_flight == 0 and metrics.value("inspector_publish_refused_total") == 1
    assert box.refusing() == "not authorized"
    clock[0] += outbox_mod.REFUSED_RETRY_S - 1
    assert box.resend() == 0 and box.refusing() == "not authorized"
    clock[0] += 1  # REFUSED_RETRY_S after the refusal: offered again, and /health no longer says it
    assert box.refusing() is None
    assert box.resend() == 1 and [i for _, i, _ in mqtt.sent] == ["a", "a"]
    mqtt.acks.put(mqtt.mid_of("a"))
    assert box.drain_acks() == 1 and store.unpublished() == []


def test_an_acknowledged_result_the_store_cannot_mark_is_not_sent_again_and_is_marked_later(tmp_path, monkeypatch, caplog):
    store, mqtt, box, _ = outbox(tmp_path)
    for ident in ("a", "b"):
        store.add(record(ident))
        box.publish(record(ident))
    real = store.mark_published

    def full(ident):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "mark_published", full)
    for ident in ("a", "b"):
        mqtt.acks.put(mqtt.mid_of(ident))
    assert box.drain_acks() == 2 and box.in_flight == 0
    assert box.resend() == 0 and len(mqtt.sent) == 2  # acknowledged: not sent again meanwhile
    assert box.drain_acks() == 0  # tried again: still full
    said = [r.getMessage() for r in caplog.records if r.name == "inspector.outbox"]
    assert len(said) == 1 and "they are not sent again meanwhile" in said[0]  # said once, not at each result or drain
    monkeypatch.setattr(store, "mark_published", real)
    assert box.drain_acks() == 0 and store.unpublished() == [] and box.resend() == 0
    store.add(record("c"))  # a later trouble is said again
    box.publish(record("c"))
    monkeypatch.setattr(store, "mark_published", full)
    mqtt.acks.put(mqtt.mid_of("c"))
    assert box.drain_acks() == 1
    assert len([r for r in caplog.records if r.name == "inspector.outbox"]) == 2


def test_repeats_are_kept_up_to_their_limits_and_each_is_taken_once(monkeypatch):
    monkeypatch.setattr(outbox_mod, "REPEAT_IDS_KEPT", 2)
    repeats = Repeats()
    replies = [Reply(b"%d" % i) for i in range(outbox_mod.REPEATS_KEPT + 1)]
    assert [repeats.add("a", r) for r in replies] == [True] * outbox_mod.REPEATS_KEPT + [False]
    assert repeats.add("b", None) and not repeats.add("c", None)  # two ids at most
    assert repeats.add("b", replies[0])  # a kept id takes more repeats
    assert not repeats.drop("a", replies[-1])  # never kept
    assert repeats.drop("a", replies[0]) and not repeats.drop("a", replies[0])
    assert repeats.take("a") == replies[1:outbox_mod.REPEATS_KEPT] and repeats.take("a") == []
    assert repeats.drop("b", None) and repeats.drop("b", replies[0]) and repeats.add("c", None)  # b let go of its place


def test_each_repeat_waiting_for_a_result_gets_one_copy_with_its_own_reply(tmp_path):
    store, mqtt, box, _ = outbox(tmp_path)
    first, again = Reply(b"k1"), Reply(b"k2", "r/2")
    box.repeats.add("a", again)
    store.add(record("a"), reply=first)
    box.publish(record("a"), first)
    assert [(i, r) for _, i, r in mqtt.sent] == [("a", first), ("a", again)] and box.in_flight == 2
    box.publish(record("a"), first)  # a repeat is answered once
    assert len(mqtt.sent) == 3


# -- inputs set aside and refused ------------------------------------------------------------------------------


def test_what_was_set_aside_of_an_id_is_found_past_unreadable_and_foreign_entries(tmp_path):
    """`review` shows why a part got no result from this: a damaged entry, or one naming another id (a file copied
    by hand), in an earlier day must not hide it or stand for it."""
    store = Store(tmp_path / "data")
    store.accept("j-1", {"timestamp": "2026-12-05T01:02:03.000Z"}, b"\x89PNG")
    assert store.set_aside("j-1", "no region") == "refused/2026-12-05/j-1.png"
    for day, text in (("2026-12-03", "{not json"), ("2026-12-04", json.dumps({"inspection_id": "other", "reason": "x"}))):
        (store.root / "refused" / day).mkdir(parents=True)
        (store.root / "refused" / day / "j-1.json").write_text(text)
    why = store.set_aside_of("j-1")
    assert why["inspection_id"] == "j-1" and why["reason"] == "no region" and why["file"] == "refused/2026-12-05/j-1.png"
    assert store.set_aside_of("j-2") is None


def test_a_shift_counts_every_input_set_aside_past_an_unreadable_entry(tmp_path):
    store = Store(tmp_path / "data")
    for i in range(5):
        store.accept(f"j{i}", {"timestamp": f"2026-12-05T01:0{i}:00.000Z"}, b"\x89PNG")
        store.set_aside(f"j{i}", "no region")
    (store.root / "refused/2026-12-05/damaged.json").write_text("{cut sh")
    count, items = store.refused(None, None)
    assert count == 5 and [w["inspection_id"] for w in items] == ["j0", "j1", "j2", "j3", "j4"]  # in time order


def test_refusals_on_arrival_are_counted_past_a_day_that_has_none(tmp_path):
    """A day with inputs set aside and no refusal on arrival has no on-arrival.jsonl: the days after it still count."""
    store = Store(tmp_path / "data")
    store.accept("j-1", {"timestamp": "2026-12-04T10:00:00.000Z"}, b"\x89PNG")
    store.set_aside("j-1", "no region")
    for at in ("2026-12-05T10:00:00.000Z", "2026-12-06T10:00:00.000Z"):
        store.note_refusal({"timestamp": at, "source": "image", "reason": "bad", "kind": "invalid"})
    kinds, first = store.refused_on_arrival(None, None)
    assert kinds == {"invalid": 2} and [e["timestamp"] for e in first] == ["2026-12-05T10:00:00.000Z", "2026-12-06T10:00:00.000Z"]
    lines = (store.root / "refused/2026-12-05/on-arrival.jsonl").read_bytes().split(b"\n")
    assert len(lines) == 2 and lines[1] == b""  # one line each, no empty line put before a whole one
    store.note_refusal({"timestamp": "2026-12-05T11:00:00.000Z", "source": "image", "reason": "bad", "kind": "too_large"})
    assert (store.root / "refused/2026-12-05/on-arrival.jsonl").read_bytes().count(b"\n") == 2
    assert store.refused_on_arrival("2026-12-05", "2026-12-06")[0] == {"invalid": 1, "too_large": 1}
