"""`inspector review`: a QA engineer's verdict on stored results, beside the machine's.

  inspector review --db STORE ID [ID ...] --truth good                 a FAIL that was a good part: a false alarm
  inspector review --db STORE ID --truth defect --type crack --by "A. Li" --note "edge, 2 mm"
  inspector review --config STATION.yaml ID --truth defect              a PASS that was defective: an escape
  inspector review --db STORE --serial SN-1042 --truth good             by the part's serial: its last inspection

  inspector review --db STORE --export DIR [--from T1] [--to T2]     the reviewed parts' images, to fit with

Each review is kept in the record (`reviews`, the last one standing, earlier ones as its history); what the
machine said is not changed. A part reviewed before is said so, with the review the new one replaces (who, when,
what). Shift and inspection reports show them: false alarms, escapes and confirmed verdicts. Every id is checked
before any is written.

--export copies the stored image of each reviewed part into DIR/good/ or DIR/<defect type>/ (the review's type,
else the one the model named; one folder whatever its case, spelt as first met), the layout `inspector fit --labels`
reads; its good/ images can join a training set's train/good. Parts without a stored image (store.save_images) or
a defect type are counted, not copied.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any

from inspector.commands.common import open_store, path_of, print_json
from inspector.review import ids_of_serials, replaced, review_parts
from model.errors import InspectorError, RetryLater, user_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="record a QA review (good or defect) of stored results", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="*", metavar="ID", help="inspection ids of stored results (with --serial: part serials)")
    p.add_argument("--serial", action="store_true", help="the IDs are part serials: each one's last inspection is reviewed")
    p.add_argument("--db", metavar="STORE", help="the store's data directory (holding inspections.sqlite); or give --config")
    p.add_argument("--config", metavar="STATION.yaml", type=path_of("station config"), help="a station config: its store")
    p.add_argument("--truth", choices=("good", "defect"), help="what the part really is")
    p.add_argument("--type", dest="defect_type", help="with --truth defect: the defect's type, e.g. crack")
    p.add_argument("--by", help="who reviewed it (default: this user's login name)")
    p.add_argument("--note", help="a remark kept with the review")
    p.add_argument("--export", metavar="DIR", help="copy the reviewed parts' images into DIR/good/ and DIR/<type>/ (a new or empty folder)")
    p.add_argument("--from", dest="start", metavar="T1", help="with --export: parts inspected from this time (ISO 8601; without an offset, this machine's zone)")
    p.add_argument("--to", dest="end", metavar="T2", help="with --export: parts inspected before this time")
    p.add_argument("--json", action="store_true", help="print the reviews (or what --export copied) as JSON")
    p.set_defaults(func=run)


def _store_of(args: argparse.Namespace) -> str:
    if args.config:
        from inspector.config import load_config

        data_dir = load_config(args.config).store.data_dir  # read even beside --db, as report does: a wrong one was passed over
        return args.db or data_dir
    if args.db:
        return args.db
    raise InspectorError("no store given: give --db STORE (the data directory) or --config STATION.yaml")


def _owner(path: Path) -> str:
    """Who owns `path` (the station's user, who may write its store), as a fix can name them."""
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return "the user that owns it"


def _read_only(root: Path, what: str, owner: str) -> str:
    from inspector.store import read_only_fs

    if read_only_fs(root):
        return (f"store {root}: cannot be written (its file system is mounted read-only); run review where the store can be written, "
                "e.g. on the station")
    return (f"store {root}: cannot be written (read-only to this user, {user_name()}: {what}); run review as the station's user "
            f"({owner}), or give {user_name()} write access to them")


def check_writable(db: str | Path) -> None:
    """Refuse, before anything is read, a store this user cannot write: SQLite opens it read-only without a word, and
    the first review failed with a traceback (`attempt to write a readonly database`). The folder counts only when
    SQLite must create its -wal or -shm file there (they are there while the station runs)."""
    from inspector.store import DB_NAME, db_files

    root = Path(db)
    root = root.parent if root.name == DB_NAME else root
    database, wal, shm = db_files(root)
    try:
        if not database.is_file():
            return  # open_store says so
        files = [f for f in (database, wal, shm) if f.exists()]
        if len(files) < 3:
            files.insert(0, root)
        locked = [f for f in files if not os.access(f, os.W_OK)]
    except OSError:
        return  # a folder this user cannot enter: open_store names it
    if locked:
        raise InspectorError(_read_only(root, ", ".join("its folder" if f == root else f.name for f in locked), _owner(database)) +
                             " (nothing was written)")


def not_written(root: Path, exc: sqlite3.DatabaseError, done: list[dict[str, Any]]) -> InspectorError:
    """One line for a review SQLite would not write, saying which ones were kept before it."""
    from inspector.store import DB_NAME

    kept = f" (the first {len(done)} were written: {', '.join(r['inspection_id'] for r in done[:5])}{' ...' if len(done) > 5 else ''})" \
        if done else " (nothing was written)"
    if isinstance(exc, InspectorError):  # the store said it in one line already (a damaged database)
        return type(exc)(f"{exc}{kept}")
    text = str(exc)
    if any(t in text for t in ("readonly", "read-only", "unable to open")):
        return InspectorError(_read_only(root, DB_NAME, _owner(root / DB_NAME)) + kept)
    if "full" in text:
        return RetryLater(f"store {root}: cannot be written (the disk holding it is full); free space, then review again" + kept)
    if "locked" in text or "busy" in text:
        return RetryLater(f"store {root}: cannot be written (another program held it locked for 30 s); review again" + kept)
    return InspectorError(f"store {root}: cannot be written ({text}); check its disk, or restore it from a backup" + kept)


def run(args: argparse.Namespace) -> int:
    if args.export is not None and args.export.strip():
        from model.folders import output_lock

        # two at once into one new folder each found it empty and copied into it, mixed; one cut short took back the other's
        with output_lock(Path(args.export), "review --export", busy=f"--export {args.export}: another `inspector review --export` "
                                                                   "is copying into it; wait for it to finish, or give another folder"):
            return _export(args)
    if args.export is not None:
        return _export(args)
    if args.start or args.end:
        raise InspectorError("--from and --to choose the parts --export copies; give --export DIR, or leave them out")
    if args.serial and not args.ids:
        raise InspectorError("--serial: give the parts' serials, e.g. inspector review --db STORE --serial SN-1042 --truth good")
    if not args.ids or args.truth is None:
        raise InspectorError("give the inspection ids and --truth good|defect, or --export DIR")
    db = _store_of(args)
    check_writable(db)
    open_store(db).close()  # read first: a file that holds no store (an empty copy) was made into an empty one, and every id "not in store"
    store = open_store(db, readonly=False)
    done: list[dict[str, Any]] = []
    try:
        ids = ids_of_serials(store, args.ids) if args.serial else args.ids
        review_parts(store, ids, args.truth, args.defect_type, user_name() if args.by is None else args.by, args.note, done=done)
    except sqlite3.DatabaseError as exc:  # SQLite opens a store it may not write read-only, unsaid: the first write fails
        raise not_written(store.root, exc, done) from None
    finally:
        store.close()
    if args.json:
        print_json({"reviews": done})
        return 0
    for r in done:
        print(f"{r['inspection_id']}: {r['verdict']}, reviewed as {r['truth']}{' (' + r['type'] + ')' if r['type'] else ''}: "
              f"{r['outcome'].replace('_', ' ')}{replaced(r)}")
    return 0


def _reads_whole(path: Path) -> bool:
    from PIL import Image

    from model.pillow_policy import load_whole

    try:
        with Image.open(path) as im:
            load_whole(im)
        return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


NO_IMAGE = "no stored image (store.save_images)"


def _take_back(out: Path, written: list[Path], existed: bool) -> None:
    """Remove the files an export cut short copied, their folders, and `out` where that export made it."""
    for path in written:
        path.unlink(missing_ok=True)
    for folder in [*{p.parent for p in written}, *([] if existed else [out])]:
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            pass


def _local_zone() -> Any:
    """This machine's zone as `inspector report` reads it (by its IANA name): the C library's took one of the two
    02:30s of the night the clocks go back, or the 02:30 they skip, unsaid."""
    from reports import ReportError
    from reports.zones import zone

    try:
        return zone("local")
    except ReportError as exc:
        raise InspectorError(str(exc)) from None


def _export(args: argparse.Namespace) -> int:
    import contextlib
    import shutil
    from collections import Counter
    from pathlib import Path

    from inspector.commands.report import utc_period
    from model.label_names import RESERVED, type_words
    from reports.images import resolve
    from reports.names import safe_name
    from reports.records import inspection

    if args.ids or args.truth or args.defect_type or args.by or args.note or args.serial:
        raise InspectorError("--export copies what was reviewed: give it without ids, --serial, --truth, --type, --by or --note")
    if not args.export.strip():  # `--export "$DIR"` with DIR unset copied into the working folder when it was empty
        raise InspectorError("--export '': give the folder to copy the reviewed parts' images into")
    out = Path(args.export)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InspectorError(f"--export {out}: is not a new or empty folder; give one, so that no earlier export mixes in")
    if file := next((p for p in out.parents if p.exists() and not p.is_dir()), None):
        raise InspectorError(f"--export {out}: {file} is a file; give a folder path")
    start, end = utc_period(args.start, args.end, _local_zone() if args.start or args.end else None)
    store = open_store(_store_of(args))
    copied: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    spelled: dict[str, str] = {}  # each type's first spelling: "Crack" and "crack" were two classes to fit --labels
    existed, written = out.exists(), list[Path]()
    try:
        for record in store.iter_records(start, end, reviewed=True):
            part = inspection(record)
            if part.review is None:
                continue
            kind = "good" if part.review.truth == "good" else part.review.type or (part.defect_type if part.verdict == "FAIL" else None)
            if not kind or (kind != "good" and type_words(kind) in RESERVED):
                skipped["a defect without a type (review it with --type)"] += 1
                continue
            image = resolve(part.images["image"], store.root) if part.images.get("image") else None
            if image is None or not image.is_file():
                skipped[NO_IMAGE] += 1
                continue
            if not _reads_whole(image):  # copied unsaid, it stopped the `fit` it was exported for
                skipped[NO_IMAGE if not image.is_file() else "a stored image damaged since it was stored (it does not read whole)"] += 1
                continue
            # by the words read: "pitted_surface" and "pitted surface" were two folders, so two types to fit --labels
            # spaces as _, which fit reads as spaces: "pitted surface" was pitted_surface-68ca83d3/, a new type to fit --labels
            folder = out / ("good" if kind == "good" else safe_name("_".join(spelled.setdefault(type_words(kind), kind).split())))
            try:
                folder.mkdir(parents=True, exist_ok=True)
                written.append(folder / f"{safe_name(part.id)}{image.suffix}")
                shutil.copyfile(image, written[-1])
            except OSError as exc:
                if isinstance(exc, FileNotFoundError) and not image.is_file():
                    # removed since it was found, by the retention of the station serving this store: as never stored (it
                    # was 'cannot write good/ (No such file or directory)', and every image copied before it taken back)
                    written.pop()
                    skipped[NO_IMAGE] += 1
                    with contextlib.suppress(OSError):  # a type folder made for it alone, left empty
                        folder.rmdir()
                    continue
                raise InspectorError(f"--export {out}: cannot write {folder.name}/ ({exc.strerror}); choose a writable folder with room") from None
            copied[folder.name] += 1
    except BaseException:  # Ctrl-C or a full disk part-way: the part copied read as a whole export, and a new run refused
        _take_back(out, written, existed)  # the folder ('is not a new or empty folder'); it is taken back
        raise
    finally:
        store.close()
    summary = {"export": str(out), "copied": dict(sorted(copied.items())), "skipped": dict(skipped)}
    if args.json:
        print_json(summary)
        return 0
    if copied:
        print(f"copied {sum(copied.values())} reviewed part image(s) into {out}: " + ", ".join(f"{k} {n}" for k, n in sorted(copied.items())))
    else:
        print(f"no reviewed part image to copy into {out}" + ("" if out.exists() else " (not made)"))
    for why, n in skipped.items():
        print(f"skipped {n}: {why}")
    return 0
