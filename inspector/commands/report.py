"""`inspector report`: QA reports from the result store, as self-contained HTML and PDF.

  inspector report --db STORE --from T1 [--to T2] --out DIR        a shift / lot report (and the worst parts' pages)
  inspector report --db STORE --inspection ID [ID ...] --out DIR   one report per inspection
  inspector report --config STATION.yaml --from T1 --out DIR       that station's store and report settings

Times are ISO 8601 (2026-11-26T06:00, 2026-11-26, ...); without an offset they are on the --tz clock (default:
this machine's zone), and the reports show every time on that clock, its zone named (records keep UTC).
With --config, the station's store, name and `reports` settings (language, formats, zone, letterhead) are the
defaults; an option given here wins.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

from inspector.commands.common import add_letterhead_args, name_list, open_store, path_of, print_json
from inspector.result import iso_utc, parse_utc
from model.errors import InspectorError, not_utf8


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render inspection or shift reports (HTML, PDF) from the result store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", metavar="STORE", help="the store's data directory (holding inspections.sqlite); or give --config")
    p.add_argument("--config", metavar="STATION.yaml", type=path_of("station config"), help="a station config: its store, station name and report settings")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--from", dest="start", metavar="T1", help="shift report from this time (inclusive)")
    # extend: `--inspection A --inspection B` kept B alone, and said nothing of A
    what.add_argument("--inspection", nargs="+", action="extend", metavar="ID", help="inspection report(s) for these inspection ids")
    p.add_argument("--to", dest="end", metavar="T2", help="shift report up to this time (exclusive; default now)")
    p.add_argument("--station", help="only this station's inspections (shift report)")
    p.add_argument("--lang", help="report language: en, zh or es (default en)")
    p.add_argument("--tz", metavar="ZONE",
                   help="time zone of the reports' times and of --from/--to without an offset: an IANA name such as "
                        "Europe/Berlin, UTC, or local (default: this machine's zone)")
    p.add_argument("--format", help="html, pdf or html,pdf (default)")
    p.add_argument("--out", required=True, metavar="DIR", type=path_of("folder"), help="folder to write the reports into (created if missing)")
    p.add_argument("--worst", type=int, default=12, metavar="N", help="thumbnails of the N worst parts on a shift report (default 12)")
    p.add_argument("--title", help="shift report title (default 'Shift report' in the chosen language)")
    p.add_argument("--lot", help="lot / batch number to print on the shift report")
    add_letterhead_args(p)
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    p.set_defaults(func=run)


def utc_time(text: str, option: str, z: tzinfo | None = None) -> str:
    """An ISO 8601 time (on the zone's clock if it has no offset; None: this machine's) as the store's UTC form,
    2026-11-26T06:00:00.000Z."""
    from reports.records import parse_time
    from reports.zones import LocalTimeError, iso_datetime, on_calendar, toward_calendar, zone_label

    try:
        stamp = parse_utc(text, z)
    except LocalTimeError as exc:
        raise InspectorError(f"{option} {text!r}: {exc}") from None
    except ValueError:
        try:
            year = iso_datetime(text).year
        except ValueError:
            raise InspectorError(f"{option} {text!r}: not a time; use ISO 8601, e.g. 2026-11-26T06:00 or 2026-11-26T06:00Z") from None
        # 9999-12-31T23:59 in New York is in the year 10000 in UTC, which the store's times are in
        raise InspectorError(f"{option} {text!r}: outside the calendar (years 1 to 9999) in UTC; give {toward_calendar(year)} time") from None
    if not on_calendar(t := parse_time(stamp), z):  # 9999-12-31T23:59Z is in the year 10000 on Tokyo's clock, which the report shows
        raise InspectorError(f"{option} {text!r}: outside the calendar (years 1 to 9999) on the {zone_label(z)} clock the report "
                             f"shows; give {toward_calendar(t.year)} time")
    return stamp


def utc_period(start: str | None, end: str | None, z: tzinfo | None = None, until_now: bool = False) -> tuple[str | None, str | None]:
    """--from and --to as utc_time's form (either may be absent; `until_now`: no --to is now), refused when empty."""
    t0 = utc_time(start, "--from", z) if start is not None else None  # "" (a script's unset $START) is no time, not "ever"
    t1 = utc_time(end, "--to", z) if end is not None else iso_utc(datetime.now(timezone.utc)) if until_now else None
    if t0 and t1 and t1 <= t0:
        raise InspectorError(f"--from {start} .. --to {end or f'now ({t1})'}: the period is empty; --to must be later than --from")
    return t0, t1


@dataclass
class Settings:
    """What the reports are rendered with: the options given, else the station config's, else the defaults."""

    db: str
    station: str | None
    line: str | None  # the station's production line (config station.line, "for reports"), printed on the shift report
    lang: str
    tz: str
    formats: tuple[str, ...]
    letterhead: Any


def settings(args: argparse.Namespace) -> Settings:
    from reports import ReportError
    from reports.letterhead import letterhead

    rc = station = line = None
    if args.config:
        from inspector.config import load_config

        cfg = load_config(args.config)
        rc, station, line = cfg.reports, cfg.station.name, cfg.station.line
        db = args.db or cfg.store.data_dir
    elif args.db:
        db = args.db
    else:
        raise InspectorError("no store given: give --db STORE (the data directory) or --config STATION.yaml")

    def pick(option: Any, key: str, default: Any) -> Any:
        """The option given, else what the config writes (not its defaults, which are the daemon's), else ours."""
        return option if option is not None else getattr(rc, key) if rc is not None and key in rc.model_fields_set else default

    if rc is not None and args.organisation is None and args.document is None and args.logo is None:
        head = rc.letterhead  # read and checked with the config
    else:
        try:
            head = letterhead(pick(args.organisation, "organisation", None), pick(args.document, "document", None), pick(args.logo, "logo", None))
        except ReportError as exc:
            raise InspectorError(str(exc)) from None
    formats = name_list(args.format) if args.format is not None else pick(None, "formats", ["html", "pdf"])
    # the config's line is its station's: not printed over another station's parts
    return Settings(str(db), args.station if args.station is not None else station, line if args.station in (None, station) else None,
                    pick(args.lang, "lang", "en"),
                    pick(args.tz, "timezone", "local"), tuple(formats), head)


def run(args: argparse.Namespace) -> int:
    import reports
    from reports.records import inspection
    from reports.zones import zone

    if args.worst < 0:
        raise InspectorError(f"--worst {args.worst}: give a number of parts, 0 or more")
    if args.end and not args.start:
        raise InspectorError("--to needs --from (a shift report covers --from .. --to)")
    for option, text in (("--title", args.title), ("--lot", args.lot)):
        if text is not None and (said := not_utf8(option, text)):  # a report file holds UTF-8: a traceback at its writing
            raise InspectorError(said)
    opts = settings(args)
    try:
        z = zone(opts.tz)
    except reports.ReportError as exc:
        raise InspectorError(f"--tz: {exc}") from None
    store = open_store(opts.db)
    style = {"formats": opts.formats, "lang": opts.lang, "store_root": store.root, "tz": opts.tz, "letterhead": opts.letterhead}
    try:
        if args.inspection:
            records = []
            for iid in dict.fromkeys(args.inspection):  # an id given twice is one report, written once
                record = store.get(iid)
                if record is None:
                    raise InspectorError(f"inspection {iid!r}: not in store {opts.db}; give the inspection_id of a stored result")
                records.append(record)
            written = [reports.render_inspection(r, args.out, **style) for r in records]
            summary = {"inspections": [r["inspection_id"] for r in records]}
        else:
            start, end = utc_period(args.start, args.end, z, until_now=True)
            parts = [inspection(r) for r in store.iter_records(start, end, station=opts.station)]  # each record decoded, then let go
            if not parts and args.station:
                _check_station(store, args.station, opts.db)
            unjudged = store.unjudged(start, end, opts.station)
            meta = {"start": start, "end": end, "station": opts.station, "line": opts.line, "worst_n": args.worst, "title": args.title, "lot": args.lot,
                    **unjudged}
            written = [reports.render_shift(parts, meta, args.out, **style)]
            fails = sum(p.verdict == "FAIL" for p in parts)  # as the report counts them ("fail" too)
            summary = {"start": start, "end": end, "inspections": len(parts), "fail": fails,
                       **{k: v["count"] for k, v in unjudged.items()}}
    except reports.ReportError as exc:
        raise InspectorError(str(exc)) from None
    finally:
        store.close()
    paths = [{k: str(v) for k, v in w.items()} for w in written]
    if args.json:
        print_json({**summary, "reports": paths})
        return 0
    if "start" in summary:
        skipped = f"; {summary['not_inspected']} input(s) accepted but not inspected" if summary["not_inspected"] else ""
        skipped += f"; {summary['refused_on_arrival']} refused on arrival" if summary["refused_on_arrival"] else ""
        print(f"{summary['inspections']} inspections ({summary['fail']} FAIL) from {_in_zone(summary['start'], z)} to "
              f"{_in_zone(summary['end'], z)}{skipped}")
    for w in paths:
        for path in w.values():
            print(path)
    return 0


def _check_station(store: Any, station: str, db: str) -> None:
    """A --station that judged no part in the store at all: a typo gave an empty report to sign ("No inspections were
    recorded in this period") for a shift of hundreds of parts."""
    if store.records(station=station, limit=1):
        return
    latest = store.latest_station()
    if latest is not None:
        raise InspectorError(f"--station {station!r}: no part in store {db} was judged by that station; give the station's name as "
                             f"its config has it (station.name), e.g. {latest!r}, which judged its latest part, or leave --station out")


def _in_zone(stamp: str, z) -> str:
    """A UTC record time as the report's zone reads it, with the UTC one beside it: --tz Europe/Berlin --from 06:00
    was echoed as 05:00:00.000Z, and the file is named by the UTC time."""
    from datetime import datetime, timezone

    from reports.zones import zone_label

    if z is timezone.utc:
        return stamp
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    local = at.astimezone(z)
    return f"{local.year:04d}{local:-%m-%d %H:%M:%S} {zone_label(z, at)} ({stamp})"  # %Y wrote year 1 as "1"
