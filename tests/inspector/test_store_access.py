"""Who may open the store: a QA user who may only read it runs reports; a daemon that may not write it stops at once."""

from __future__ import annotations

import os
import re
from pathlib import Path

from inspector.cli import main
from inspector.store import DB_NAME, LOCK_FILE, Store, unwritable
from reports.sample import make_records
from tests.access import as_other_user, fork, needs_fork, needs_root, read_only

pytestmark = needs_fork

def fill(root: Path, n: int = 12) -> list[dict]:
    store = Store(root, exclusive=True)
    records = make_records(n, root=root, hours=1.0, image_size=48, fail_rate=0.25, seed=3)
    for r in records:
        store.add(r)
    store.close()
    return records


def ids(root: Path) -> list[str]:
    store = Store(root, readonly=True)
    try:
        return [r["inspection_id"] for r in store.iter_records()]
    finally:
        store.close()


def test_a_reader_reads_a_stopped_stations_store_and_writes_nothing(public_dir):
    """After a clean stop SQLite removes the -shm file a WAL reader needs and only a writer could create."""
    root = public_dir / "store"
    records = fill(root)
    assert not (root / f"{DB_NAME}-shm").exists()
    read_only(root)
    before = sorted(p.name for p in root.iterdir())
    assert as_other_user(lambda: ids(root)) == {"value": sorted((r["inspection_id"] for r in records), key=lambda i: next(
        r["timestamp"] for r in records if r["inspection_id"] == i))}
    assert sorted(p.name for p in root.iterdir()) == before


def test_a_reader_reads_while_the_station_writes(public_dir):
    root = public_dir / "store"
    fill(root, 4)
    writer = Store(root, exclusive=True)  # the running daemon: its -shm is there, readable by the group
    try:
        extra = make_records(1, root=root, hours=0.1, seed=9)[0] | {"inspection_id": "late-1", "timestamp": "2026-11-26T23:00:00Z"}
        writer.add(extra)
        read_only(root)
        assert (root / f"{DB_NAME}-shm").exists()
        assert as_other_user(lambda: ids(root)[-1]) == {"value": "late-1"}
    finally:
        root.chmod(0o755)
        writer.close()


def test_a_reader_is_told_when_a_crashed_stations_changes_wait_in_the_wal(public_dir):
    root = public_dir / "store"
    fill(root, 2)
    pid = fork()
    if pid == 0:  # pragma: no cover - a station killed after storing a result
        store = Store(root, exclusive=True)
        store.add(make_records(1, root=root, seed=5)[0] | {"inspection_id": "unsaved-1"})
        os._exit(0)
    os.waitpid(pid, 0)
    (root / f"{DB_NAME}-shm").unlink()  # e.g. the machine restarted since
    assert (root / f"{DB_NAME}-wal").stat().st_size > 0
    read_only(root)
    out = as_other_user(lambda: ids(root))
    assert "cannot read it while inspections.sqlite-wal holds changes not yet written into it" in out["error"]
    assert "start the station once" in out["error"]


def test_report_cli_for_a_qa_user_who_may_only_read_the_store(public_dir, tmp_path):
    root, out = public_dir / "store", public_dir / "out"
    records = fill(root)
    report = ["report", "--db", str(root), "--from", "2026-11-26T00:00Z", "--to", "2026-11-27T00:00Z", "--format", "html", "--tz", "UTC"]
    assert main([*report, "--out", str(tmp_path)]) == 0  # by the store's owner; also loads every module the child needs
    out.mkdir()
    read_only(root)
    read_only(out, writable=True)
    assert as_other_user(lambda: main([*report, "--out", str(out)])) == {"value": 0}
    name = "shift-20261126T0000Z-20261127T0000Z.html"
    qa, owner = (re.sub(r'<p class="muted" id="generated">.*?</p>', "", (d / name).read_text(encoding="utf-8")) for d in (out, tmp_path))
    assert f'<div class="v">{len(records)}</div>' in qa and qa == owner


@needs_root
def test_a_reader_without_access_gets_one_line(public_dir):
    root = public_dir / "store"
    fill(root, 2)
    root.chmod(0o700)
    out = as_other_user(lambda: ids(root))
    assert out["error"].startswith(f"store {root}: cannot be read (Permission denied); give this user")


def test_a_station_that_may_not_write_its_store_stops_at_once(public_dir):
    """SQLite opens a file it may not write read-only without a word: the daemon was 'ready', then refused every part."""
    root = public_dir / "store"
    fill(root, 2)
    read_only(root, writable=True)  # the folder is the station's, the database file is not (made by root at set-up)
    assert [p.name for p in unwritable(root)] == ([DB_NAME, LOCK_FILE] if os.geteuid() != 0 else [])
    out = as_other_user(lambda: Store(root, exclusive=True).count())
    assert f") cannot write {DB_NAME}, {LOCK_FILE}; give it the data directory (e.g. chown -R" in out["error"]
    assert as_other_user(lambda: Store(root, readonly=True).count()) == {"value": 2}


@needs_fork
def test_a_station_given_an_empty_data_directory_of_another_user_is_told_the_fix(public_dir):
    """An empty data directory another user owns (made by root at set-up): serve said only
    `.serve.lock: cannot be opened (Permission denied)`."""
    root = public_dir / "empty"
    root.mkdir()
    read_only(root)
    out = as_other_user(lambda: Store(root, exclusive=True).count())
    assert ") cannot write the data directory; give it the data directory (e.g. chown -R" in out["error"], out


@needs_fork
def test_the_forked_child_collects_no_garbage_of_its_parent():
    """A collection in the child finalised an onnxruntime session left as garbage by an earlier test: its destructor waited
    on a lock one of the parent's threads held at the fork, and a full run hung in this file's report test."""
    import gc

    assert as_other_user(gc.isenabled) == {"value": False} and gc.isenabled()
