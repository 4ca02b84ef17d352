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
