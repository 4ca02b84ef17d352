"""Edges found by mutating the code: config.safe_url (and the URL forms that leaked through it), model.images'
new suffixes and folder walk, the FAIL-report recovery in inspector.hooks and store.synced / make_folder /
fails_stored_before. Each test kills mutants the earlier tests let live; the expected values are worked out by hand."""

from __future__ import annotations

import os
import queue
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from inspector.config import config_errors, safe_url
from inspector.result import iso_utc
from tests.conftest import fail_file_fsyncs
from tests.inspector import test_durable_files
from tests.inspector.test_config import BASE
from tests.inspector.test_durable_files import _hooks, _stored

fsyncs = test_durable_files.fsyncs  # the fixture: the paths os.fsync was called on

# -- safe_url -----------------------------------------------------------------------------------------------------------

# url, as logs and source names show it, as a config error echoes it
LEAKED = [
    # a password holding / or ? before a host that is no host (a typo: the very URL a config error echoes) was shown whole
    ("rtsp://admin:Pa/ss9@cam 4/s1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa/ss9@cam4:55a/s1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa/ss9@cam4:/s1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa/ss9@", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa?ss9@cam 4/s1", "rtsp://…", "rtsp://…"),  # showed "rtsp://admin:Pa?…"
    ("rtsp://admin:Pa/ss9@cam4&x=1/s1", "rtsp://…", "rtsp://…"),  # an @ in the path: whatever follows it
    # path parameters: a session token, a camera taking its password in the path (XMEye's /user=..._password=...)
    ("rtsp://cam4/s1;jsessionid=ss9", "rtsp://cam4/s1;…", "rtsp://cam4/s1;…"),
    ("rtsp://admin:Pa@cam4/s1;password=ss9", "rtsp://cam4/s1;…", "rtsp://…@cam4/s1;…"),
    ("rtsp://cam4:554/user=admin_password=ss9_channel=1_stream=0.sdp", "rtsp://cam4:554/user=…", "rtsp://cam4:554/user=…"),
    # a GStreamer pipeline: a property after its URL or before it
    ("rtspsrc location=rtsp://cam4/s1 user-id=admin user-pw=ss9 ! decodebin", "rtspsrc location=rtsp://cam4/s1 user-id=…",
     "rtspsrc location=rtsp://cam4/s1 user-id=…"),
    ('rtspsrc user-id=admin user-pw="Pa ss9" location=rtsp://cam4/s1 ! decodebin',
     "rtspsrc user-id=… user-pw=… location=rtsp://cam4/s1 ! decodebin", "rtspsrc user-id=… user-pw=… location=rtsp://cam4/s1 ! decodebin"),
]


@pytest.mark.parametrize(("url", "shown", "marked"), LEAKED)
def test_no_url_form_shows_its_password_or_token(url, shown, marked):
    assert safe_url(url) == shown
    assert safe_url(url, mark=True) == marked
    for secret in ("Pa", "ss9", "admin"):
        assert secret not in shown and secret not in marked, (url, secret)


def test_a_config_error_does_not_echo_the_password_of_a_url_with_a_typo_in_its_host(tmp_path):
    """`url: rtsp://admin:Pa/ss9@cam 4/s1` (a space, so refused) was echoed whole: a password on the terminal and, from
    serve, in the journal."""
    f = tmp_path / "s.yaml"
    f.write_text(BASE.replace("type: camera\n  device: 0", "type: stream\n  url: rtsp://admin:Pa/ss9@cam 4/s1"))
    said = "\n".join(config_errors(f)[1])
    assert "source.url: give an rtsp://, rtsps://, http:// or https:// URL (got 'rtsp://…')" in said, said
    assert "ss9" not in said and "admin" not in said, said


def test_an_at_in_a_fragment_followed_by_a_parameter_is_no_user_info():
    """As `?user=me@x.com&pw=...`: what follows the `#` is the fragment's, not a host a password ran on to."""
    assert safe_url("https://cam4/v.mjpg#a=me@x.com&b=1") == "https://cam4/v.mjpg"
    assert safe_url("https://cam4/v.mjpg#a=me@x.com&b=1", mark=True) == "https://cam4/v.mjpg#…"
    assert safe_url("https://cam4/v.mjpg?a=me@x.com&b=1", mark=True) == "https://cam4/v.mjpg?…"


# url, an error about it, the error shown
TEXTS = [
    # no user info: nothing of the error is cut (all but the URL's last character was taken as user info)
    ("http://cam4:8080/p.png", "cannot connect to cam4:8080/p.png", "cannot connect to cam4:8080/p.png"),
    ("http://cam4/p;sid=T0KEN/x.png", "bad request '/p;sid=T0KEN/x.png'", "bad request '/p;…'"),
    ("http://cam4/p.png#a=1&t=T0KEN", "bad request '/p.png#a=1&t=T0KEN'", "bad request '/p.png#…'"),
    # a password holding / and @: each piece cut, up to the last @ before a host
    ("http://op:P@ss/w0rd@cam4/p.png", "no host 'P' nor 'w0rd' nor 'ss'", "no host '…' nor '…' nor '…'"),
    ("http://op:P/w0rd@x@cam4/p.png", "no host 'x'", "no host '…'"),
]


@pytest.mark.parametrize(("url", "text", "said"), TEXTS)
def test_an_error_about_a_url_is_cut_of_its_secrets_and_nothing_else(url, text, said):
    assert safe_url(url, text) == said


def test_an_at_with_no_user_before_it_and_a_bare_fragment_are_marked_where_they_were():
    assert safe_url("rtsp://@cam4/s1", mark=True) == "rtsp://…@cam4/s1"
    assert safe_url("rtsp://@cam4/s1") == "rtsp://cam4/s1"
    assert safe_url("https://cam4/v.mjpg#", mark=True) == "https://cam4/v.mjpg#…"


def test_a_secret_within_another_does_not_leave_the_longer_ones_rest():
    """Cut shorter first, `T0` of `#T0` left `t=…KEN` of the query in the error."""
    assert safe_url("http://cam4/p.png?t=T0KEN#T0", "bad request '/p.png?t=T0KEN#T0'") == "bad request '/p.png?…#…'"


# -- ReportHooks: the FAIL reports left unrendered; Store.fails_stored_before, synced, make_folder ---------------------
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


# -- model.images: suffixes, scan_images, walk_folders -------------------------------------------------------------------
READ = (".jfif", ".jpe", ".pgm", ".ppm", ".pnm", ".pbm", ".jp2", ".j2k")  # today's, besides png, jpg, bmp, tiff, webp, gif
UNREAD = {".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".exr": "OpenEXR", ".dng": "camera raw", ".raw": "camera raw",
          ".cr2": "camera raw", ".cr3": "camera raw", ".nef": "camera raw", ".arw": "camera raw", ".orf": "camera raw",
          ".rw2": "camera raw", ".raf": "camera raw"}


def test_a_scan_takes_every_read_suffix_and_says_every_unread_file(tmp_path):
    from model.images import scan_images

    (tmp_path / "a").mkdir()
    for suffix in (*READ, *UNREAD):
        (tmp_path / "a" / f"x{suffix}").write_bytes(b"x")
    (tmp_path / "z.HEIC").write_bytes(b"x")  # the top folder's is walked first, listed in path order
    (tmp_path / "a" / "._x.heic").write_bytes(b"\x00\x05\x16\x07" + bytes(8))  # macOS's metadata beside it: no image
    (tmp_path / "a" / "d.heic").mkdir()  # a folder so named
    os.mkfifo(tmp_path / "a" / "f.heic")  # no file: a FIFO so named
    scan = scan_images(tmp_path, recursive=True)
    assert [p.name for p in scan.images] == sorted(f"x{s}" for s in READ)
    assert [p.relative_to(tmp_path).as_posix() for p in scan.unread] == [*sorted(f"a/x{s}" for s in UNREAD), "z.HEIC"]


@pytest.mark.parametrize("suffix", sorted(UNREAD))
def test_each_unread_suffix_is_refused_by_name(tmp_path, suffix):
    from model.errors import InspectorError
    from model.images import read_image

    (tmp_path / f"p{suffix.upper()}").write_bytes(b"x")
    with pytest.raises(InspectorError, match=rf"^image .*p{suffix.upper()}: a {UNREAD[suffix]} file, which is not read; convert"):
        read_image(tmp_path / f"p{suffix.upper()}")


def test_what_is_said_of_unread_files_names_each_suffix_once(tmp_path):
    from model.images import Scan, broken_links_note, only_dead_links, scan_images

    for name in ("a.heic", "b.HEIC", "c.dng"):
        (tmp_path / name).write_bytes(b"x")
    scan = scan_images(tmp_path)
    assert only_dead_links(scan) == (f"its 3 image file(s) are .heic, .dng (e.g. {tmp_path / 'a.heic'}), which are not read; "
                                     "convert them to PNG or TIFF")
    assert broken_links_note(scan, tmp_path) == [f"3 image file(s) in {tmp_path} were left out (e.g. {tmp_path / 'a.heic'}): "
                                                 ".heic, .dng files are not read; convert them to PNG or TIFF to read them"]
    (tmp_path / "d.png").symlink_to(tmp_path / "gone.png")  # links leading nowhere are what is said first
    said = only_dead_links(Scan(unread=scan.unread, broken_links=[tmp_path / "d.png"]))
    assert said == f"its 1 image link(s) lead nowhere (e.g. {tmp_path / 'd.png'} -> {tmp_path / 'gone.png'}); mount or copy what they point to"


def test_the_folder_given_that_cannot_be_listed_stops_a_scan_and_a_hidden_one_below_is_passed(tmp_path, monkeypatch):
    from model.errors import InspectorError
    from model.images import scan_images
    from tests.model.test_image_formats import _unlistable

    (tmp_path / "tree" / ".trash").mkdir(parents=True)
    (tmp_path / "tree" / "0.png").write_bytes(b"x")
    _unlistable(monkeypatch, tmp_path / "tree" / ".trash")
    for skip in (False, True):  # another user's trash (mode 700) is no folder of images
        scan = scan_images(tmp_path / "tree", recursive=True, skip_unreadable=skip)
        assert [p.name for p in scan.images] == ["0.png"] and scan.unreadable == []
    _unlistable(monkeypatch, tmp_path / "tree")
    with pytest.raises(InspectorError, match=r"^folder .*tree: cannot be read \(Permission denied\)"):
        scan_images(tmp_path / "tree", recursive=True, skip_unreadable=True)


def _not_entered(monkeypatch, *denied: Path) -> None:
    """A file in the folders `denied` cannot be looked at, as in one of mode r-- (listed, not entered; root enters any)."""
    is_symlink = Path.is_symlink

    def looked_at(self: Path) -> bool:
        if self.parent in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return is_symlink(self)

    monkeypatch.setattr(Path, "is_symlink", looked_at)


def test_a_folder_listed_but_not_entered_stops_a_scan_unless_below_and_skipped_or_hidden(tmp_path, monkeypatch):
    from model.errors import InspectorError
    from model.images import scan_images

    tree = tmp_path / "tree"
    for sub in ("a", "b", ".trash"):
        (tree / sub).mkdir(parents=True)
        (tree / sub / "0.png").write_bytes(b"x")
    (tree / "0.png").write_bytes(b"x")
    _not_entered(monkeypatch, tree / "b", tree / ".trash")
    with pytest.raises(InspectorError, match=r"^folder .*tree/b: cannot be read \(Permission denied\); give this user read"):
        scan_images(tree, recursive=True)
    scan = scan_images(tree, recursive=True, skip_unreadable=True)  # the trash's not said: its images are not read anyway
    assert [p.relative_to(tree).as_posix() for p in scan.images] == ["0.png", "a/0.png"]
    assert [p for p, _ in scan.unreadable] == [tree / "b"]
    _not_entered(monkeypatch, tree / "b", tree / ".trash", tree)
    with pytest.raises(InspectorError, match=r"^folder .*tree: cannot be read \(Permission denied\)"):  # the folder given
        scan_images(tree, recursive=True, skip_unreadable=True)
