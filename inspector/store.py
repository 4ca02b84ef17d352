"""The result store: SQLite (WAL) rows are the source of truth, image files beside them.

A record is written here before it is published; `published_at` stays NULL until the broker
acknowledged it, so an outbox can resend after an outage or a crash. Schema changes go through
numbered migrations (MIGRATIONS), applied in order on open.
"""

from __future__ import annotations

import errno
import heapq
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.result import Reply, iso_utc, utc_now
from model.errors import InspectorError, RetryLater, in_utf8, user_name
from model.folders import hold_lock_file, replace_files, synced, write_new
from reports.images import resolve as inside_store
from reports.names import safe_name

log = logging.getLogger(__name__)
DB_NAME = "inspections.sqlite"
LOCK_FILE = ".serve.lock"  # held by the daemon while it runs on the store
BDSEQ_FILE = "sparkplug.bdseq"  # Sparkplug B's next bdSeq, kept over restarts (sparkplug.SparkplugNode)
# the WAL is cut back to this after a checkpoint: a reader holding a snapshot let it grow to 20 MB (images pass through
# the journal), and it kept that size for good
WAL_LIMIT = 8 * 2**20
REFUSED_DIR = "refused"  # accepted inputs no result was made of, kept with why (see Store.set_aside)
ARRIVALS_FILE = "on-arrival.jsonl"  # refused/<day>/: inputs refused on arrival, one JSON line each (see Store.note_refusal)
# what _row reads: the record, then the columns that stand in for a record whose text is not JSON
_RECORD = "record, published_at, inspection_id, ts, station, serial, verdict, score, threshold, model_id"
# the stand-in's warning (reports.warnings.KNOWN reads it in a report's language)
DAMAGED = ("the stored record of this part could not be read (changed outside the station); its verdict, score and threshold "
           "come from the store's columns, its defects and images are not known")
DELIVERIES_KEPT = 1000  # MQTT inputs journaled lately, kept by packet id to know the copy a broker sends after a crash
_SUFFIXES = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"BM": ".bmp", b"II*\x00": ".tif", b"MM\x00*": ".tif"}

MIGRATIONS: list[str] = [
    """
    CREATE TABLE inspections (
        inspection_id TEXT PRIMARY KEY,
        ts TEXT NOT NULL,
        station TEXT,
        serial TEXT,
        verdict TEXT NOT NULL,
        score REAL,
        threshold REAL,
        model_id TEXT,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL,
        published_at TEXT
    );
    CREATE INDEX inspections_ts ON inspections(ts);
    CREATE INDEX inspections_unpublished ON inspections(created_at) WHERE published_at IS NULL;
    """,
    # 2: the intake journal: work accepted (and acknowledged to the sender) but not yet stored as a result
    """
    CREATE TABLE pending (
        inspection_id TEXT PRIMARY KEY,
        accepted_at TEXT NOT NULL,
        job TEXT NOT NULL,
        image BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    """,
]


def _object(text: str) -> dict[str, Any] | None:
    """A stored JSON object (a record, a journaled job), None where its text is none: edited by hand in the database."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def db_files(root: Path) -> list[Path]:
    """The store's SQLite database and its -wal and -shm files, there or not."""
    return [root / (DB_NAME + s) for s in ("", "-wal", "-shm")]


def daemon_files(root: Path) -> list[Path]:
    """The files a daemon keeps under `root`: the database, its journal, its lock and its Sparkplug bdSeq, there or not."""
    return [*db_files(root), root / LOCK_FILE, root / BDSEQ_FILE]


def discard_new(root: Path, made: bool) -> None:
    """Remove a store a refused start created and wrote nothing to (its database, lock file, and its folder when `made`
    it): left behind, `inspector report` found it and wrote an empty report, where it had said there was no store."""
    for f in daemon_files(root):
        f.unlink(missing_ok=True)
    if made:
        try:
            root.rmdir()  # only if empty
        except OSError:
            pass


def read_only_fs(folder: Path) -> bool:
    """Whether `folder` lies on a file system mounted read-only (where no chown helps)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): the write says so
        return False


def cannot_write(root: Path, what: str) -> str:
    if read_only_fs(root):  # "give it the data directory (chown -R ...)" before, which cannot help
        return f"store {root}: cannot be written (its file system is mounted read-only); give a data directory on a writable disk"
    return (f"store {root}: this user ({user_name()}) cannot write {what}; give it the data directory (e.g. "
            f"chown -R {user_name()} {root}), or run as the user that owns it")


def _no_folder(root: Path, exc: OSError) -> str:
    """The fix for a data directory that could not be created."""
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "it, or a folder above it, is a file; give the path of a folder"
    if read_only_fs(next((p for p in root.parents if p.exists()), root)):
        return "give a data directory on a writable disk"  # strerror said why
    return f"create it for this user ({user_name()}), or give a data directory it may create"


def make_folder(folder: Path) -> None:
    """`folder` made where missing, with its entry (and any parent's it made) on the disk: else a power cut could take
    back a day folder whose files were synced."""
    if folder.is_dir():  # the common case: one stat, not one per parent
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for parent in {p.parent for p in made}:
        synced(parent)


def journaled_repeats(job: dict[str, Any]) -> list:
    """The repeats journaled beside a pending job (`keep_repeat`); none where a hand edit made them other than a list: a
    string was spread into letters, and it stopped the journal's recovery."""
    repeats = job.get("repeats")
    return repeats if isinstance(repeats, list) else []


def unwritable(root: str | Path) -> list[Path]:
    """The daemon's files under `root` (database, its journal, lock) that exist and this user may not write."""
    return [f for f in daemon_files(Path(root)) if f.exists() and not os.access(f, os.W_OK)]


# what SQLite says of a file it cannot read as a store: damaged (a crash on a failing disk, a copy cut short), not a
# database at all, or one without the inspections table (an empty file)
_DAMAGE = ("malformed", "not a database", "no such table", "file is encrypted")


class StoreDamaged(InspectorError, sqlite3.DatabaseError):
    """A store SQLite cannot read as one: one line for a command (it was a traceback), and still an sqlite3 error for
    the daemon's handlers, which keep the part journaled."""


def _denied(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite failed for want of access (it names no errno)."""
    return any(t in str(exc) for t in ("readonly", "unable to open", "read-only"))


def _connect_readonly(uri: str) -> sqlite3.Connection:
    db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA user_version").fetchone()  # a WAL store without access to its -shm fails here, not at connect
    except BaseException:
        db.close()
        raise
    return db


def _utc(timestamp: Any) -> Any:
    """The record's time in the store's UTC form, which periods are selected by as text (without an offset it is
    UTC, as reports read it); as given if it is no time."""
    from reports.zones import iso_datetime

    try:
        t = iso_datetime(str(timestamp))
        return iso_utc(t if t.tzinfo else t.replace(tzinfo=timezone.utc))
    except (ValueError, OverflowError):
        return timestamp


class Store:
    """Thread-safe single-connection store rooted at a data directory."""

    def __init__(self, root: str | Path, exclusive: bool = False, readonly: bool = False) -> None:
        """`exclusive`: the daemon's store, which no other daemon may open while this one holds it (two on one store
        re-sent each other's results under both prefixes and shared one journal); taken before the database is
        opened (a second daemon migrated its schema, then was refused), on a file, not the folder, which
        `inspector threshold` locks when an export lives there. `readonly`: a reader's (`inspector report`), which
        writes nothing, needs no write access and migrates no schema (see `_open_readonly`)."""
        self.root = Path(root)
        self.path = self.root / DB_NAME
        self._uri = f"{Path(os.path.realpath(self.path)).as_uri()}?mode=ro"  # os.path's: resolve() raised RuntimeError of a link loop
        self._lock = threading.RLock()
        self._append_lock = threading.Lock()  # refusals come from the intake, the MQTT client's and the sources' threads
        self._records: int | None = None  # counted once a retention pass, kept by add and prune: COUNT(*) took 19 ms per 1M rows
        self._rows_cutoff: tuple[str, str] | None = None  # (ts, id) of the newest record max_rows leaves out, for a pass
        self._held = None
        self._together = threading.local()  # `images_together`'s files on this thread: (path, its fsync), or none outside it
        self._syncer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-fsync")  # their fsyncs; no thread until the first
        if readonly:
            self._db = self._open_readonly()
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # it named no fix
            raise InspectorError(f"store {self.root}: cannot create the data directory ({exc.strerror}); {_no_folder(self.root, exc)}") from None
        # SQLite opens a file this user may not write read-only, unsaid: the daemon was ready, then refused every part
        if exclusive and (files := unwritable(self.root)):
            raise InspectorError(cannot_write(self.root, ", ".join(f.name for f in files)))
        if exclusive and not os.access(self.root, os.W_OK | os.X_OK):  # an empty one another user owns: "cannot be opened" before
            raise InspectorError(cannot_write(self.root, "the data directory"))
        self._held = hold_lock_file(self.root / LOCK_FILE, f"store {self.root}: another inspector serve is using it; stop that one, "
                                                             "or give this station its own store.data_dir") if exclusive else None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            # before anything is written: a newer inspector's store was turned to WAL by the start that refused it
            self._refuse_newer(self._db.execute("PRAGMA user_version").fetchone()[0])
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self._migrate()
        except BaseException as exc:
            if self._held is not None:
                os.close(self._held)
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._unusable(exc) from None
            raise

    def _unusable(self, exc: sqlite3.DatabaseError) -> InspectorError:
        if full := self._disk_full(exc):
            return full
        return InspectorError(cannot_write(self.root, DB_NAME) if _denied(exc) else f"store {self.path}: not a usable SQLite database ({exc})")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A damaged database said in one line naming the store (it opens, then a read fails: `database disk image is
        malformed`, `no such table`), not a traceback; other SQLite errors (locked, full) pass as they are."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, InspectorError) or not any(t in str(exc) for t in _DAMAGE):
                raise
            raise StoreDamaged(f"store {self.path}: not a usable SQLite database ({exc}); restore it from a backup, or give the "
                               "data directory the inspector writes to") from None

    def _disk_full(self, exc: sqlite3.DatabaseError) -> RetryLater | None:
        """A full disk reads as 'disk I/O error' too: said so, not as a broken database (which invited deleting it)."""
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return None
        if "full" not in str(exc) and free >= 2**20:
            return None
        return RetryLater(f"store {self.path}: the disk holding it is full ({free // 2**20} MB free; {exc}); free space, then start again")

    def _open_readonly(self) -> sqlite3.Connection:
        """A read-only connection. A WAL store needs its shared-memory file (`-shm`), which only a user who may write
        the folder can create: while the daemon runs it is there; after a clean stop it is gone, and then, with no
        changes waiting in the `-wal` file, the database is read as it stands (`immutable`)."""
        _, wal, shm = db_files(self.root)
        try:
            if not self.path.is_file():
                raise InspectorError(f"store {self.root}: no {DB_NAME} there; give the data directory the inspector writes to")
            waiting = wal.exists() and wal.stat().st_size > 0 and not shm.exists()
        except OSError as exc:
            raise InspectorError(f"store {self.root}: cannot be read ({exc.strerror}); give this user ({user_name()}) read access to it") from None
        try:
            db = _connect_readonly(self._uri)
        except sqlite3.DatabaseError as exc:
            if not _denied(exc) or shm.exists() or waiting:
                raise InspectorError(self._unreadable(exc, waiting)) from None
            self._uri += "&immutable=1"
            try:
                db = _connect_readonly(self._uri)
            except sqlite3.DatabaseError as exc:
                raise InspectorError(self._unreadable(exc, False)) from None
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            # a file no inspector ever made a store of (an empty one: a copy cut short) reads as version 0: every read failed
            # with a traceback (`no such table: inspections`)
            empty = version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'inspections'").fetchone() is None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise InspectorError(self._unreadable(exc, False)) from None
        if empty:
            db.close()
            raise InspectorError(f"store {self.path}: holds no inspections (an empty or unfinished file); restore it from a backup, "
                                 "or give the data directory the inspector writes to")
        # an older store is read as it is: readers use the inspections table only, as version 1 made it (a migration
        # that changes it must refuse older versions here)
        try:
            self._refuse_newer(version)
        except InspectorError:
            db.close()
            raise
        return db

    def _refuse_newer(self, version: int) -> None:
        """A store a newer inspector wrote (a station downgraded over it) is left as it is, with one line."""
        if version > len(MIGRATIONS):
            raise InspectorError(f"store {self.path}: schema version {version} is newer than this inspector ({len(MIGRATIONS)}); upgrade it")

    def _unreadable(self, exc: sqlite3.DatabaseError, waiting: bool) -> str:
        if full := self._disk_full(exc):
            return str(full)
        if not _denied(exc):
            return f"store {self.path}: not a usable SQLite database ({exc})"
        if waiting:
            return (f"store {self.path}: this user ({user_name()}) cannot read it while {DB_NAME}-wal holds changes not yet written "
                    "into it; run as the station's user, or start the station once")
        return f"store {self.path}: this user ({user_name()}) cannot read it; give it read access to {self.root} and the files in it"

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        self._refuse_newer(version)
        for i in range(version, len(MIGRATIONS)):
            # one script = one transaction: a crash mid-migration leaves the previous version intact
            self._db.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[i]}\nPRAGMA user_version = {i + 1};\nCOMMIT;")
        if 0 < version < len(MIGRATIONS):  # said: the inspector that wrote it refuses it from now on (a station downgraded)
            log.warning("store %s: schema upgraded from version %d to %d; an inspector older than this schema no longer opens it",
                        self.path, version, len(MIGRATIONS))
        # QA finds a part by its serial (`latest_of_serial`); an index, not a schema version, so an older inspector still opens the store
        self._db.execute("CREATE INDEX IF NOT EXISTS inspections_serial ON inspections(serial, ts)")
        # the MQTT 5 correlation data and Response Topic of the input a result answers, beside the record (the published
        # contract): a result re-sent after an outage or a restart went out without them. Columns added where missing, not
        # a schema version, for the same reason (older inspectors name the columns they write)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(inspections)")}
        for column, kind in (("correlation", "BLOB"), ("response_topic", "TEXT")):
            if column not in columns:
                self._db.execute(f"ALTER TABLE inspections ADD COLUMN {column} {kind}")
        # the MQTT inputs journaled lately, by the broker's packet id (see `accept`); a table made where missing, as above
        if (cols := {r[1] for r in self._db.execute("PRAGMA table_info(deliveries)")}) and "at" not in cols:
            self._db.execute("DROP TABLE deliveries")  # made by a development version without times: only a recent memory
        self._db.execute("CREATE TABLE IF NOT EXISTS deliveries (mid INTEGER NOT NULL UNIQUE, topic TEXT NOT NULL, digest BLOB NOT NULL,"
                         " at REAL NOT NULL)")

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[None]:
        """One transaction. `durable`: on the disk at its commit (synchronous FULL for it alone), for what a sender lets
        go of once it is journaled (the broker's copy acknowledged, a watched file moved): under NORMAL a power cut took
        back the WAL's last commits, and the part with them; the rest (a result, its publish mark) is made again from
        the journal, so it need not wait for the disk."""
        with self._lock:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    # -- files ---------------------------------------------------------------------------------------
    def image_path(self, record: dict[str, Any], kind: str) -> Path:
        """Where an image of a record lives: images/YYYY-MM-DD/<id>_<kind>.png (always under the root)."""
        day = str(record.get("timestamp", ""))[:10] or "undated"
        return self.root / "images" / safe_name(day) / f"{safe_name(record['inspection_id'])}_{safe_name(kind)}.png"

    def save_image(self, record: dict[str, Any], kind: str, rgb: np.ndarray) -> str:
        """Write one of a record's images; on the disk when it returns (fsync of the file and its folder; in an
        `images_together` block, when that ends), before the row naming it is: the next durable commit (`accept`) takes
        that row to the disk, and after a power cut it named an empty or missing PNG. An overlay as much as the image: a
        report shows it, and only the model could make it again."""
        path = self.image_path(record, kind)
        make_folder(path.parent)
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise InspectorError(f"store {self.root}: cannot encode {path.name}")
        tmp = path.with_suffix(".tmp.png")
        try:
            try:
                write_new(tmp, png.tobytes())
            except FileNotFoundError:  # its day folder, emptied, was removed by retention since: made again
                make_folder(path.parent)
                write_new(tmp, png.tobytes())
            tmp.replace(path)  # a link at `path` is replaced itself, never followed
            together = getattr(self._together, "files", None)
            if together is not None:  # synced as the block ends; its fsync runs from now on, while the next image is made
                together.append((path, self._sync_soon(path)))
                return str(path.relative_to(self.root))
            try:
                synced(path)
                synced(path.parent)
            except BaseException:  # not known to be on the disk (EIO): no record names it, so retention would never remove it
                path.unlink(missing_ok=True)
                raise
        except BaseException:  # a full disk: half a PNG that no record names, which retention never removed
            tmp.unlink(missing_ok=True)
            raise
        return str(path.relative_to(self.root))

    def _sync_soon(self, path: Path) -> Future:
        return self._syncer.submit(synced, path)

    @contextmanager
    def images_together(self) -> Iterator[None]:
        """The images `save_image` writes in this block (on this thread) are on the disk together when it ends: each file's
        fsync starts as it is renamed into place and runs while the next image is made, and their folders' run beside them,
        once a folder (a journalling file system commits fsyncs that wait together at once). One after another, a part's
        image and overlay took four fsyncs in a row, 15 of the 22 ms the sink spent on a failed part. Where one
        fails (EIO), every file of the block is removed (no record is to name them) and that OSError is raised."""
        if getattr(self._together, "files", None) is not None:  # nested: the outer block syncs them
            yield
            return
        files: list[tuple[Path, Future]] = []
        self._together.files = files
        try:
            yield
        finally:  # waited for however the block ends: its files are on their way to the disk
            self._together.files = None
            failed = self._synced_all(files)
        if failed is not None:
            raise failed

    def _synced_all(self, files: list[tuple[Path, Future]]) -> BaseException | None:
        """Wait for the files' fsyncs and their folders' (started here); the first failure, with the files removed."""
        if not files:
            return None
        syncs = [f for _, f in files] + [self._sync_soon(folder) for folder in dict.fromkeys(path.parent for path, _ in files)]
        wait(syncs)
        failed = next((exc for f in syncs if (exc := f.exception()) is not None), None)
        if failed is not None:
            for path, _ in files:
                path.unlink(missing_ok=True)
        return failed

    # -- rows ------------------------------------------------------------------------------------------
    def add(self, record: dict[str, Any], images: dict[str, np.ndarray] | None = None, reply: Reply | None = None) -> bool:
        """Store a record (and its images), with where its publish answers (`reply`). Returns False if its
        inspection_id was already stored."""
        record = dict(record)
        paths = dict(record.get("images") or {})
        with self.images_together():
            for kind, rgb in (images or {}).items():
                paths[kind] = self.save_image(record, kind, rgb)
        record["images"] = paths
        with self._tx():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO inspections (inspection_id, ts, station, serial, verdict, score, threshold, model_id, record, created_at,"
                " correlation, response_topic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record["inspection_id"], _utc(record["timestamp"]), record.get("station"), record.get("serial"), record["verdict"],
                 record.get("score"), record.get("threshold"), (record.get("model") or {}).get("id"),
                 json.dumps(record, ensure_ascii=False), utc_now(), reply and reply.correlation, reply and reply.topic),
            )
            # the result exists now, so its accepted job is done (same transaction: no crash window)
            self._db.execute("DELETE FROM pending WHERE inspection_id = ?", (record["inspection_id"],))
            if self._records is not None:
                self._records += cur.rowcount
        return cur.rowcount == 1

    def get(self, inspection_id: str) -> dict[str, Any] | None:
        if not in_utf8(inspection_id):
            return None
        with self._lock, self._reading():
            row = self._db.execute(f"SELECT {_RECORD} FROM inspections WHERE inspection_id = ?", (inspection_id,)).fetchone()
        return self._row(row) if row else None

    def newest_time(self) -> datetime | None:
        """The newest record's timestamp (None in an empty store)."""
        from reports.records import parse_time

        with self._lock, self._reading():
            row = self._db.execute("SELECT MAX(ts) FROM inspections").fetchone()
        return parse_time(row[0]) if row else None

    def latest_station(self) -> str | None:
        """The station that judged the latest stored part (by capture time), or None."""
        with self._lock, self._reading():
            row = self._db.execute("SELECT station FROM inspections ORDER BY ts DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def latest_of_serial(self, serial: str) -> str | None:
        """The inspection_id of the last inspection of the part `serial` (by capture time), or None."""
        if not in_utf8(serial):
            return None
        with self._lock, self._reading():
            row = self._db.execute("SELECT inspection_id FROM inspections WHERE serial = ? ORDER BY ts DESC, created_at DESC LIMIT 1",
                                   (serial,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _row(row: tuple) -> dict[str, Any]:
        """A stored record (`_RECORD`'s columns). One whose text is not a JSON object (edited by hand in the database)
        stands in from its columns, marked `damaged`: the part is still counted, published and reported, not a traceback."""
        record = _object(row[0])
        iid, ts, station, serial, verdict, score, threshold, model_id = row[2:10]
        # a JSON object without what every reader takes from a record (the outbox: a KeyError at each resend)
        if record is None or record.get("inspection_id") != iid or not record.get("verdict") or not record.get("timestamp"):
            record = {"inspection_id": iid, "timestamp": ts, "station": station, "serial": serial, "verdict": verdict,
                      "score": score, "threshold": threshold, "model": {"id": model_id}, "damaged": True, "warnings": [DAMAGED]}
        record["published_at"] = row[1]
        return record

    def records(self, start: str | None = None, end: str | None = None, station: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Records with start <= timestamp < end (ISO 8601 UTC strings), oldest first."""
        return list(self.iter_records(start, end, station, limit))

    def iter_records(self, start: str | None = None, end: str | None = None, station: str | None = None,
                     limit: int | None = None, reviewed: bool = False) -> Iterator[dict[str, Any]]:
        """`records`, decoded one at a time (a shift's 144,000 decoded records took 680 MB at once). `reviewed`: only
        those whose text holds the key `"reviews"` (quotes in values are escaped there), picked by SQLite: `review --export`
        decoded every record to find the few QA reviewed (98,000 in 2.3 s against 0.04 s; a quarter's 39 million, 15 min)."""
        if station is not None and not in_utf8(station):
            return  # judged by no station in the store
        sql, args = f"SELECT {_RECORD} FROM inspections WHERE 1=1", []
        if reviewed:
            sql += """ AND instr(record, '"reviews"') > 0"""
        if start:
            sql, args = sql + " AND ts >= ?", [*args, start]
        if end:
            sql, args = sql + " AND ts < ?", [*args, end]
        if station:
            sql, args = sql + " AND station = ?", [*args, station]
        sql += " ORDER BY ts, inspection_id"
        if limit:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        # on a read-only connection of its own, outside the writer's lock: a shift's 144,000 rows held it for 2 s,
        # and the daemon stored no result meanwhile (WAL lets one writer and readers go on together)
        reader = sqlite3.connect(self._uri, uri=True, timeout=30)
        try:
            with self._reading():
                cur = reader.execute(sql, args)
                while rows := cur.fetchmany(1000):
                    yield from (self._row(r) for r in rows)
        finally:
            reader.close()

    def fails_stored_before(self, since: str, before: str, station: str, limit: int) -> list[dict[str, Any]]:
        """The FAIL records of `station` from part time `since` on and stored before `before` (the stored UTC form),
        newest first, at most `limit`: those whose reports a crash may have left unrendered (see ReportHooks). On a
        read-only connection, by the time index, as iter_records."""
        if not in_utf8(station):
            return []
        reader = sqlite3.connect(self._uri, uri=True, timeout=30)
        try:
            with self._reading():
                rows = reader.execute(f"SELECT {_RECORD} FROM inspections WHERE ts >= ? AND verdict = 'FAIL' AND station = ?"
                                      " AND created_at < ? ORDER BY ts DESC LIMIT ?", (since, station, before, int(limit))).fetchall()
        finally:
            reader.close()
        return [self._row(r) for r in rows]

    def add_review(self, inspection_id: str, review: dict[str, Any]) -> dict[str, Any] | None:
        """Append a QA review to a stored record's `reviews` (the last one stands; earlier ones stay as its history).
        What the machine said (verdict, score, defects) is not changed. Returns the record, None if there is none."""
        with self._reading(), self._tx():
            row = self._db.execute(f"SELECT {_RECORD} FROM inspections WHERE inspection_id = ?", (inspection_id,)).fetchone()
            if row is None:
                return None
            record = self._row(row)
            record.pop("published_at")
            if record.get("damaged"):  # the text that could not be read stays beside the stand-in the review is written over
                record.setdefault("damaged_text", row[0])
            earlier = record.get("reviews") if isinstance(record.get("reviews"), list) else []
            record["reviews"] = [*earlier, review]
            self._db.execute("UPDATE inspections SET record = ? WHERE inspection_id = ?", (json.dumps(record, ensure_ascii=False), inspection_id))
        return record

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]

    def unpublished(self, limit: int = 100) -> list[tuple[dict[str, Any], Reply | None]]:
        """The outbox: stored records the broker has not acknowledged, oldest first, each with where it answers."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RECORD}, correlation, response_topic FROM inspections WHERE published_at IS NULL"
                " ORDER BY created_at LIMIT ?", (limit,)
            ).fetchall()
        return [(self._row(r), Reply.of(None if r[-2] is None else bytes(r[-2]), r[-1])) for r in rows]

    def mark_published(self, inspection_id: str) -> None:
        with self._tx():
            self._db.execute("UPDATE inspections SET published_at = ? WHERE inspection_id = ? AND published_at IS NULL", (utc_now(), inspection_id))

    # -- the intake journal ------------------------------------------------------------------------------
    def accept(self, inspection_id: str, job: dict[str, Any], image: bytes, delivery: tuple[int, str, bytes] | None = None) -> bool:
        """Journal accepted work (encoded image + metadata). False if that id is already pending. `delivery`: the MQTT
        input's (packet id, topic, digest), kept in the same transaction (the last DELIVERIES_KEPT of them): a crash before
        its acknowledgement reached the broker brings it again at the next start, and it is known by them (`deliveries`).
        On the disk when it returns (`_tx(durable=True)`): its sender lets go of the input then."""
        with self._tx(durable=True):
            cur = self._db.execute("INSERT OR IGNORE INTO pending (inspection_id, accepted_at, job, image) VALUES (?, ?, ?, ?)",
                                   (inspection_id, utc_now(), json.dumps(job, ensure_ascii=False), image))
            if delivery is not None and cur.rowcount == 1:
                self._db.execute("INSERT OR REPLACE INTO deliveries (mid, topic, digest, at) VALUES (?, ?, ?, ?)", (*delivery, time.time()))
                self._db.execute("DELETE FROM deliveries WHERE rowid <= (SELECT MAX(rowid) FROM deliveries) - ?", (DELIVERIES_KEPT,))
        return cur.rowcount == 1

    def deliveries(self, within_s: float) -> list[tuple[int, str, bytes]]:
        """The MQTT inputs journaled (`accept`) within `within_s` of the last one, oldest first: (packet id, topic,
        digest). Only those may still wait unacknowledged at the broker after a crash; an older one's packet id may
        have been given to a new input since, which would then be taken for its copy and lost."""
        with self._lock:
            rows = self._db.execute("SELECT mid, topic, digest, at FROM deliveries ORDER BY rowid DESC").fetchall()
        kept: list[tuple[int, str, bytes]] = []
        last = later = rows[0][3] if rows else 0.0
        for m, t, d, at in rows:  # back from the last one journaled, not from the latest time: a clock stepped back (NTP
            # setting right a clock that ran ahead) gave the last inputs earlier times than those before the step, whose
            # age is then unknown; those were recalled and the last ones not (their copies each inspected again)
            if at > later or at < last - within_s:
                break
            kept.append((m, t, bytes(d)))
            later = at
        return kept[::-1]

    def forget_deliveries(self) -> None:
        """The broker kept no session of the station: its packet ids start over, and name other inputs."""
        with self._tx():
            self._db.execute("DELETE FROM deliveries")

    def keep_repeat(self, inspection_id: str, reply: Reply) -> bool:
        """Journal, beside a pending job, where a repeat of its id wants its answer: recovered with the job after a
        crash (held in memory only, such a repeat went unanswered). False if the job is not pending."""
        with self._tx(durable=True):  # acknowledged once journaled
            row = self._db.execute("SELECT job FROM pending WHERE inspection_id = ?", (inspection_id,)).fetchone()
            if row is None:
                return False
            job = _object(row[0]) or {}  # a job edited by hand: its image, and now its repeat, still recovered
            job["repeats"] = [*journaled_repeats(job), reply.to_meta()]
            self._db.execute("UPDATE pending SET job = ? WHERE inspection_id = ?", (json.dumps(job, ensure_ascii=False), inspection_id))
        return True

    def is_pending(self, inspection_id: str) -> bool:
        if not in_utf8(inspection_id):
            return False
        with self._lock:
            return self._db.execute("SELECT 1 FROM pending WHERE inspection_id = ?", (inspection_id,)).fetchone() is not None

    def pending(self) -> list[tuple[str, dict[str, Any], int]]:
        """Accepted work without a result, oldest first: (inspection_id, job, earlier attempts); images via pending_image.
        A job journaled before jobs carried their capture time has its arrival time as its `timestamp` (else a
        recovered part was stamped with the restart)."""
        with self._lock:
            rows = self._db.execute("SELECT inspection_id, job, attempts, accepted_at FROM pending ORDER BY accepted_at, rowid").fetchall()
        jobs = [(i, _object(j) or {}, a, t) for i, j, a, t in rows]  # a job edited by hand: recovered from its image alone
        return [(i, {**job, "timestamp": job.get("timestamp") or t}, a) for i, job, a, t in jobs]

    def pending_image(self, inspection_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT image FROM pending WHERE inspection_id = ?", (inspection_id,)).fetchone()
        return bytes(row[0]) if row else None

    def set_aside(self, inspection_id: str, reason: str) -> str | None:
        """Move an accepted job that gets no result (its inspection failed, it was given up) from the journal to
        refused/<day>/<id>.<ext>, its bytes as they came, with <id>.json saying where from and why: deleted from the
        journal, such a part's image was lost (a watched folder's file was moved to done/ or deleted). Returns the
        image's path under the store, None when the id is not journaled; an OSError leaves it journaled."""
        with self._lock:
            row = self._db.execute("SELECT job, image, accepted_at FROM pending WHERE inspection_id = ?", (inspection_id,)).fetchone()
        if row is None:
            return None
        meta, image = _object(row[0]) or {}, bytes(row[1])
        meta["timestamp"] = meta.get("timestamp") or row[2]  # a job journaled before jobs carried their time: its arrival
        day = str(meta["timestamp"])[:10] or "undated"
        suffix = next((ext for magic, ext in _SUFFIXES.items() if image.startswith(magic)), ".bin")
        path = self.root / REFUSED_DIR / safe_name(day) / f"{safe_name(inspection_id)}{suffix}"
        make_folder(path.parent)
        why = {"inspection_id": inspection_id, **meta, "reason": reason, "set_aside_at": utc_now(), "file": str(path.relative_to(self.root))}
        replace_files({path: image, path.with_suffix(".json"): json.dumps(why, ensure_ascii=False, indent=1).encode()})
        # on the disk before the journal lets go of it: the only copy of what its sender handed over (a power cut left
        # an empty file, or none, and no journal row)
        for f in (path, path.with_suffix(".json"), path.parent):
            synced(f)
        self.drop_pending(inspection_id)
        return why["file"]

    def set_aside_of(self, inspection_id: str) -> dict[str, Any] | None:
        """What `set_aside` kept of `inspection_id` (its JSON: why, and `file`), None if it set nothing aside of it."""
        for path in sorted((self.root / REFUSED_DIR).glob(f"*/{safe_name(inspection_id)}.json")):
            try:
                why = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(why, dict) and why.get("inspection_id") == inspection_id:
                return why
        return None

    def _refused_days(self, start: str, end: str) -> list[Path]:
        try:
            return sorted(d for d in (self.root / REFUSED_DIR).iterdir() if start[:10] <= d.name <= end[:10] and d.is_dir())
        except OSError:
            return []

    def refused(self, start: str | None, end: str | None, limit: int = 50, station: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Inputs set aside (`set_aside`) whose part time is in [start, end) (UTC, the stored form; None: open): how
        many, and the first `limit` of them in time order, each as its JSON says (with `file`, its image under the store).
        `station`: only its own (and those kept before entries named their station)."""
        start, end = start or "", end or "~"  # "~" sorts after every time
        found = []
        for day in self._refused_days(start, end):
            for path in day.glob("*.json"):
                try:
                    why = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                when = _utc(why.get("timestamp")) if isinstance(why, dict) else None
                if isinstance(when, str) and start <= when < end and _of_station(why, station):
                    found.append({**why, "timestamp": when})
        found.sort(key=lambda w: w["timestamp"])
        return len(found), found[:limit]

    def note_refusal(self, entry: dict[str, Any]) -> None:
        """Keep an input refused on arrival (never accepted, so no image of it is kept; its sender was answered on the
        error topic) as one line of refused/<day>/on-arrival.jsonl, filed by its `timestamp` (the stored form), so
        that a shift report counts it. An OSError is the caller's."""
        path = self.root / REFUSED_DIR / safe_name(str(entry["timestamp"])[:10]) / ARRIVALS_FILE
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        with self._append_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            # never through a link: one planted there (by whoever else may write in data_dir) took the lines elsewhere
            with os.fdopen(os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666), "ab") as f:
                end = os.fstat(f.fileno()).st_size
                if end and os.pread(f.fileno(), 1, end - 1) != b"\n":  # a line cut short (a full disk, a crash): this one
                    line = b"\n" + line  # was joined to it, and neither was counted
                # not synced (set_aside's files are): never accepted, its sender was answered at once and still holds it,
                # and an fsync a line (2 ms, tens on an SD card) slowed the refusals of a flood on the MQTT client's thread
                f.write(line)

    def refused_on_arrival(self, start: str | None, end: str | None, limit: int = 50,
                           station: str | None = None) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Inputs refused on arrival (`note_refusal`) whose time is in [start, end) (as `refused`): how many of each
        `kind` (most first), and the first `limit` of them in time order. A line cut short (a crash mid-write) is skipped."""
        start, end = start or "", end or "~"
        kinds: Counter[str] = Counter()

        def entries() -> Iterator[dict[str, Any]]:  # line by line: a shift of 500,000 refusals held 0.7 GB as a list
            for day in self._refused_days(start, end):
                try:
                    f = (day / ARRIVALS_FILE).open(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                with f:
                    for line in f:
                        try:
                            entry = json.loads(line)
                        except ValueError:
                            continue
                        when = _utc(entry.get("timestamp")) if isinstance(entry, dict) else None
                        if isinstance(when, str) and start <= when < end and _of_station(entry, station):
                            kinds[str(entry.get("kind") or "invalid")] += 1
                            yield {**entry, "timestamp": when}

        first = heapq.nsmallest(limit, entries(), key=lambda e: e["timestamp"])
        return dict(kinds.most_common()), first

    def unjudged(self, start: str | None, end: str | None, station: str | None = None) -> dict[str, dict[str, Any]]:
        """A shift report's meta for the inputs of [start, end) in no record: those accepted but never inspected
        (`refused`) and those refused on arrival (`refused_on_arrival`); `station`: its own only (a renamed station's
        store holds two)."""
        count, items = self.refused(start, end, station=station)
        kinds, first = self.refused_on_arrival(start, end, station=station)
        return {"not_inspected": {"count": count, "items": items},
                "refused_on_arrival": {"count": sum(kinds.values()), "kinds": kinds, "items": first}}

    def count_attempts(self, inspection_ids: list[str]) -> None:
        """Count a recovery attempt of each, so a job that crashes the process every time can be given up."""
        with self._tx():
            self._db.executemany("UPDATE pending SET attempts = attempts + 1 WHERE inspection_id = ?", [(i,) for i in inspection_ids])

    def uncount_attempts(self, inspection_ids: list[str]) -> None:
        """Take back the recovery attempts of jobs whose batch ran but whose results the store refused: no crash."""
        with self._tx():
            self._db.executemany("UPDATE pending SET attempts = MAX(attempts - 1, 0) WHERE inspection_id = ?", [(i,) for i in inspection_ids])

    def drop_pending(self, inspection_id: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM pending WHERE inspection_id = ?", (inspection_id,))

    def counts(self, records: bool = True) -> dict[str, int]:
        """Row counts for health: unpublished records, pending jobs and all records (counted once, then kept)."""
        with self._lock:
            q = self._db.execute
            out = {"unpublished": q("SELECT COUNT(*) FROM inspections WHERE published_at IS NULL").fetchone()[0],
                   "pending": q("SELECT COUNT(*) FROM pending").fetchone()[0]}
            if records:
                if self._records is None:
                    self._records = q("SELECT COUNT(*) FROM inspections").fetchone()[0]
                out["records"] = self._records
            return out

    def prune(self, max_age_days: float | None = None, max_rows: int | None = None, limit: int = 1000,
              now: datetime | None = None) -> int:
        """Retention: delete up to `limit` published records older than max_age_days (at `now`, by default the wall
        clock) / beyond the newest max_rows, with their files, in one short transaction; call again until it returns 0.
        (All at once, a million rows took 51 s and 0.9 GB, and the daemon stored nothing meanwhile.)"""
        doomed: list[tuple[str, str]] = []
        with self._lock:
            if max_age_days is not None:
                cutoff = iso_utc((now or datetime.now(timezone.utc)) - timedelta(days=max_age_days))  # the stored form: compared as text
                doomed += self._db.execute("SELECT inspection_id, record FROM inspections WHERE ts < ? AND published_at IS NOT NULL"
                                           " ORDER BY ts LIMIT ?", (cutoff, limit)).fetchall()
            if max_rows is not None:
                if self._rows_cutoff is None:  # once a pass: OFFSET walks max_rows index entries (0.3 s per million)
                    row = self._db.execute("SELECT ts, inspection_id FROM inspections WHERE published_at IS NOT NULL"
                                           " ORDER BY ts DESC, inspection_id DESC LIMIT 1 OFFSET ?", (max_rows,)).fetchone()
                    self._rows_cutoff = tuple(row) if row else ("", "")
                doomed += self._db.execute(
                    "SELECT inspection_id, record FROM inspections WHERE published_at IS NOT NULL AND (ts, inspection_id) <= (?, ?)"
                    " ORDER BY ts LIMIT ?", (*self._rows_cutoff, limit)).fetchall()
        ids = sorted({i for i, _ in doomed})
        if not ids:  # the pass is over: the next one finds its own cutoff and recounts
            self._rows_cutoff, self._records = None, None
        days: set[Path] = set()
        for _, rec in doomed:
            for rel in ((_object(rec) or {}).get("images") or {}).values():  # edited by hand (see _row): its files stay
                if (p := inside_store(rel, self.root)) is not None:
                    p.unlink(missing_ok=True)  # a link itself, never what it points at
                    days.add(p.parent)
        for day in days - {self.root}:  # emptied day folders go too: a year left 275 empty ones beside the 90 kept
            try:
                day.rmdir()  # only if empty
            except OSError:
                pass
        with self._tx():
            deleted = self._db.executemany("DELETE FROM inspections WHERE inspection_id = ?", [(i,) for i in ids]).rowcount
            if self._records is not None:
                self._records -= deleted
        return len(ids)

    def close(self) -> None:
        try:
            with self._lock:
                self._db.close()
        finally:
            self._syncer.shutdown()
            if self._held is not None:
                os.close(self._held)
                self._held = None


def _of_station(entry: dict[str, Any], station: str | None) -> bool:
    """Whether a refusal entry counts for `station` (None: any); one kept before entries named their station counts for all."""
    return station is None or entry.get("station") in (None, station)
