"""The store's intake journal (migration 2): accepted work survives until its result is stored, in one transaction."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from inspector.mqtt import Reply
from inspector.store import DB_NAME, MIGRATIONS, Store


def record(ident: str) -> dict:
    return {"inspection_id": ident, "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS", "score": 0.1, "threshold": 1.0,
            "station": "s", "model": {"id": "m"}}


def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    db = sqlite3.connect(root / DB_NAME, isolation_level=None)
    db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    db.execute("INSERT INTO inspections (inspection_id, ts, verdict, record, created_at) VALUES ('old', 't', 'PASS', '{}', 't')")
    db.close()
    store = Store(root)
    assert store.schema_version == len(MIGRATIONS) >= 2
    assert store.counts() == {"unpublished": 1, "pending": 0, "records": 1}
    plan = store._db.execute("EXPLAIN QUERY PLAN SELECT inspection_id FROM inspections WHERE serial = ? ORDER BY ts DESC", ("x",)).fetchall()
    assert "inspections_serial" in str(plan)  # an older store gets the serial index too, with no new schema version


def test_a_version_2_store_gets_correlation_data_beside_its_records_and_keeps_its_version(tmp_path):
    """A result keeps the correlation data its publish echoes (its re-send lost it), beside the record, which is the
    published contract; a result stored before has none. A column, not a schema version: an older inspector (version 2)
    still opens the store, reads it and writes to it."""
    root = tmp_path / "data"
    root.mkdir()
    db = sqlite3.connect(root / DB_NAME, isolation_level=None)
    db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\n{MIGRATIONS[1]}\nPRAGMA user_version = 2;\nCOMMIT;")
    db.execute("INSERT INTO inspections (inspection_id, ts, verdict, record, created_at) VALUES ('old', 't', 'PASS', ?, '2000-01-01T00:00:00Z')",
               (json.dumps(record("old")),))
    db.execute("INSERT INTO pending (inspection_id, accepted_at, job, image) VALUES ('p', 't', '{\"correlation\": \"6b31\"}', x'00')")
    db.close()
    store = Store(root)
    assert store.schema_version == len(MIGRATIONS) == 2
    assert store.unpublished() == [(record("old") | {"published_at": None}, None)] and store.is_pending("p")
    assert store.add(record("new"), reply=Reply(b"\x00k1"))
    store.close()
    again = Store(root)
    assert [(r["inspection_id"], c) for r, c in again.unpublished()] == [("old", None), ("new", Reply(b"\x00k1"))]
    assert "correlation" not in again.get("new")
    again.mark_published("new")
    assert [r["inspection_id"] for r, _ in again.unpublished()] == ["old"]
    again.close()
    older = sqlite3.connect(root / DB_NAME, isolation_level=None)  # as the inspector before it wrote a record
    older.execute("INSERT INTO inspections (inspection_id, ts, verdict, record, created_at) VALUES ('v2', 't', 'PASS', ?, 't')",
                  (json.dumps(record("v2")),))
    older.close()
    assert ("v2", None) in [(r["inspection_id"], c) for r, c in Store(root).unpublished()]


def test_journal_entry_lives_until_its_result_is_stored(tmp_path):
    store = Store(tmp_path / "data")
    at = "2026-12-03T06:00:00.000Z"
    assert store.accept("a", {"serial": "S1", "timestamp": at}, b"img-a") and store.accept("b", {}, b"img-b")
    assert not store.accept("a", {"serial": "other"}, b"x")  # already pending: the first one stands
    (arrived,) = store._db.execute("SELECT accepted_at FROM pending WHERE inspection_id = 'b'").fetchone()
    # a job journaled before jobs carried their time is stamped with its arrival, not with the restart that recovers it
    assert store.pending() == [("a", {"serial": "S1", "timestamp": at}, 0), ("b", {"timestamp": arrived}, 0)]
    assert store.pending_image("a") == b"img-a"
    store.count_attempts(["b"])
    assert store.add(record("a"))
    assert store.pending() == [("b", {"timestamp": arrived}, 1)] and not store.is_pending("a") and store.is_pending("b")
    assert store.counts(records=False) == {"unpublished": 1, "pending": 1}
    store.drop_pending("b")
    assert store.pending() == [] and store.pending_image("b") is None
    store.close()
    assert Store(tmp_path / "data").get("a")["inspection_id"] == "a"  # durable across reopen


def test_retention_by_age_deletes_old_published_records_with_their_files(tmp_path):
    import numpy as np

    from inspector.result import iso_utc

    store = Store(tmp_path / "data")
    now = datetime.now(timezone.utc)
    ages = {"old": 3.0, "edge": 2.0 + 1 / 86400, "young": 1.0, "unsent": 5.0}  # days
    for ident, days in ages.items():
        rec = record(ident) | {"timestamp": iso_utc(now - timedelta(days=days))}
        rec["images"] = {"image": store.save_image(rec, "image", np.zeros((8, 8, 3), np.uint8))}
        assert store.add(rec)
        if ident != "unsent":
            store.mark_published(ident)
    files = {i: store.root / store.get(i)["images"]["image"] for i in ages}
    assert store.prune(max_age_days=2) == 2  # "unsent" is older, but the broker has not acknowledged it: it stays
    assert {i for i in ages if store.get(i)} == {"young", "unsent"}
    assert not files["old"].exists() and not files["edge"].exists() and files["young"].exists()


def test_a_record_time_with_an_offset_is_selected_by_its_utc_time(tmp_path):
    store = Store(tmp_path / "data")
    store.add(record("tz") | {"timestamp": "2026-01-02T05:30:00+02:00"})  # 03:30Z
    assert [r["inspection_id"] for r in store.records("2026-01-02T03:00:00.000Z", "2026-01-02T04:00:00.000Z")] == ["tz"]
    assert store.records("2026-01-02T05:00:00.000Z", "2026-01-02T06:00:00.000Z") == []  # compared as text before


def test_retention_runs_in_chunks_and_keeps_the_record_count(tmp_path):
    """All at once, a million rows took 51 s and 0.9 GB under the store's lock, while the daemon stored nothing."""
    store = Store(tmp_path / "data")
    for i in range(2500):
        assert store.add(record(f"r{i:04d}") | {"timestamp": f"2026-01-02T03:{i // 60 % 60:02d}:{i % 60:02d}.{i // 3600:03d}Z"})
        store.mark_published(f"r{i:04d}")
    assert store.add(record("unsent")) and store.counts()["records"] == 2501
    assert [store.prune(max_rows=100, limit=1000) for _ in range(4)] == [1000, 1000, 400, 0]
    assert store.counts()["records"] == 101 == store.count()  # the kept count follows adds and deletes
    kept = {r["inspection_id"] for r in store.records("2000-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z")}
    assert "unsent" in kept and "r2499" in kept and "r2399" not in kept
    assert store.add(record("late")) and store.counts()["records"] == 102 == store.count()
    other = sqlite3.connect(store.path)  # a delete the store did not make (by hand, another tool)
    other.execute("DELETE FROM inspections WHERE inspection_id = 'late'")
    other.commit()
    other.close()
    assert store.prune(max_rows=100) == 0 and store.counts()["records"] == 101 == store.count()  # recounted once a pass


def test_reading_a_shift_does_not_wait_for_the_writer(tmp_path):
    """A shift report's read held the writer's lock: 144,000 rows kept the daemon from storing results for 2 s."""
    import threading

    store = Store(tmp_path / "data with space#1")
    for i in range(3):
        store.add(record(f"s{i}") | {"timestamp": f"2026-01-02T03:04:0{i}.000Z"})
    got: list = []
    with store._lock:  # as while the daemon's writer is inside a transaction
        reader = threading.Thread(target=lambda: got.append(store.records("2026-01-01T00:00:00.000Z", "2026-01-03T00:00:00.000Z")))
        reader.start()
        reader.join(30)  # a bound, not a timing: a reader waiting for the lock would wait as long as it is held
        assert not reader.is_alive()
    assert [r["inspection_id"] for r in got[0]] == ["s0", "s1", "s2"]


def test_ids_that_clean_to_one_name_keep_their_own_image_files(tmp_path):
    """LOT7.P1, LOT7_P1 and LOT7:P1 were all stored as LOT7_P1_image.png: each part's evidence overwrote the other's."""
    import numpy as np

    store = Store(tmp_path)
    paths = {}
    for i, ident in enumerate(("LOT7.P1", "LOT7_P1", "LOT7:P1")):
        record = {"inspection_id": ident, "timestamp": "2026-12-03T06:00:00.000Z"}
        paths[ident] = store.save_image(record, "image", np.full((4, 4, 3), i * 50, np.uint8))
    assert len(set(paths.values())) == 3 and paths["LOT7_P1"].endswith("LOT7_P1_image.png")


def test_an_input_set_aside_keeps_its_bytes_and_why_and_leaves_the_journal(tmp_path):
    store = Store(tmp_path / "data")
    store.accept("j-1", {"serial": "S1", "source": "folder:S1.jpg", "timestamp": "2026-12-05T01:02:03.000Z"}, b"\xff\xd8\xff rest")
    assert store.set_aside("j-1", "no region") == "refused/2026-12-05/j-1.jpg"
    assert (store.root / "refused/2026-12-05/j-1.jpg").read_bytes() == b"\xff\xd8\xff rest"
    why = json.loads((store.root / "refused/2026-12-05/j-1.json").read_text())
    assert why["serial"] == "S1" and why["source"] == "folder:S1.jpg" and why["reason"] == "no region"
    assert store.pending() == [] and store.set_aside("j-1", "again") is None  # gone from the journal; nothing twice
    store.accept("old-1", {"serial": "S0"}, b"BM..")  # journaled before jobs carried their time: listed by its arrival
    (arrived,) = store._db.execute("SELECT accepted_at FROM pending WHERE inspection_id = 'old-1'").fetchone()
    store.set_aside("old-1", "given up")
    count, items = store.refused(None, None)
    assert count == 2 and {i["inspection_id"]: i["timestamp"] for i in items}["old-1"] == arrived


def test_inputs_refused_on_arrival_are_kept_by_day_and_counted_by_cause(tmp_path):
    store = Store(tmp_path / "data")
    refusals = [("2026-12-05T07:59:59.999Z", "queue_full", "S3"), ("2026-12-05T06:00:00.000Z", "invalid", "S1"),
                ("2026-12-04T23:59:00.000Z", "invalid", "day-before"), ("2026-12-05T08:00:00.000Z", "invalid", "at-the-end"),
                ("2026-12-05T06:30:00+01:00", "too_large", "S2")]  # 05:30 UTC: before the period, though filed under the 5th
    for at, kind, serial in refusals:
        store.note_refusal({"timestamp": at, "source": "image", "serial": serial, "reason": f"{serial} refused", "kind": kind})
    arrivals = store.root / "refused" / "2026-12-05" / "on-arrival.jsonl"
    with arrivals.open("a", encoding="utf-8") as f:
        f.write('[1, 2]\n{"timestamp": "not a time", "kind": "invalid"}\n{"timestamp": "2026-12-05T07:00:00.000Z"}\n{"timestamp": "2026-12-05T07:')
    assert sorted(p.name for p in (store.root / "refused").iterdir()) == ["2026-12-04", "2026-12-05"]
    kinds, first = store.refused_on_arrival("2026-12-05T06:00:00.000Z", "2026-12-05T08:00:00.000Z", limit=2)
    assert kinds == {"invalid": 2, "queue_full": 1}  # a line without its kind counts as invalid; the line cut short is skipped
    assert [e.get("serial") for e in first] == ["S1", None]  # in time order
    kinds, every = store.refused_on_arrival(None, None)
    assert sum(kinds.values()) == len(every) == 7 and every[0]["timestamp"] == "2026-12-04T23:59:00.000Z"
    assert every[-1]["timestamp"] == "not a time"  # counted where the period is open, placed in none
    assert every[1]["timestamp"] == "2026-12-05T05:30:00.000Z"  # in the store's form
    store.accept("j-1", {"serial": "A1", "timestamp": "2026-12-05T07:00:00.000Z"}, b"\x89PNG")
    store.set_aside("j-1", "no region")
    assert store.refused_on_arrival("2026-12-06", None) == ({}, [])
    unjudged = store.unjudged("2026-12-05T06:00:00.000Z", "2026-12-05T08:00:00.000Z")
    assert unjudged["not_inspected"]["count"] == 1 and unjudged["refused_on_arrival"]["count"] == 3
    assert unjudged["refused_on_arrival"]["kinds"] == {"invalid": 2, "queue_full": 1}


def test_a_refusal_the_store_cannot_keep_is_still_answered(tmp_path, caplog):
    from types import SimpleNamespace

    from inspector.intake import Intake
    from inspector.mqtt import Topics

    store = Store(tmp_path / "data")
    (store.root / "refused").write_text("a file where the folder goes")
    sent, counted = [], []
    intake = Intake.__new__(Intake)  # only its rejection is tested here
    intake.store, intake.topics, intake.mqtt = store, Topics("t"), None
    intake.cfg = SimpleNamespace(station=SimpleNamespace(name="s"))
    intake.metrics = SimpleNamespace(inc=lambda name, labels: counted.append(labels["reason"]))
    intake._publish = lambda topic, payload, reply=None: sent.append((topic, json.loads(payload)["serial"]))
    intake.reject("image: cannot be decoded", "image", serial="S1", part=True)
    intake.reject("command: unknown command", "command")
    assert sent == [("t/error", "S1"), ("t/error", None)] and counted == ["invalid", "invalid"]
    assert "cannot keep the refusal of image for the shift report" in caplog.text


def test_an_input_that_cannot_be_set_aside_stays_in_the_journal(tmp_path):
    store = Store(tmp_path / "data")
    store.accept("j-2", {"serial": "S2"}, b"\x89PNG...")
    (store.root / "refused").write_text("a file where the folder goes")
    with pytest.raises(OSError):
        store.set_aside("j-2", "no region")
    assert store.pending_image("j-2") == b"\x89PNG..."


def test_a_repeat_without_correlation_data_of_a_part_whose_result_waits_unstored_is_answered_and_acknowledged(tmp_path):
    """It was answered on the error topic but never acknowledged: redelivered at every start, and holding the window."""
    from types import SimpleNamespace

    from inspector.health import StoreTrouble
    from inspector.intake import Intake
    from inspector.mqtt import Message, Topics

    store = Store(tmp_path / "data")
    store.accept("u-1", {"serial": "S1"}, b"\x89PNG")
    sent, acked = [], []
    intake = Intake.__new__(Intake)  # only its answer to a repeat is tested here
    intake.store, intake.topics, intake.trouble = store, Topics("t"), StoreTrouble()
    intake.trouble.failed("result of u-1 could not be stored (disk full)", "u-1")
    intake.mqtt = SimpleNamespace(ack=acked.append)
    intake.metrics = SimpleNamespace(inc=lambda name, labels: None)
    intake._publish = lambda topic, payload, reply=None: sent.append(json.loads(payload)["error"])
    msg = Message("t/trigger", b"{}", 1, 7)
    assert intake._answered("u-1", msg)
    assert sent == ["result of u-1 could not be stored (disk full)"] and acked == [msg]


def test_a_shift_reports_refusal_counts_are_its_stations_own(tmp_path):
    """`report --station` filtered the parts but counted every station's refusals under its name (a renamed station's
    store holds two); entries kept before they named their station count for every one."""
    store = Store(tmp_path / "data")
    for station in ("A", "B", None):
        store.note_refusal({"timestamp": "2026-12-05T10:00:00.000Z", "source": "image", "reason": "bad", "kind": "invalid",
                            **({"station": station} if station else {})})
    for ident, station in (("a1", "A"), ("b1", "B")):
        store.accept(ident, {"station": station, "timestamp": "2026-12-05T10:00:00.000Z"}, b"\x89PNG")
        store.set_aside(ident, "no region")
    counts = lambda st: {k: v["count"] for k, v in store.unjudged(None, None, st).items()}  # noqa: E731
    assert counts("A") == {"not_inspected": 1, "refused_on_arrival": 2}
    assert counts(None) == {"not_inspected": 2, "refused_on_arrival": 3}
