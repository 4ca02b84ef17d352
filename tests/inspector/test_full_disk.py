"""A disk that fills up: one line that says so (not a broken database, not a traceback), outputs already made kept,
and a station that may start again by itself once there is room."""

from __future__ import annotations

import errno
import json
import sqlite3
from collections import namedtuple

import pytest

import inspector.store as store_module
from inspector.store import Store
from model.errors import InspectorError, RetryLater
from tests.cli import cli

Usage = namedtuple("Usage", "total used free")


def test_a_store_on_a_full_disk_says_so_and_asks_for_a_restart_later(tmp_path, monkeypatch, capsys):
    """SQLite says 'disk I/O error' on a full disk too: it read as 'not a usable SQLite database', which invited deleting
    the store, and exit code 2, on which the unit does not restart the station once there is room."""
    Store(tmp_path / "data").close()

    def connect(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_module.sqlite3, "connect", connect)
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 4096))
    with pytest.raises(RetryLater) as exc:
        Store(tmp_path / "data", exclusive=True)
    assert str(exc.value).startswith(f"store {tmp_path / 'data' / 'inspections.sqlite'}: the disk holding it is full (0 MB free; "
                                     "disk I/O error); free space, then start again")
    with pytest.raises(InspectorError, match="the disk holding it is full"):
        Store(tmp_path / "data", readonly=True)
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda p: Usage(10**9, 0, 10**9))
    with pytest.raises(InspectorError, match=r"not a usable SQLite database \(disk I/O error\)"):  # with room, it is the file
        Store(tmp_path / "data", exclusive=True)


def test_a_condition_that_may_pass_exits_75_for_the_unit_to_restart(monkeypatch, capsys):
    import inspector.commands.threshold as threshold

    def full(_args):
        raise RetryLater("store /var/lib/inspector/st3/inspections.sqlite: the disk holding it is full")

    monkeypatch.setattr(threshold, "run", full)
    rc, _, err = cli(capsys, "threshold", "x")
    assert rc == 75 and err.startswith("error: store /var/lib/inspector/st3") and len(err.splitlines()) == 1
    service = (store_module.Path(__file__).parents[2] / "configs" / "inspector.service").read_text()
    assert "Restart=on-failure" in service and "RestartPreventExitStatus=2\n" in service


@pytest.mark.parametrize(("exc", "code", "line"), [
    (OSError(errno.ENOSPC, "No space left on device", "/srv/exports/line3.onnx"), 75,  # a full disk may pass: the unit restarts
     "error: /srv/exports/line3.onnx: No space left on device; free space, then run it again"),
    (OSError(errno.EROFS, "Read-only file system", "/srv/exports"), 2,  # not "give this user (root) write access"
     "error: /srv/exports: Read-only file system; remount its disk writable, or use a folder on a writable disk"),
    (OSError(errno.EIO, "Input/output error"), 75, "error: [Errno 5] Input/output error; check the folder and the disk"),  # no "a file"
    (TimeoutError("timed out"), 75, "error: timed out; check the folder and the disk"),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), 141, None),  # `inspector eval --json | head`: quiet, and not 0 (all PASSed)
])
def test_an_os_error_no_command_foresaw_is_one_line(monkeypatch, capsys, exc, code, line):
    """A full disk or a failing one was exit 2, which the unit never restarts on; a broken pipe said `a file: Broken pipe`."""
    import inspector.commands.threshold as threshold

    def fail(_args):
        raise exc

    monkeypatch.setattr(threshold, "run", fail)
    rc, _, err = cli(capsys, "threshold", "x")
    assert rc == code and "Traceback" not in err
    assert (err.splitlines() == [] if line is None else len(err.splitlines()) == 1 and err.startswith(line)), err



def test_a_thread_that_cannot_start_is_one_line_and_may_pass(monkeypatch, capsys):
    """fit under `ulimit -u` (a unit's TasksMax) at its limit ended in 'RuntimeError: can't start new thread', a traceback
    and exit 70, 'please report it'."""
    import inspector.commands.threshold as threshold

    def no_thread(_args):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threshold, "run", no_thread)
    rc, _, err = cli(capsys, "threshold", "x")
    assert rc == 75 and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("error: cannot start a thread") and "ulimit -u" in err


def test_a_full_temporary_folder_is_named(tmp_path, monkeypatch):
    """bench report and export --format onnx-int8 with TMPDIR on a full disk said 'error: [Errno 28] No space left on
    device; free space, then run it again', naming no disk: the output folder's had room."""
    import tempfile

    from model.folders import scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RetryLater) as exc, scratch_folder("inspector-int8-") as tmp:
        raise OSError(errno.ENOSPC, "No space left on device")  # PIL's and onnx's writes name no file
    assert str(exc.value).startswith(f"the temporary folder {tmp_path} is full (No space left on device); free space there, "
                                     "or set TMPDIR") and not tmp.exists()
    with pytest.raises(OSError) as other, scratch_folder("inspector-int8-"):  # a full disk elsewhere is its own
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/exports/m.onnx")
    assert other.value.filename == "/srv/exports/m.onnx"

def test_an_export_written_onto_a_full_disk_is_one_line_and_keeps_the_old_pair(tmp_path, monkeypatch):
    import exporters.manifest as manifest

    model = tmp_path / "m.onnx"
    model.write_bytes(b"old model")
    manifest.write_sidecar(model, {"format": manifest.FORMAT, "thresholds": {"image": 1.0}})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full(files):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest, "replace_files", full)
    with pytest.raises(InspectorError) as exc:  # was a traceback, exit 1
        manifest.write_sidecar(model, {"format": manifest.FORMAT, "thresholds": {"image": 2.0}}, b"new model")
    assert str(exc.value) == f"export {model}: cannot be written (No space left on device); free space, then run it again"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_overlays_that_cannot_be_written_leave_the_verdicts(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    """A full overlay folder made every image 'unreadable' and printed no verdict; with --exit-code a FAIL read 2."""
    import inspector.overlay as overlay

    calls = []

    def full(rgb, path):
        calls.append(path)
        raise InspectorError(f"overlay {path}: cannot be written (No space left on device); free space, then run it again")

    monkeypatch.setattr(overlay, "save_png", full)
    images = [tiny_data / "test" / "blob" / "000.png", tiny_data / "test" / "good" / "000.png"]
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, *images, "--overlays", tmp_path / "ov", "--json")
    report = json.loads(out)
    assert rc == 2 and [r["verdict"] for r in report["results"]] == ["FAIL", "PASS"] and len(calls) == 1
    assert report["summary"] == {"images": 2, "inspected": 2, "fail": 1, "pass": 1}
    assert [e["path"] for e in report["errors"]] == [str(images[0])] and err.count("error: ") == 1
    assert "no further overlays are written" in err
