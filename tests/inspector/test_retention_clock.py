"""Retention measures ages on a clock that a wall clock stepped forward cannot move ahead."""

from __future__ import annotations

import logging
import os
import queue
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from inspector.health import Metrics
from inspector.pipeline import RetentionClock, Sink
from inspector.result import iso_utc
from inspector.store import Store


class FakeClocks:
    def __init__(self) -> None:
        self.wall, self.steady = time.time(), 1000.0

    def run(self, seconds: float) -> None:
        self.wall += seconds
        self.steady += seconds


def test_retention_clock_follows_the_wall_but_not_a_step_forward(caplog):
    c = FakeClocks()
    clock = RetentionClock(lambda: c.wall, lambda: c.steady)
    start = c.wall
    c.run(3600)
    assert clock.now() == start + 3600
    c.wall -= 120  # stepped back: the wall is earlier, and ages count from it (nothing deleted early)
    assert clock.now() == start + 3480
    c.wall += 120 + 365 * 86400  # a year ahead
    with caplog.at_level(logging.WARNING):
        assert clock.now() == start + 3600
        assert clock.now() == start + 3600
    said = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert len(said) == 1 and "ahead of the time elapsed" in said[0]  # said once, not at every pass
    c.run(86400)
    assert clock.now() == start + 3600 + 86400


def test_a_clock_stepped_a_year_ahead_deletes_nothing_early(tmp_path):
    """With the wall clock stepped a year ahead while the station ran, the next retention pass deleted every published
    record (each looked a year old) and every report file; now ages are counted from the station's start."""
    store = Store(tmp_path / "data")
    now = datetime.now(timezone.utc)
    for ident, age in (("recent", 1), ("old", 40)):
        assert store.add({"inspection_id": ident, "timestamp": iso_utc(now - timedelta(days=age)), "verdict": "PASS"})
        store.mark_published(ident)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "shift.pdf").write_bytes(b"%PDF")
    cfg = SimpleNamespace(store=SimpleNamespace(retention=SimpleNamespace(max_age_days=30, max_rows=None)))
    sink = Sink(cfg, store, queue.Queue(), SimpleNamespace(), Metrics(), SimpleNamespace(out_dir=reports), lambda *a, **k: None, "err")
    c = FakeClocks()
    sink.retention_clock = RetentionClock(lambda: c.wall, lambda: c.steady)
    c.run(60)
    c.wall += 365 * 86400
    assert sink.prune() == 1  # only the record 40 days old
    assert store.get("recent") is not None and (reports / "shift.pdf").is_file()
    old = time.time() - 40 * 86400
    os.utime(reports / "shift.pdf", (old, old))
    sink.prune()
    assert not (reports / "shift.pdf").exists()
    store.close()


def test_a_stale_clock_at_start_set_right_later_does_not_stop_retention(caplog):
    """A box without an RTC battery starts on a stale clock (its last shutdown, or 2000), then NTP steps it forward:
    counted from the stale start, retention deleted nothing by age until the next restart, and the disk filled."""
    c = FakeClocks()
    right = c.wall
    newest = right - 86400  # the newest stored record: yesterday's run
    c.wall = 946684800.0  # the box starts on 2000-01-01
    with caplog.at_level(logging.WARNING):
        clock = RetentionClock(lambda: c.wall, lambda: c.steady, floor=newest)
    assert "earlier than the newest stored record" in caplog.text
    assert clock.now() == c.wall  # the wall clock, earlier still: nothing deleted early
    c.run(120)
    c.wall = right + 120  # NTP sets it right
    assert clock.now() == newest + 120  # ages lag by the time the station was down, no more
    assert RetentionClock(lambda: right, lambda: c.steady, floor=newest).now() == right  # a right clock at start: itself


def test_a_clock_not_yet_set_at_start_is_said_even_on_a_fresh_store(caplog):
    """A box without an RTC battery, on a new store, stamped its first parts 1970 and nothing said so."""
    c = FakeClocks()
    with caplog.at_level(logging.WARNING):
        RetentionClock(lambda: 5.0, lambda: c.steady)
    assert "the clock reads 1970-01-01 00:00:05Z, before this inspector was written" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        RetentionClock(lambda: c.wall, lambda: c.steady)  # a clock set: nothing to say
    assert not caplog.text
