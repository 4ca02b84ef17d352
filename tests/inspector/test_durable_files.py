"""The station's files across a power cut and a kill: a stored image or an input set aside is on the disk before the
row or the journal lets go of it, and a FAIL report a kill or a busy queue left unrendered is rendered again."""

from __future__ import annotations

import errno
import os
import queue
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from inspector.config import StationConfig
from inspector.hooks import ReportHooks
from inspector.result import iso_utc
from inspector.store import Store
from tests.conftest import fail_file_fsyncs
from tests.inspector.conftest import wait_until


class Fsyncs(list):
    """The paths os.fsync was called on, in order, each with what `state()` said then."""

    state = staticmethod(lambda: False)


@pytest.fixture
def fsyncs(monkeypatch) -> Fsyncs:
    done, real = Fsyncs(), os.fsync

    def fsync(fd: int) -> None:
        done.append((Path(os.readlink(f"/proc/self/fd/{fd}")), done.state()))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return done


def test_a_stored_image_and_its_new_day_folder_are_on_the_disk_before_save_image_returns(tmp_path, fsyncs):
    """The PNG was written and renamed without fsync while the row naming it commits and reaches the disk at the next
    durable commit: after a power cut the record named an empty or missing image."""
    store = Store(tmp_path / "data")
    try:
        record = {"inspection_id": "p1", "timestamp": "2026-12-06T10:00:00.000Z"}
        for kind in ("image", "overlay"):
            rel = store.save_image(record, kind, np.full((32, 32, 3), 99, np.uint8))
            path = store.root / rel
            assert (path, False) in fsyncs and (path.parent, False) in fsyncs
        assert (store.root / "images", False) in fsyncs  # the day folder's entry, made for the first image of the day
    finally:
        store.close()


def test_an_image_that_could_not_be_synced_is_not_left_behind(tmp_path, monkeypatch):
    """A failing disk (EIO at fsync) raises, and leaves no file that no record names and retention would never remove."""
    store = Store(tmp_path / "data")
    try:
        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", eio)
        record = {"inspection_id": "p1", "timestamp": "2026-12-06T10:00:00.000Z"}
        with pytest.raises(OSError):
            store.save_image(record, "image", np.full((32, 32, 3), 99, np.uint8))
        assert not list((store.root / "images").rglob("*.png"))
    finally:
        store.close()


def test_an_input_set_aside_is_on_the_disk_before_the_journal_lets_go_of_it(tmp_path, fsyncs):
    """The bytes of an input given no result are the only copy of what its sender handed over: written without fsync
    and then dropped from the journal, a power cut could leave neither."""
    store = Store(tmp_path / "data")
    try:
        store.accept("r1", {"timestamp": "2026-12-06T10:00:00.000Z", "serial": "S1"}, b"\x89PNG-bytes")
        fsyncs.state = lambda: store.is_pending("r1")
        rel = store.set_aside("r1", "cannot be inspected")
        image = store.root / rel
        assert image.read_bytes() == b"\x89PNG-bytes" and not store.is_pending("r1")
        for path in (image, image.with_suffix(".json"), image.parent, image.parent.parent):
            assert (path, True) in fsyncs, path  # each while the journal still held the input
    finally:
        store.close()


def _hooks(tmp_path: Path, **reports) -> tuple[ReportHooks, Store]:
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")},
                                        "reports": {"on_fail": True, "formats": ["html"], **reports}})
    store = Store(cfg.store.data_dir)
    return ReportHooks(cfg, store, lambda *a, **kw: None, "rep", "err"), store


def _stored(hooks: ReportHooks, store: Store, iid: str, ago: timedelta, verdict: str = "FAIL", station: str = "s") -> list[Path]:
    """A record stored as the sink stores it (its report links made first); the files its links name."""
    record = {"inspection_id": iid, "timestamp": iso_utc(datetime.now(timezone.utc) - ago), "station": station, "verdict": verdict,
              "score": 2.0, "threshold": 1.0}
    if links := hooks.report_links(record):
        record["reports"] = links
    store.add(record)
    return [store.root / rel for rel in (links or {}).values()]


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The inspection ids the reports package is asked to render, in order."""
    import reports

    done: list[str] = []
    real = reports.render_inspection
    monkeypatch.setattr(reports, "render_inspection", lambda record, *a, **kw: (done.append(record["inspection_id"]), real(record, *a, **kw))[1])
    return done


def test_fail_reports_a_kill_left_unrendered_are_rendered_at_the_next_start(tmp_path, renders):
    """A FAIL's report waits in memory: a SIGKILL (or a busy queue) left its record's `reports` links naming no file, for
    good. At start the worker renders those of the last day again, and no other."""
    hooks, store = _hooks(tmp_path)
    try:
        lost = _stored(hooks, store, "lost", timedelta(hours=1))
        kept = _stored(hooks, store, "kept", timedelta(hours=2))
        hooks.on_fail(store.get("kept"))  # rendered by the last run
        old = _stored(hooks, store, "old", timedelta(days=3))  # beyond the last day: left as it is
        other = _stored(hooks, store, "other", timedelta(hours=1), station="elsewhere")  # another station's, in this store
        _stored(hooks, store, "pass", timedelta(hours=1), verdict="PASS")
        renders.clear()
        assert lost and not any(f.exists() for f in lost) and all(f.exists() for f in kept)
        added = threading.Event()
        scan = store.fails_stored_before
        store.fails_stored_before = lambda *a: (added.wait(30), scan(*a))[1]  # the worker looks only after `live` is stored
        hooks.start()
        live = _stored(hooks, store, "live", timedelta(0))  # stored after the start: the sink queues it itself
        hooks.fail(store.get("live"))
        added.set()
        wait_until(lambda: all(f.exists() for f in lost + live), 60, "the lost report rendered")
        hooks.stop(30)
        assert sorted(renders) == ["live", "lost"]  # each once; the one there, the old one and the other station's not
        assert not any(f.exists() for f in old + other)
    finally:
        hooks.stop()
        store.close()


def test_a_fail_report_skipped_while_the_queue_was_full_is_rendered_once_it_has_room(tmp_path, renders, monkeypatch):
    """"reports: busy; skipped the report of ..." left the record linking a report that was never written, until a restart."""
    import reports

    hooks, store = _hooks(tmp_path)
    begun, gate, render = threading.Event(), threading.Event(), reports.render_inspection
    monkeypatch.setattr(reports, "render_inspection", lambda *a, **kw: (begun.set(), gate.wait(30), render(*a, **kw))[2])
    try:
        hooks._queue = queue.Queue(maxsize=1)  # a burst of FAILs: one renders, one waits, the next finds the queue full
        hooks.start()
        files = {}
        for iid in ("first", "second", "third"):
            files[iid] = _stored(hooks, store, iid, timedelta(0))
            hooks.fail(store.get(iid))
            if iid == "first":
                assert begun.wait(30), "the first report under way"
        assert hooks.skipped == 1
        gate.set()
        wait_until(lambda: all(f.exists() for fs in files.values() for f in fs), 60, "every report rendered")
        hooks.stop(30)
        assert renders == ["first", "second", "third"]
    finally:
        gate.set()
        hooks.stop()
        store.close()


# -- ReportHooks: the FAIL reports left unrendered; Store.fails_stored_before, synced, make_folder ---------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.
def _missing_found(tmp_path, *stored: tuple[str, timedelta], rendered: tuple[str, ...] = ()) -> list[str]:
    """The ids `_find_missing` queues of FAIL records stored this long ago, those `rendered` having their files."""
    hooks, store = _hooks(tmp_path)
    try:
        for iid, ago in stored:
            for f in _stored(hooks, store, iid, ago):
                if iid in rendered:
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_text("rendered")
        hooks._started_at = iso_utc(datetime.now(timezone.utc) + timedelta(seconds=1))  # each stored before this start
        hooks._find_missing()
        return list(hooks._missing)
    finally:
        store.close()


def test_the_fail_reports_found_missing_are_those_of_the_last_day_without_files_newest_first(tmp_path):
    found = _missing_found(tmp_path, ("older", timedelta(hours=23)), ("newer", timedelta(hours=2)),
                           ("done", timedelta(hours=1)), ("gone", timedelta(hours=25)), rendered=("done",))
    assert found == ["newer", "older"]


def test_a_busy_queue_keeps_at_most_missing_most_reports_aside(tmp_path, monkeypatch):
    import inspector.hooks

    monkeypatch.setattr(inspector.hooks, "MISSING_MOST", 1)
    hooks, store = _hooks(tmp_path)
    try:
        hooks._queue = queue.Queue(maxsize=1)  # not started: the first waits in the queue, the rest find it full
        for iid in ("a", "b", "c"):
            hooks.fail({"inspection_id": iid})
        assert list(hooks._missing) == ["b"] and hooks.skipped == 2
    finally:
        store.close()


def test_a_record_is_unrendered_while_any_of_its_own_report_files_is_missing(tmp_path):
    hooks, store = _hooks(tmp_path, formats=["html", "pdf"])
    try:
        html, pdf = _stored(hooks, store, "r1", timedelta(hours=1))
        record = store.get("r1")
        assert hooks._unrendered(record)
        html.parent.mkdir(parents=True)
        html.write_text("rendered")
        assert hooks._unrendered(record)  # its PDF still missing
        pdf.write_text("rendered")
        assert not hooks._unrendered(record)
        # links named otherwise (the language changed the names since): rendering now would not write them
        assert not hooks._unrendered({**record, "reports": {"html": "reports/2026-12-06/other.html"}})
    finally:
        store.close()


def test_the_worker_takes_a_missing_report_only_while_it_is_still_missing_and_not_stopping(tmp_path):
    hooks, store = _hooks(tmp_path)
    try:
        for f in _stored(hooks, store, "done", timedelta(hours=1)):  # rendered since it was found missing
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("rendered")
        for iid in ("lost", "lost2"):
            _stored(hooks, store, iid, timedelta(hours=1))
        store.mark_published("lost")
        hooks._missing.extend(["done", "lost", "lost2"])  # newest first
        hooks._stop.set()
        assert hooks._next() is None and list(hooks._missing) == ["done", "lost", "lost2"]  # stopping: left to the next start
        hooks._stop.clear()
        kind, record, reply = hooks._next()
        assert (kind, record["inspection_id"], reply) == ("fail", "lost", None) and list(hooks._missing) == ["lost2"]
        assert "published_at" not in record  # as the sink handed it over, not the store's row
    finally:
        store.close()


def test_an_image_whose_file_cannot_be_synced_is_not_left_behind(tmp_path, monkeypatch):
    """Its folder synced, the PNG's own fsync failing (EIO): no file that no record names stays."""
    from inspector.store import Store

    store = Store(tmp_path / "data")
    fail_file_fsyncs(monkeypatch)
    try:
        with pytest.raises(OSError):
            store.save_image({"inspection_id": "p1", "timestamp": "2026-12-06T10:00:00.000Z"}, "image", np.full((8, 8, 3), 9, np.uint8))
        assert (store.root / "images" / "2026-12-06").is_dir() and not list((store.root / "images").rglob("*.png"))
    finally:
        store.close()


def test_fails_stored_before_takes_from_since_on_and_stored_strictly_before(tmp_path):
    hooks, store = _hooks(tmp_path)
    try:
        _stored(hooks, store, "r1", timedelta(hours=1))
        _stored(hooks, store, "ok", timedelta(hours=1), verdict="PASS")
        ts, created = store._db.execute("SELECT ts, created_at FROM inspections WHERE inspection_id = 'r1'").fetchone()
        assert [r["inspection_id"] for r in store.fails_stored_before(ts, "9999", "s", 5)] == ["r1"]
        assert store.fails_stored_before(ts, created, "s", 5) == []
        assert store.fails_stored_before(ts, "9999", "s\udc80", 5) == []  # no such station: no error
    finally:
        store.close()


def test_synced_takes_no_link_and_leaves_a_folder_alone_where_folders_cannot_be_opened(tmp_path, fsyncs, monkeypatch):
    from inspector.store import synced

    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(OSError):  # a link planted there: not what is synced through
        synced(tmp_path / "link")
    synced(tmp_path / "f")
    assert fsyncs == [(tmp_path / "f", False)]
    monkeypatch.delattr(os, "O_DIRECTORY")
    synced(tmp_path)
    assert fsyncs == [(tmp_path / "f", False)]


def test_make_folder_syncs_each_parent_whose_entry_it_made(tmp_path, fsyncs):
    from inspector.store import make_folder

    make_folder(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert sorted(p for p, _ in fsyncs) == sorted([tmp_path, tmp_path / "a", tmp_path / "a" / "b"])
    fsyncs.clear()
    make_folder(tmp_path / "a" / "b" / "c")  # there: nothing made, nothing synced
    make_folder(tmp_path / "a" / "d")
    assert [p for p, _ in fsyncs] == [tmp_path / "a"]


RECORD = {"inspection_id": "f1", "timestamp": "2026-12-06T10:00:00.000Z", "station": "s", "verdict": "FAIL", "score": 2.0,
          "threshold": 1.0}


# -- report files: on the disk when written --------------------------------------------------------------------------
@pytest.fixture
def report_fsyncs(monkeypatch) -> list[Path]:
    """The paths os.fsync was called on, in order."""
    done, real = [], os.fsync

    def fsync(fd: int) -> None:
        done.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return done


def test_a_report_is_synced_before_its_rename_and_its_folder_after(tmp_path, report_fsyncs):
    """A FAIL record links its report: written and renamed unsynced, a power cut could leave it there empty, which the
    daemon's start does not take as missing, so it was never rendered again."""
    from reports import render_inspection

    out = tmp_path / "reports" / "2026-12-06"
    path = render_inspection(RECORD, out, formats=("html",))["html"]
    tmp = [p for p in report_fsyncs if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]
    assert len(tmp) == 1 and report_fsyncs.index(tmp[0]) < report_fsyncs.index(out), report_fsyncs  # the bytes, then the name
    assert path.stat().st_size > 0 and [p.name for p in out.iterdir()] == [path.name]


def test_a_file_system_that_cannot_sync_still_gets_its_report(tmp_path, monkeypatch):
    from reports import render_inspection

    def einval(fd: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fsync", einval)
    path = render_inspection(RECORD, tmp_path, formats=("html",))["html"]
    assert path.stat().st_size > 0


def test_a_report_that_cannot_be_synced_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    from reports import ReportError, render_inspection

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(ReportError, match=r"^report .*inspection-f1\.html: cannot be written \(Input/output error\); check the folder"):
        render_inspection(RECORD, tmp_path, formats=("html",))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".write-test-")] == []


# -- /health: FAIL reports waiting to be rendered again --------------------------------------------------------------
def test_health_counts_the_fail_reports_waiting_to_be_rendered_again(tmp_path):
    """A kill left 2 FAIL reports unrendered: the worker renders them while no other report waits, and /health showed no
    sign of them (nor of reports set aside while the queue was full)."""
    from inspector.daemon import Daemon
    from inspector.hooks import ReportHooks
    from inspector.result import iso_utc
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")},
                                        "reports": {"on_fail": True, "formats": ["html"]}})
    store = Store(cfg.store.data_dir)
    try:
        d = Daemon(cfg)
        d.hooks = hooks = ReportHooks(cfg, store, lambda *a, **kw: None, "rep", "err")
        assert "reports" not in d.health()
        for iid in ("lost1", "lost2"):
            record = {**RECORD, "inspection_id": iid, "timestamp": iso_utc(datetime.now(timezone.utc) - timedelta(hours=1))}
            store.add({**record, "reports": hooks.report_links(record)})
        hooks._started_at = iso_utc(datetime.now(timezone.utc) + timedelta(seconds=1))  # stored before this start
        hooks._find_missing()  # as the worker does first at start
        assert d.health()["reports"] == {"failed": 0, "error": None, "missing": 2}
        hooks._next()  # the worker takes one
        assert d.health()["reports"]["missing"] == 1
        hooks._next()
        assert "reports" not in d.health()
    finally:
        store.close()
