"""`inspector review`: a QA engineer's verdict on stored results, beside the machine's.

  inspector review --db STORE ID [ID ...] --truth good                 a FAIL that was a good part: a false alarm
  inspector review --db STORE ID --truth defect --type crack --by "A. Li" --note "edge, 2 mm"
  inspector review --config STATION.yaml ID --truth defect              a PASS that was defective: an escape

Each review is kept in the record (`reviews`, the last one standing, earlier ones as its history); what the
machine said is not changed. Shift and inspection reports show them: false alarms, escapes and confirmed
verdicts. Every id is checked before any is written.
"""

from __future__ import annotations

import argparse
from typing import Any

from inspector.commands.common import open_store, print_json
from inspector.result import utc_now
from model.errors import InspectorError, user_name

OUTCOMES = {("FAIL", "good"): "false_alarm", ("PASS", "defect"): "escape", ("FAIL", "defect"): "confirmed", ("PASS", "good"): "confirmed"}
MAX_TEXT = 500  # characters of --by and --note kept in a record


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="record a QA review (good or defect) of stored results", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="+", metavar="ID", help="inspection ids of stored results")
    p.add_argument("--db", metavar="STORE", help="the store's data directory (holding inspections.sqlite); or give --config")
    p.add_argument("--config", metavar="STATION.yaml", help="a station config: its store")
    p.add_argument("--truth", required=True, choices=("good", "defect"), help="what the part really is")
    p.add_argument("--type", dest="defect_type", help="with --truth defect: the defect's type, e.g. crack")
    p.add_argument("--by", help="who reviewed it (default: this user's login name)")
    p.add_argument("--note", help="a remark kept with the review")
    p.add_argument("--json", action="store_true", help="print the reviews as JSON")
    p.set_defaults(func=run)


def _text(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split())
    if not text:
        raise InspectorError(f"{option} is empty; give a value or leave {option} out")
    if len(text) > MAX_TEXT:
        raise InspectorError(f"{option} is {len(text)} characters long; keep it to {MAX_TEXT}")
    return text


def run(args: argparse.Namespace) -> int:
    if args.defect_type is not None and args.truth != "defect":
        raise InspectorError("--type names a defect's type: give it with --truth defect, or leave it out")
    defect_type, by, note = _text(args.defect_type, "--type"), _text(args.by, "--by") or user_name(), _text(args.note, "--note")
    if args.config:
        from inspector.config import load_config

        db = args.db or load_config(args.config).store.data_dir
    elif args.db:
        db = args.db
    else:
        raise InspectorError("no store given: give --db STORE (the data directory) or --config STATION.yaml")
    store = open_store(db, readonly=False)
    try:
        ids = list(dict.fromkeys(args.ids))
        records = {i: store.get(i) for i in ids}
        missing = [i for i, r in records.items() if r is None]
        if missing:
            raise InspectorError(f"inspection {missing[0]!r}: not in store {store.root}; give the inspection_id of a stored result (nothing was written)")
        done: list[dict[str, Any]] = []
        for ident, record in records.items():
            verdict = str(record.get("verdict", "")).upper()
            review = {"truth": args.truth, "type": defect_type, "by": by, "note": note, "at": utc_now(), "verdict": verdict,
                      "outcome": OUTCOMES.get((verdict, args.truth), "reviewed")}
            store.add_review(ident, review)
            done.append({"inspection_id": ident, **review})
    finally:
        store.close()
    if args.json:
        print_json({"reviews": done})
        return 0
    for r in done:
        print(f"{r['inspection_id']}: {r['verdict']}, reviewed as {r['truth']}{' (' + r['type'] + ')' if r['type'] else ''}: "
              f"{r['outcome'].replace('_', ' ')}")
    return 0
