"""Report periods at the calendar's edges and on clocks east of UTC, and what else a signer found wrong in shift and inspection reports."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import reports
from inspector.cli import main
from inspector.store import Store
from reports.records import inspection, shift_stats
from reports.sample import make_records
from tests.cli import assert_one_line_error, cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of 12 inspections at station line1-station3, 06:00-07:00 UTC on 2026-11-26 (no image files)."""
    root = tmp_path_factory.mktemp("periods_store")
    s = Store(root)
    for r in make_records(12, hours=1.0, seed=5):
        s.add(r)
    s.close()
    return root


@pytest.mark.parametrize("tz, end", [("Asia/Tokyo", "9999-12-31T14:59Z"), ("Pacific/Kiritimati", "9999-12-30T10:00Z")])
def test_a_period_to_the_calendars_end_on_a_clock_east_of_utc(tz, end, tmp_path):
    """--to 9999-12-31 in Tokyo ended in a traceback (OverflowError): the p-chart's last bin, held at the calendar's last
    instant in UTC, is in the year 10000 on Tokyo's clock."""
    records = make_records(10, hours=1.0)
    paths = reports.render_shift(records, {"start": "2026-11-26T00:00Z", "end": end}, tmp_path, formats="html", tz=tz)
    assert paths["html"].is_file()


@pytest.mark.parametrize("tz, start, end", [("Asia/Tokyo", "0001-01-01T01:00Z", "0001-01-01T05:00Z"),
                                            ("Asia/Tokyo", "0001-01-01T01:00Z", "0001-01-03T05:00Z")])
def test_a_period_from_the_calendars_first_day_east_of_utc(tz, start, end):
    """The plant's midnight before 0001-01-01T01:00Z in Tokyo is before the calendar's first instant in UTC: a traceback,
    or a p-chart of no bins at all."""
    t0, t1 = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end))
    part = inspection({"inspection_id": "a", "timestamp": "0001-01-01T02:00:00.000Z", "verdict": "FAIL", "score": 5.0, "threshold": 4.0})
    from zoneinfo import ZoneInfo
    s = shift_stats([part], t0, t1, zone=ZoneInfo(tz), now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert s.subgroups and sum(g.n for g in s.subgroups) == 1 and s.subgroups[0].start <= t0


@pytest.mark.parametrize("start, end, tz", [("2026-11-26T00:00Z", "9999-12-31T23:59Z", "Asia/Tokyo"),
                                            ("0001-01-01T00:00Z", "2026-11-27T00:00Z", "America/New_York")])
def test_a_period_the_reports_clock_cannot_show_is_refused_in_one_line(start, end, tz, tmp_path):
    """The API rendered a period whose end is in the year 10000 on the report's clock with a traceback."""
    with pytest.raises(reports.ReportError, match=r"outside the calendar \(years 1 to 9999\) on the .* clock the report shows"):
        reports.render_shift([], {"start": start, "end": end}, tmp_path, formats="html", tz=tz)


@pytest.mark.parametrize("argv, message", [
    (["--to", "9999-12-31T23:59Z", "--tz", "Asia/Tokyo"],
     "--to '9999-12-31T23:59Z': outside the calendar (years 1 to 9999) on the Asia/Tokyo clock the report shows; give an earlier time"),
    # an ISO 8601 time, which read 'not a time; use ISO 8601'
    (["--to", "9999-12-31T23:59", "--tz", "America/New_York"], "--to '9999-12-31T23:59': outside the calendar (years 1 to 9999) in UTC"),
    # which way is the time's, not the option's: a --from at the calendar's end was told to be later, a --to at its start earlier
    (["--from", "9999-12-31T20:00Z", "--tz", "Asia/Tokyo"], "clock the report shows; give an earlier time"),
    (["--to", "0001-01-01T01:00+05:00"], "--to '0001-01-01T01:00+05:00': outside the calendar (years 1 to 9999) in UTC; give a later time"),
])
def test_report_cli_names_a_time_beyond_the_calendar(store, tmp_path, capsys, argv, message):
    start = [] if "--from" in argv else ["--from", "2026-11-26"]
    rc = main(["report", "--db", str(store), *start, *argv, "--format", "html", "--out", str(tmp_path)])
    assert_one_line_error(rc, capsys.readouterr().err, message)


def test_report_cli_to_the_calendars_end_in_tokyo(store, tmp_path, capsys):
    assert main(["report", "--db", str(store), "--from", "2026-11-26", "--to", "9999-12-31T23:59", "--tz", "Asia/Tokyo",
                 "--format", "html", "--out", str(tmp_path), "--json"]) == 0
    assert '"inspections": 12' in capsys.readouterr().out


@pytest.mark.parametrize("lang, words", [("en", "This period had not begun when the report was made, at 2026-11-26 10:00:00 CET"),
                                         ("zh", "生成本报告时（2026-11-26 10:00:00 CET）该时段尚未开始"),
                                         ("es", "El periodo no había comenzado cuando se generó el informe, el 2026-11-26 10:00:00 CET")])
def test_a_shift_still_to_come_says_it_had_not_begun(lang, words, monkeypatch):
    """--from 2026-11-27T06:00 --to 14:00 asked for on the 26th (a cron job's wrong date) read 'No inspections were recorded
    in this period' alone, a report to sign for a shift no one had worked yet."""
    from reports import render

    made = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    s = shift_stats([], datetime(2026, 11, 27, 5, 0, tzinfo=timezone.utc), datetime(2026, 11, 27, 13, 0, tzinfo=timezone.utc), now=made)
    assert s.before == made and s.until is None

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return made.astimezone(tz)

    monkeypatch.setattr("reports.records.datetime", Clock)
    html = render.shift_html([], {"start": "2026-11-27T05:00Z", "end": "2026-11-27T13:00Z"}, lang=lang, tz="Europe/Berlin")
    assert 'id="period-not-begun"' in html and words in html and 'id="period-open"' not in html
    ended = render.shift_html([], {"start": "2026-11-25T05:00Z", "end": "2026-11-25T13:00Z"}, lang=lang, tz="Europe/Berlin")
    assert 'id="period-not-begun"' not in ended


def test_a_long_title_of_one_word_keeps_the_period_lot_and_station_on_the_page(tmp_path):
    """--title Nachtschicht_Linie1_Station3_2026-10-24_bis_2026-10-25 (a script's title, no space) ran off the A4 page in the
    PDF, and took the header's period, lot and station with it: the station was on no part of page 1's header."""
    pytest.importorskip("weasyprint")
    import re
    import subprocess

    from tests.reports.conftest import need

    meta = {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z", "station": "line1-station3",
            "title": "Nachtschicht_Linie1_Station3_2026-10-24_bis_2026-10-25", "lot": "LOT-2026-10-24-N-0001"}
    out = reports.render_shift([], meta, tmp_path, formats=("pdf",))
    boxes = subprocess.run([need("pdftotext"), "-f", "1", "-l", "1", "-bbox", str(out["pdf"]), "-"], capture_output=True, text=True,
                           check=True).stdout
    right = max(float(x) for x in re.findall(r'xMax="([\d.]+)"', boxes))
    assert right <= 595.3 - 13 * 72 / 25.4 + 0.5, right  # inside the right margin of 13 mm
    text = subprocess.run([need("pdftotext"), "-f", "1", "-l", "1", "-layout", str(out["pdf"]), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "line1-station3" in text.split("Totals and yield")[0]


def test_a_report_interrupted_while_written_leaves_no_half_file(tmp_path, monkeypatch):
    """Ctrl-C while a report was written (a PDF onto a slow USB stick) left its half-written .tmp file in the folder."""
    from pathlib import Path

    real = Path.write_bytes

    def interrupted(self, data):
        real(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reports.render_shift(make_records(5, hours=1.0), {"start": "2026-11-26T06:00Z", "end": "2026-11-26T07:00Z"}, tmp_path,
                             formats="html")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_report_killed_while_written_leaves_its_half_file_to_the_next_run(tmp_path):
    """A report run killed as it wrote (SIGKILL, a power cut) left .<report>.<pid>.tmp in the folder, and no later run removed it."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    half = tmp_path / f".shift-20261126T0600Z-20261126T0700Z.html.{dead.pid}.tmp"
    half.write_bytes(b"<!doctype html><html><body>half")
    reports.render_shift(make_records(5, hours=1.0), {"start": "2026-11-26T06:00Z", "end": "2026-11-26T07:00Z"}, tmp_path,
                         formats="html")
    assert not half.exists() and {p.suffix for p in tmp_path.iterdir()} == {".html"}


@pytest.mark.parametrize("passed, failed, shown", [(1, 2999, "0.1%"), (2999, 1, "99.9%"), (0, 5, "0.0%"), (5, 0, "100.0%")])
def test_the_live_views_yield_reads_zero_only_when_no_part_passed(passed, failed, shown):
    """The live view's yield read 0.0% with 1 of 3,000 parts passed (the shift report's yield reads 0.1%, as a non-zero share
    never reads 0.0%)."""
    from reports.render import live_html

    html = live_html([], {"station": "line1-station3", "status": "ok", "verdicts": {"PASS": passed, "FAIL": failed}})
    assert f'<div class="v">{shown}</div><div class="l">Yield</div>' in html


def test_a_period_from_the_year_1_prints_its_year_in_four_digits(store, tmp_path, capsys):
    """--from 0001-01-02Z (a report of everything, a period the CLI takes) printed 'Period: 1-01-02 00:00 UTC' in the report
    and '1-01-02 00:00:00' on the terminal (glibc's %Y), where the file name reads 00010102."""
    rc = main(["report", "--db", str(store), "--from", "0001-01-02T00:00Z", "--to", "2026-11-27T00:00Z", "--tz", "Europe/Berlin",
               "--format", "html", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("12 inspections (") and " from 0001-01-02 00:53:28 Europe/Berlin (0001-01-02T00:00:00.000Z)" in out, out
    html = next(tmp_path.glob("shift-*.html")).read_text(encoding="utf-8")
    assert "Period: 0001-01-02 00:53 LMT – 2026-11-27 01:00 CET" in html


def test_the_latency_table_lists_the_stages_in_the_order_a_part_goes_through_them():
    """It listed them as records first had them: the daemon's read decode, preprocess, infer, decision, intake, queue."""
    daemon = {"decode": 2, "preprocess": 3, "infer": 9, "decision": 1, "intake": 1, "queue": 4, "total": 20}
    other = {"infer": 8, "upload": 5, "intake": 1}  # a stage of another tool's: after the known ones
    s = shift_stats([inspection({"timings_ms": daemon}), inspection({"timings_ms": other})])
    assert [row["stage"] for row in s.latency] == ["intake", "queue", "decode", "preprocess", "infer", "decision", "upload", "total"]


@pytest.mark.parametrize("special, what", [("/dev/null", "not a regular file (a device, FIFO or socket)"), ("folder", "a folder, not a file")])
def test_a_logo_that_is_no_regular_file_is_refused_unread(store, tmp_path, capsys, special, what):
    """`report --logo /dev/zero` read until memory ran out, and a FIFO held the report for good: a device (here one that
    ends at once) or a folder is refused unread (a station config's reports.logo is checked by the same reader)."""
    special = str(tmp_path) if special == "folder" else special
    rc, _, err = cli(capsys, "report", "--db", store, "--from", "2026-11-26", "--logo", special, "--out", tmp_path / "r")
    assert_one_line_error(rc, err, f"report logo {special}: {what}; give a PNG, JPEG or SVG file")
