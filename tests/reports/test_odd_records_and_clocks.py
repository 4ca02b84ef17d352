"""Reports under odd records and clocks: times at the calendar's edges, records out of time order,
a lone huge score, and rates that must not read none or all."""

from __future__ import annotations

import random
import re

from inspector.cli import main
from inspector.store import Store
from reports import charts
from reports.records import parse_time
from reports.render import Page, inspection_html, shift_html
from reports.validation import validation_html

from .test_validation import run_of, section


def record(i: int, timestamp: str, verdict: str = "PASS", **fields) -> dict:
    return {"inspection_id": f"id{i:04d}", "station": "line1-station3", "serial": f"S{i}", "timestamp": timestamp, "verdict": verdict,
            "score": 5.0 if verdict == "FAIL" else 1.0, "threshold": 4.2, **fields}


def test_a_record_before_utcs_calendar_is_undated_not_a_stopped_report(tmp_path, capsys):
    """A record stamped 0001-01-01T00:20+01:00 (edited, or another tool's) is before UTC's first instant: parse_time raised
    OverflowError, and the shift report of its period and its own inspection report ended in a traceback (exit 70)."""
    assert parse_time("0001-01-01T00:20:00+01:00") is None and parse_time("9999-12-31T23:59:59-01:00") is None
    s = Store(tmp_path / "store")
    s.add(record(1, "0001-01-01T00:20:00+01:00", "FAIL"))
    s.add(record(2, "0001-01-01T06:00:00Z"))
    s.close()
    out = tmp_path / "out"
    assert main(["report", "--db", str(tmp_path / "store"), "--from", "0001-01-01T00:00Z", "--to", "0001-01-02T00:00Z", "--tz", "UTC",
                 "--format", "html", "--out", str(out)]) == 0
    html = next(out.glob("shift-*.html")).read_text(encoding="utf-8")
    assert "1 record has no valid timestamp" in html and re.search(r'<div class="v">2</div><div class="l">Inspected', html)
    assert main(["report", "--db", str(tmp_path / "store"), "--inspection", "id0001", "--tz", "UTC", "--format", "html",
                 "--out", str(out)]) == 0
    assert "0001-01-01T00:20:00+01:00" in (out / "inspection-id0001.html").read_text(encoding="utf-8")  # as the record has it
    assert "Traceback" not in capsys.readouterr().err


def test_a_time_the_reports_clock_cannot_show_is_shown_in_utc():
    """9999-12-31T23:00Z is in the year 10000 on Tokyo's clock: the inspection report of a record stamped so (edited, or
    another tool's) ended in a traceback. It is shown in UTC, and Tokyo is not named beside it."""
    html = inspection_html(record(1, "9999-12-31T23:00:00Z", "FAIL"), tz="Asia/Tokyo")
    assert "9999-12-31 23:00:00 UTC" in html and "Asia/Tokyo" not in html
    assert "2026-11-26 15:00:00 JST (Asia/Tokyo)" in inspection_html(record(2, "2026-11-26T06:00:00Z"), tz="Asia/Tokyo")


def test_failed_parts_are_listed_in_time_order_whatever_order_the_records_came_in():
    """The failed parts' table says it is in time order, but listed a caller's records in the order given (the API takes
    records in any order): 13:00, 06:20, 07:40, ...; so did the escapes table. Parts without a time come last."""
    escape = [{"outcome": "escape", "truth": "defect", "by": "QA"}]
    records = [record(i, f"2026-11-26T{6 + i // 3:02d}:{20 * (i % 3):02d}:00Z", "FAIL" if i % 2 else "PASS",
                      **({"reviews": escape} if i % 4 == 0 else {})) for i in range(24)]
    random.Random(3).shuffle(records)
    records.insert(0, record(99, "not a time", "FAIL"))
    html = shift_html(records, {"start": "2026-11-26T06:00Z", "end": "2026-11-26T14:00Z"})
    failed = re.search(r'<section class="long" id="failed">.*?</section>', html, re.S).group(0)
    times = re.findall(r"<tr><td>(2026-[^<]*|—)</td><td>(S\d+)</td>", failed)
    assert [serial for _t, serial in times] == [f"S{i}" for i in range(1, 24, 2)] + ["S99"], times
    assert times[-1][0] == "—"
    escapes = re.search(r'<section class="long" id="escapes">.*?</section>', html, re.S).group(0)  # so is the escapes table
    assert re.findall(r"<tr><td>[^<]*</td><td>(S\d+)</td>", escapes) == [f"S{i}" for i in range(0, 24, 4)]


def test_a_validation_rate_of_one_image_in_thousands_never_reads_none_or_all():
    """The metrics table and the type naming wrote rates with plain rounding: 1 false alarm in 2,500 good images at 99 %
    of defects caught read 0.0 % (none), 2,499 of 2,500 defects caught at 1 % false alarms, and named right, 100.0 %."""
    labels = ["good"] * 10 + ["crack"] * 10
    run = run_of([0.0] * 10 + [2.0] * 10, labels, fpr_at_recall_99=0.0004, tpr_at_fpr_1=0.9996, type_accuracy=0.9996, type_macro_f1=0.99,
                 types_fitted_on_these_images=0)
    run.trace["types_cv_accuracy"] = 0.0004
    run.trace["framing"] = {"ignored": 0.0004}
    html = validation_html(run, Page.of("en", ("html",), "UTC", None))
    metrics = section(html, "metrics")
    assert re.search(r"False alarms at 99% of defects caught</th><td>0\.1%<", metrics), metrics
    assert re.search(r"Defects caught at 1% false alarms</th><td>99\.9%<", metrics)
    types = section(html, "types")
    assert "99.9% of these defects named right" in types and "it named 0.1% right" in types
    assert "0.1% of it ignored" in html


def test_a_lone_score_too_large_for_half_a_unit_still_draws_its_histogram():
    """A shift of one part scored 1e17 with no threshold (a damaged record): widened by half a unit each side, lost to
    rounding at that size, its histogram's bins had no width, and the report ended in ZeroDivisionError."""
    html = shift_html([record(1, "2026-11-26T06:10Z", "FAIL", score=1e17, threshold=None)], {})
    scores = re.search(r'<section id="scores">.*?</section>', html, re.S).group(0)
    assert "<svg" in scores and "<rect" in scores
    assert "100,000,000,000,000,000" in scores  # the score's own tick, mid-axis
    assert charts.histogram([(1.0, "PASS")] * 3, [1.0], lambda s: s) is not None  # half a unit each side where it tells


def test_the_verdict_shares_of_a_shift_add_up_to_a_hundred():
    """PASS was rounded down (as the yield beside it) and FAIL to the nearest: 278 and 22 of 300 read 92.6 % and 7.3 %."""
    from reports.numbers import Numbers

    num = Numbers("en")
    for passed in range(1, 300):
        shares = [float(num.share(100 * n / 300, 1, v == "PASS", v == "FAIL").rstrip("%")) for v, n in (("PASS", passed), ("FAIL", 300 - passed))]
        assert round(sum(shares), 1) == 100.0, (passed, shares)
    assert num.share(7.0, 1, ceil=True) == "7.0%" and num.share(99.99, 1, ceil=True) == "99.9%" and num.share(0.001, 1, ceil=True) == "0.1%"
