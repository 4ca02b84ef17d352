"""`inspector review`: a QA engineer's verdict on stored results, beside the machine's.

  inspector review --db STORE ID [ID ...] --truth good                 a FAIL that was a good part: a false alarm
  inspector review --db STORE ID --truth defect --type crack --by "A. Li" --note "edge, 2 mm"
  inspector review --config STATION.yaml ID --truth defect              a PASS that was defective: an escape
  inspector review --db STORE --serial SN-1042 --truth good             by the part's serial: its last inspection

  inspector review --db STORE --export DIR [--from T1] [--to T2]     the reviewed parts' images, to fit with

Each review is kept in the record (`reviews`, the last one standing, earlier ones as its history); what the
machine said is not changed. Shift and inspection reports show them: false alarms, escapes and confirmed
verdicts. Every id is checked before any is written.

--export copies the stored image of each reviewed part into DIR/good/ or DIR/<defect type>/ (the review's type,
else the one the model named; one folder whatever its case, spelt as first met), the layout `inspector fit --labels`
reads; its good/ images can join a training set's train/good. Parts without a stored image (store.save_images) or
a defect type are counted, not copied.
"""

from __future__ import annotations

import argparse

from inspector.commands.common import open_store, print_json
from inspector.review import NOT_TYPES, ids_of_serials, review_parts
from model.errors import InspectorError, user_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="record a QA review (good or defect) of stored results", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="*", metavar="ID", help="inspection ids of stored results (with --serial: part serials)")
    p.add_argument("--serial", action="store_true", help="the IDs are part serials: each one's last inspection is reviewed")
    p.add_argument("--db", metavar="STORE", help="the store's data directory (holding inspections.sqlite); or give --config")
    p.add_argument("--config", metavar="STATION.yaml", help="a station config: its store")
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

        return args.db or load_config(args.config).store.data_dir
    if args.db:
        return args.db
    raise InspectorError("no store given: give --db STORE (the data directory) or --config STATION.yaml")


def run(args: argparse.Namespace) -> int:
    if args.export is not None:
        return _export(args)
    if args.start or args.end:
        raise InspectorError("--from and --to choose the parts --export copies; give --export DIR, or leave them out")
    if args.serial and not args.ids:
        raise InspectorError("--serial: give the parts' serials, e.g. inspector review --db STORE --serial SN-1042 --truth good")
    if not args.ids or args.truth is None:
        raise InspectorError("give the inspection ids and --truth good|defect, or --export DIR")
    store = open_store(_store_of(args), readonly=False)
    try:
        ids = ids_of_serials(store, args.ids) if args.serial else args.ids
        done = review_parts(store, ids, args.truth, args.defect_type, user_name() if args.by is None else args.by, args.note)
    finally:
        store.close()
    if args.json:
        print_json({"reviews": done})
        return 0
    for r in done:
        print(f"{r['inspection_id']}: {r['verdict']}, reviewed as {r['truth']}{' (' + r['type'] + ')' if r['type'] else ''}: "
              f"{r['outcome'].replace('_', ' ')}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import shutil
    from collections import Counter
    from pathlib import Path

    from inspector.commands.report import utc_period
    from reports.images import resolve
    from reports.names import safe_name
    from reports.records import inspection

    if args.ids or args.truth or args.defect_type or args.by or args.note or args.serial:
        raise InspectorError("--export copies what was reviewed: give it without ids, --serial, --truth, --type, --by or --note")
    out = Path(args.export)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InspectorError(f"--export {out}: is not a new or empty folder; give one, so that no earlier export mixes in")
    if file := next((p for p in out.parents if p.exists() and not p.is_dir()), None):
        raise InspectorError(f"--export {out}: {file} is a file; give a folder path")
    start, end = utc_period(args.start, args.end)
    store = open_store(_store_of(args))
    copied: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    spelled: dict[str, str] = {}  # each type's first spelling: "Crack" and "crack" were two classes to fit --labels
    try:
        for record in store.iter_records(start, end):
            part = inspection(record)
            if part.review is None:
                continue
            kind = "good" if part.review.truth == "good" else part.review.type or (part.defect_type if part.verdict == "FAIL" else None)
            if not kind or (kind != "good" and kind.lower() in NOT_TYPES):
                skipped["a defect without a type (review it with --type)"] += 1
                continue
            image = resolve(part.images["image"], store.root) if part.images.get("image") else None
            if image is None or not image.is_file():
                skipped["no stored image (store.save_images)"] += 1
                continue
            folder = out / ("good" if kind == "good" else safe_name(spelled.setdefault(kind.lower(), kind)))
            try:
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(image, folder / f"{safe_name(part.id)}{image.suffix}")
            except OSError as exc:
                raise InspectorError(f"--export {out}: cannot write {folder.name}/ ({exc.strerror}); choose a writable folder with room") from None
            copied[folder.name] += 1
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
