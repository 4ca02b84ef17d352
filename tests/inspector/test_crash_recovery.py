"""The station's durability across crashes and upgrades: what a crash, an older or newer inspector, or a hand leaves in
the store is recovered, refused in one line, or set aside, never a stalled station or a lost part."""

from __future__ import annotations

import base64
import json
import re

import pytest

from inspector.result import Reply
from inspector.store import Store
from tests.inspector.conftest import running, wait_until


@pytest.mark.parametrize("job", [{"correlation": "not hex"}, {"correlation": 7}, {"repeats": "x"}, {"repeats": [5, None]},
                                 {"response_topic": ["a"]}])
def test_a_journaled_job_whose_reply_fields_cannot_be_read_is_still_inspected(station, broker, listen, tiny_inspector, good_png, job):
    """A journaled job whose reply fields were not as this inspector writes them (edited by hand, written by another
    tool) raised out of recovery: the intake's thread died before it took any input, its restarts died the same way,
    and the station said `online` while it inspected nothing, the jobs after it included."""
    cfg = station()
    store = Store(cfg.store.data_dir)
    store.accept("bad", {"serial": "S1", "timestamp": "2026-12-05T07:00:00.000Z", **job}, good_png)
    store.accept("good", {"serial": "S2", "timestamp": "2026-12-05T07:00:01.000Z"}, good_png)
    store.close()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: {"bad", "good"} <= lst.result_ids(), 60, "both journaled jobs recovered")
        lst.publish("trigger", json.dumps({"inspection_id": "new", "base64": base64.b64encode(good_png).decode()}))
        wait_until(lambda: "new" in lst.result_ids(), 60, "a new input inspected")
        assert d.store.counts(records=False)["pending"] == 0
    assert not lst.on("error")


def test_a_job_recovery_cannot_handle_is_set_aside_and_the_station_goes_on(station, broker, listen, tiny_inspector, good_png, monkeypatch):
    """Whatever a journaled job raises in recovery that no check foresaw ends that job (set aside, answered on the error
    topic), not the recovery of the rest and the intake with it."""
    import inspector.intake as intake

    decode = intake.decode_image
    monkeypatch.setattr(intake, "decode_image", lambda data, what, *a, **k: (_ for _ in ()).throw(RuntimeError("odd"))
                        if what == "journaled bad" else decode(data, what, *a, **k))
    cfg = station()
    store = Store(cfg.store.data_dir)
    store.accept("bad", {"serial": "S1", "timestamp": "2026-12-05T07:00:00.000Z"}, good_png)
    store.accept("good", {"serial": "S2", "timestamp": "2026-12-05T07:00:01.000Z"}, good_png)
    store.close()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: "good" in lst.result_ids(), 60, "the job after it recovered")
        lst.publish("trigger", json.dumps({"inspection_id": "new", "base64": base64.b64encode(good_png).decode()}))
        wait_until(lambda: "new" in lst.result_ids(), 60, "a new input inspected")
        (error,) = wait_until(lambda: lst.json("error"), 30, "the set-aside job's error")
        assert error["inspection_id"] == "bad" and "RuntimeError: odd" in error["error"] and "its image is kept at refused/" in error["error"]
        assert d.store.counts(records=False)["pending"] == 0 and d.store.set_aside_of("bad")["file"].endswith(".png")


def test_a_repeat_journaled_beside_a_job_whose_repeats_were_edited_is_kept_whole(tmp_path):
    """keep_repeat spread a `repeats` string into its letters (and raised on a number)."""
    store = Store(tmp_path / "data")
    try:
        for i, earlier in enumerate(("xy", 5, None)):
            store.accept(f"j{i}", {"repeats": earlier}, b"img")
            assert store.keep_repeat(f"j{i}", Reply.of(b"c", None))
        assert [job["repeats"] for _, job, _ in store.pending()] == [[{"correlation": "63", "response_topic": None}]] * 3
    finally:
        store.close()


def test_a_reply_journaled_unlike_this_inspector_writes_it_is_left_out():
    assert Reply.from_meta({"correlation": "zz", "response_topic": "a/b"}) == Reply(None, "a/b")
    assert Reply.from_meta({"correlation": 7, "response_topic": 3}) is None and Reply.from_meta(5) is None
    assert Reply.from_meta({"correlation": "6b31"}) == Reply(b"k1")


def _newer_store(root) -> bytes:
    """A store as a newer inspector left it (schema version 3, a table this one does not know, the default journal)."""
    import sqlite3

    from inspector.store import DB_NAME, MIGRATIONS

    root.mkdir(parents=True)
    db = sqlite3.connect(root / DB_NAME, isolation_level=None)
    db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\n{MIGRATIONS[1]}\nCREATE TABLE later (x);\nPRAGMA user_version = {len(MIGRATIONS) + 1};\nCOMMIT;")
    db.execute("INSERT INTO inspections (inspection_id, ts, verdict, record, created_at) VALUES ('old', '2026-01-01T00:00:00Z', 'PASS', '{}', 't')")
    db.close()
    return (root / DB_NAME).read_bytes()


def test_a_store_of_a_newer_inspector_is_refused_in_one_line_and_left_as_it_was(tmp_path, tiny_ckpt):
    """A station downgraded over its store was refused, but its start first turned the newer store's journal to WAL."""
    import subprocess
    import sys

    import yaml

    from inspector.demo.broker import free_port
    from inspector.store import DB_NAME
    from model.errors import InspectorError

    root = tmp_path / "data"
    before = _newer_store(root)
    said = f"store {root / DB_NAME}: schema version 3 is newer than this inspector (2); upgrade it"
    for readonly in (False, True):
        with pytest.raises(InspectorError, match="^" + re.escape(said) + "$"):
            Store(root, exclusive=not readonly, readonly=readonly)
    raw = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "mqtt"},
           "mqtt": {"prefix": "f/st1", "port": free_port()}, "store": {"data_dir": str(root)}, "http": {"port": 0}}
    (tmp_path / "station.yaml").write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "inspector", "serve", "--config", str(tmp_path / "station.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr == f"error: {said}\n", done.stderr
    assert (root / DB_NAME).read_bytes() == before and not (root / f"{DB_NAME}-wal").exists()


def test_a_data_directory_that_cannot_be_created_is_told_the_fix(tmp_path, public_dir):
    """`cannot create the data directory (Permission denied)` named no fix; a file in the way, none either."""
    import os
    import shutil
    import subprocess

    from model.errors import InspectorError
    from tests.access import as_other_user, read_only

    (tmp_path / "afile").write_text("")
    for root in (tmp_path / "afile", tmp_path / "afile" / "data"):
        with pytest.raises(InspectorError, match=r"cannot create the data directory \(.+\); it, or a folder above it, is a file; give the path"):
            Store(root, exclusive=True)
    if hasattr(os, "fork"):
        locked = public_dir / "locked"
        locked.mkdir()
        read_only(locked)
        out = as_other_user(lambda: Store(locked / "data", exclusive=True).count())
        assert out["error"].startswith(f"store {locked / 'data'}: cannot create the data directory (Permission denied); create it for this user (")
    if getattr(os, "geteuid", lambda: 1)() != 0 or shutil.which("mount") is None:
        return  # only root can mount a read-only file system
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        return
    try:
        with pytest.raises(InspectorError, match=r"^store .+: cannot create the data directory \(Read-only file system\); give a data "
                                                 "directory on a writable disk$"):
            Store(mnt / "data", exclusive=True)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_an_accepted_input_is_on_the_disk_before_its_sender_lets_go_of_it(tmp_path):
    """Under synchronous NORMAL a WAL commit reaches the disk at the next checkpoint: a power cut after the broker's copy
    was acknowledged (or the watched file moved to done/) took the journaled part back, and nothing had it any more.
    The journal's commits (an input, a repeat) are written through; a result's and its publish mark need not be."""
    store = Store(tmp_path / "data")
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)

    def synced_commits() -> list[bool]:
        full, out = False, []
        for statement in seen:
            if statement.startswith("PRAGMA synchronous"):
                full = statement.endswith("FULL")
            elif statement == "COMMIT":
                out.append(full)
        seen.clear()
        return out

    try:
        assert store.accept("a", {}, b"img", delivery=(1, "t/image", b"d")) and synced_commits() == [True]
        assert store.keep_repeat("a", Reply.of(b"c", None)) and synced_commits() == [True]
        assert store.add({"inspection_id": "a", "timestamp": "2026-01-02T03:04:05Z", "verdict": "PASS"})
        store.mark_published("a")
        assert synced_commits() == [False, False]  # made again from the journal after a power cut: not worth a sync each
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again
    finally:
        store.close()


def test_a_store_the_first_release_left_after_a_crash_is_finished_by_this_one(station, broker, listen, tiny_inspector, good_png):
    """The upgrade path end to end: a schema version 2 store as the first release wrote it (no correlation columns, no
    deliveries table, a journaled job without its time or station) is migrated in place; its job is inspected at its
    arrival time with its correlation data echoed, and its result that the broker never acknowledged is sent."""
    import sqlite3

    from inspector.store import DB_NAME, MIGRATIONS

    cfg = station()
    root = Store(cfg.store.data_dir).root  # the folder, then the old schema written by hand
    (root / DB_NAME).unlink()
    db = sqlite3.connect(root / DB_NAME, isolation_level=None)
    db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\n{MIGRATIONS[1]}\nPRAGMA user_version = 2;\nCOMMIT;")
    old = {"inspection_id": "old", "timestamp": "2026-11-27T08:00:00.000Z", "verdict": "PASS", "score": 0.1, "threshold": 1.0,
           "station": "st1", "model": {"id": "m"}, "images": {}}
    db.execute("INSERT INTO inspections (inspection_id, ts, station, verdict, score, threshold, model_id, record, created_at)"
               " VALUES ('old', ?, 'st1', 'PASS', 0.1, 1.0, 'm', ?, '2026-11-27T08:00:01.000Z')", (old["timestamp"], json.dumps(old)))
    db.execute("INSERT INTO pending (inspection_id, accepted_at, job, image, attempts) VALUES ('journaled', '2026-11-27T08:00:02.000Z', ?, ?, 1)",
               (json.dumps({"serial": "S9", "source": "mqtt:image", "correlation": b"k9".hex()}), good_png))
    db.close()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: {"old", "journaled"} <= lst.result_ids(), 60, "the old store's result and journaled job published")
        wait_until(lambda: d.store.counts() == {"unpublished": 0, "pending": 0, "records": 2}, 30, "all marked published")
        assert d.store.schema_version == len(MIGRATIONS)
    results = {json.loads(p)["inspection_id"]: (json.loads(p), c) for p, c in lst.on("result")}
    record, correlation = results["journaled"]
    assert correlation == b"k9" and record["serial"] == "S9" and record["timestamp"] == "2026-11-27T08:00:02.000Z"
    assert results["old"][0]["timestamp"] == old["timestamp"] and not lst.on("error")


@pytest.mark.slow
def test_a_watched_folder_killed_mid_burst_gives_each_file_one_record_once_restarted(tmp_path, broker, listen, tiny_ckpt, good_png,
                                                                                     defect_png):
    """SIGKILL of `inspector serve` while a watched folder feeds it, then a restart: every file ends in done/ with
    exactly one stored record, published (a copy is allowed, under the same inspection_id), and none inspected twice."""
    import signal
    import sqlite3
    import subprocess
    import sys

    import yaml

    from inspector.store import DB_NAME
    from tests.inspector.conftest import station_dict

    inbox = tmp_path / "in"
    inbox.mkdir()
    raw = station_dict(tmp_path, broker, tiny_ckpt, model={"batch_size": 2},
                       source={"type": "folder", "path": str(inbox), "poll_s": 0.05, "settle_s": 0.0})
    (tmp_path / "station.yaml").write_text(yaml.safe_dump(raw))
    lst = listen(broker.port, raw["mqtt"]["prefix"])
    log = tmp_path / "daemon.log"

    def serve() -> subprocess.Popen:
        before = len(lst.on("status"))  # the killed run's retained `online` must not pass for this one's
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "inspector", "serve", "--config", str(tmp_path / "station.yaml")],
                                    stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: len(s := lst.on("status")) > before and s[-1][0] == b"online" or proc.poll() is not None, 120, "daemon online")
        assert proc.poll() is None, log.read_text()[-2000:]
        return proc

    names = [f"P{i:03d}" for i in range(60)]
    proc = serve()
    try:
        for i, name in enumerate(names):  # written under a hidden name, then renamed: as a camera's uploader does
            (inbox / f".{name}.png").write_bytes(good_png if i % 3 else defect_png)
            (inbox / f".{name}.png").rename(inbox / f"{name}.png")
        wait_until(lambda: len(lst.result_ids()) >= 1, 60, "the first result")  # killed at once: a fast machine finished 60 first
        proc.kill()
        proc.wait(10)
        assert len(lst.result_ids()) < len(names), "the burst finished before the kill; nothing was tested"
        proc = serve()
        wait_until(lambda: sorted(p.stem for p in (inbox / "done").glob("*.png")) == names, 120, "every file moved to done/")
        db = sqlite3.connect(f"file:{tmp_path / 'data' / DB_NAME}?mode=ro", uri=True)
        try:
            wait_until(lambda: db.execute("SELECT COUNT(*) FROM inspections WHERE published_at IS NULL").fetchone()[0] == 0
                       and db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0, 60, "every result acknowledged")
            serials = [s for (s,) in db.execute("SELECT serial FROM inspections ORDER BY serial")]
        finally:
            db.close()
        assert serials == names  # one record a file
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    ids: dict[str, set[str]] = {}
    for r in lst.json("result"):
        ids.setdefault(r["serial"], set()).add(r["inspection_id"])
    assert sorted(ids) == names and all(len(i) == 1 for i in ids.values()), ids  # each file published, under one id
    assert not lst.on("error") and "Traceback" not in log.read_text()


def test_a_refusal_kept_after_a_line_cut_short_is_still_counted(tmp_path):
    """A refusal line cut short (the disk full mid-write, a power cut) had the next one appended to it: both were one
    line no reader could parse, and the shift report counted neither."""
    from inspector.store import ARRIVALS_FILE, REFUSED_DIR

    store = Store(tmp_path / "data")
    try:
        entry = {"timestamp": "2026-12-05T07:00:00.000Z", "kind": "invalid", "station": "s"}
        store.note_refusal(entry)
        day = store.root / REFUSED_DIR / "2026-12-05" / ARRIVALS_FILE
        day.write_bytes(day.read_bytes()[:-9])  # the last line's end lost
        store.note_refusal({**entry, "kind": "too_big"})
        store.note_refusal({**entry, "kind": "too_big"})
        assert store.refused_on_arrival(None, None)[0] == {"too_big": 2}
    finally:
        store.close()
