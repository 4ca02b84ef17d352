"""`fit --add-good` says what its folders leave out, report files are on the disk when written,
and /health counts the FAIL reports waiting to be rendered again."""

from __future__ import annotations

import errno
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest

from inspector.config import StationConfig
from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image

RECORD = {"inspection_id": "f1", "timestamp": "2026-12-06T10:00:00.000Z", "station": "s", "verdict": "FAIL", "score": 2.0,
          "threshold": 1.0}


# -- fit --add-good: what a folder leaves out is said, as DATA's ---------------------------------------------------
def _stop(*_a, **_kw) -> None:
    """fit's room check, after the notes and before the fit's minutes: the test ends there."""
    raise InspectorError("--out: the test stops here")


def test_fit_add_good_says_the_dead_links_and_unread_files_it_left_out(tiny_data, tmp_path, capsys, monkeypatch):
    """DATA's walk said its .heic files and dead links; an --add-good folder's were left out unsaid."""
    extra = tmp_path / "reviewed"
    extra.mkdir()
    for i in range(3):
        cv2.imwrite(str(extra / f"{i:03d}.png"), good_image(100 + i))
    (extra / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    os.symlink("/mnt/gone-share/004.png", extra / "004.png")

    monkeypatch.setattr("inspector.commands.fit.check_room", _stop)
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--add-good", extra, "--synth", "0", "--size", "64")
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert rc == 2 and err.splitlines()[-1] == "error: --out: the test stops here", err
    assert any(f"1 link(s) in {extra} lead nowhere" in n and "/mnt/gone-share/004.png" in n for n in notes), err
    assert any(f"1 image file(s) in {extra} were left out" in n and ".heic" in n and "convert them to PNG or TIFF" in n for n in notes), err


def test_fit_add_good_of_good_images_alone_says_nothing_more(tiny_data, tmp_path, capsys, monkeypatch):
    extra = tmp_path / "reviewed"
    extra.mkdir()
    cv2.imwrite(str(extra / "000.png"), good_image(100))
    monkeypatch.setattr("inspector.commands.fit.check_room", _stop)
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--add-good", extra, "--synth", "0", "--size", "64")
    assert_one_line_error(rc, err, "the test stops here")  # no note


# -- report files: on the disk when written --------------------------------------------------------------------------
@pytest.fixture
def fsyncs(monkeypatch) -> list[Path]:
    """The paths os.fsync was called on, in order."""
    done, real = [], os.fsync

    def fsync(fd: int) -> None:
        done.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return done


def test_a_report_is_synced_before_its_rename_and_its_folder_after(tmp_path, fsyncs):
    """A FAIL record links its report: written and renamed unsynced, a power cut could leave it there empty, which the
    daemon's start does not take as missing, so it was never rendered again."""
    from reports import render_inspection

    out = tmp_path / "reports" / "2026-12-06"
    path = render_inspection(RECORD, out, formats=("html",))["html"]
    tmp = [p for p in fsyncs if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]
    assert len(tmp) == 1 and fsyncs.index(tmp[0]) < fsyncs.index(out), fsyncs  # the bytes, then the name
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
