"""`inspector review` on a store it may not write: one line naming the store and who may write it, nothing written.

SQLite opens a database this user may not write read-only, without a word: the first review's write failed with a
traceback (`sqlite3.OperationalError: attempt to write a readonly database`, exit 1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from inspector.cli import main
from inspector.store import Store
from model.errors import InspectorError
from reports.sample import make_records
from tests.access import cli_as_other_user, needs_fork, read_only
from tests.cli import assert_one_line_error, cli


def fill(root, n: int = 4) -> list[dict]:
    store = Store(root)
    records = make_records(n, root=root, hours=1.0, image_size=32, fail_rate=0.5, seed=3)
    for r in records:
        store.add(r)
    store.close()
    return records


def reviews(root, ident: str) -> list:
    store = Store(root, readonly=True)
    try:
        return store.get(ident).get("reviews", [])
    finally:
        store.close()


@needs_fork
@pytest.mark.parametrize("by_serial", [False, True])
def test_a_store_this_user_may_not_write_is_one_line_and_nothing_is_written(public_dir, capsys, by_serial):
    root = public_dir / "data"
    records = fill(root)
    part = records[0]["serial"] if by_serial else records[0]["inspection_id"]
    read_only(root, writable=True)  # the folder may be written, the database may not (the station's, made by its user)
    rc, _, err = cli(capsys, "review", "--db", root, "not-there", "--truth", "good")  # loads what the child needs
    assert "not in store" in err or "cannot be written" in err, err
    rc, out, err = cli_as_other_user(main, "review", "--db", root, *(["--serial"] if by_serial else []), part, "--truth", "good")
    assert_one_line_error(rc, err, f"store {root}: cannot be written (read-only to this user", "inspections.sqlite",
                          "run review as the station's user", "(nothing was written)")
    assert out == "" and reviews(root, records[0]["inspection_id"]) == []


@needs_fork
def test_a_store_whose_folder_this_user_may_not_write_is_one_line(public_dir, capsys):
    """After a clean stop the station's -wal and -shm files are gone, and SQLite must create them in the folder."""
    root = public_dir / "data"
    records = fill(root)
    read_only(root)
    cli(capsys, "review", "--db", root, "not-there", "--truth", "good")
    rc, _, err = cli_as_other_user(main, "review", "--db", root, records[0]["inspection_id"], "--truth", "defect")
    assert_one_line_error(rc, err, f"store {root}: cannot be written (read-only to this user", "its folder", "(nothing was written)")
    assert reviews(root, records[0]["inspection_id"]) == []


def test_a_store_on_a_read_only_file_system_is_one_line(tmp_path):
    """As reported: a store copied with its -wal and -shm files (the station running) onto a file system mounted
    read-only. Needs root and a kernel that lets it mount a tmpfs; run as the user would, in a process of its own."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("only root can mount a read-only file system")
    src, mnt = tmp_path / "src", tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        store = Store(src)
        records = make_records(3, root=src, hours=1.0, image_size=32, fail_rate=0.5, seed=3)
        for r in records:
            store.add(r)
        shutil.copytree(src, mnt / "data")  # while open: -wal and -shm go with it
        store.close()
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode == 0
        for part in (["--serial", records[0]["serial"]], [records[0]["inspection_id"]]):
            p = subprocess.run([sys.executable, "-m", "inspector", "review", "--db", str(mnt / "data"), *part, "--truth", "good"],
                               capture_output=True, text=True)
            assert_one_line_error(p.returncode, p.stderr, f"store {mnt / 'data'}: cannot be written (its file system is mounted read-only)",
                                  "run review where the store can be written")
        assert reviews(mnt / "data", records[0]["inspection_id"]) == []
        with pytest.raises(InspectorError, match=r"\(its file system is mounted read-only\); give a data directory on a writable disk"):
            Store(mnt / "data", exclusive=True)  # the station's own: "chown -R" before, which cannot help
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
