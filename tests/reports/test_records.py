"""Records -> report data: partial and malformed records, shift statistics, the p-chart limits."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta, timezone

import pytest

from reports.records import inspection, parse_time, percentile, shift_stats


def rec(i: int, verdict: str, minutes: float, score: float = 1.0, **extra) -> dict:
    t = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    return {"inspection_id": f"id{i}", "verdict": verdict, "score": score, "threshold": 2.0,
            "timestamp": t.isoformat().replace("+00:00", "Z"), **extra}


def test_partial_and_malformed_records_normalise_without_errors():
    assert inspection({}).id == "unknown" and inspection({}).verdict == "UNKNOWN"
    part = inspection({"inspection_id": 7, "verdict": "fail", "score": "nan", "threshold": "3.5", "timestamp": "yesterday",
                       "defects": [{"type": "scratch", "box": [1, 2, "x", 4]}, "junk", {"box": [1, 2, 3, 4], "confidence": "0.5"}],
                       "image": "not a dict", "model": {"id": "m1"}, "timings_ms": {"infer": 12, "bad": "slow"}, "images": {"image": 5}})
    assert (part.id, part.verdict, part.score, part.threshold, part.time) == ("7", "FAIL", None, 3.5, None)
    assert [(d.type, d.box, d.confidence) for d in part.defects] == [("scratch", None, None), ("anomaly", (1, 2, 3, 4), 0.5)]
    assert part.model == {"id": "m1", "backbone": None, "sha256": None, "runtime": None}
    assert part.timings_ms == {"infer": 12.0} and part.images == {} and part.width is None
    assert part.primary_type == "scratch"


def test_parse_time_accepts_the_store_form_and_offsets():
    assert parse_time("2026-11-26T06:00:00.123Z") == datetime(2026, 11, 26, 6, 0, 0, 123000, tzinfo=timezone.utc)
    assert parse_time("2026-11-26T08:00:00+02:00") == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    assert parse_time("2026-11-26T06:00:00") == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    assert parse_time("") is None and parse_time(None) is None and parse_time({"a": 1}) is None


def test_shift_totals_pareto_worst_and_latency():
    records = [rec(0, "PASS", 1, 0.5, timings_ms={"infer": 10, "decode": 2}),
               rec(1, "FAIL", 2, 5.0, defect_type="dent"),
               rec(2, "FAIL", 3, 3.0, defects=[{"type": "scratch"}]),
               rec(3, "FAIL", 4, 9.0, defect_type="dent"),
               rec(4, "PASS", 5, 1.9, timings_ms={"infer": 30, "decode": 4}),
               {"inspection_id": "odd", "verdict": "REVIEW"}]
    s = shift_stats([inspection(r) for r in records], worst_n=3)
    assert s.total == 6 and s.verdicts == {"FAIL": 3, "PASS": 2, "REVIEW": 1}
    assert s.yield_pct == pytest.approx(40.0)  # of the judged parts only
    assert s.defect_types == [("dent", 2), ("scratch", 1)]
    assert [p.id for p in s.worst] == ["id3", "id1", "id2"]
    assert s.undated == 1
    rows = {r["stage"]: r for r in s.latency}
    assert rows["infer"]["median"] == 20.0 and rows["total"]["max"] == 34.0 and rows["decode"]["p95"] == pytest.approx(3.9)


def test_p_chart_limits_follow_each_subgroup_size():
    # 2 hours of parts: 30 in the first hour (3 failed), 10 in the second (5 failed)
    records = [rec(i, "FAIL" if i < 3 else "PASS", i) for i in range(30)]
    records += [rec(100 + i, "FAIL" if i < 5 else "PASS", 60 + 5 * i) for i in range(10)]
    start = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    s = shift_stats([inspection(r) for r in records], start, start + timedelta(hours=2))
    p_bar = 8 / 40
    assert s.p_bar == pytest.approx(p_bar)
    assert s.subgroup_width == timedelta(minutes=5)
    assert sum(g.n for g in s.subgroups) == 40 and len(s.subgroups) == 24
    for g in s.subgroups:
        if g.n:
            sigma = math.sqrt(p_bar * (1 - p_bar) / g.n)
            assert g.ucl == pytest.approx(min(1, p_bar + 3 * sigma)) and g.lcl == pytest.approx(max(0, p_bar - 3 * sigma))
            assert g.p == pytest.approx(g.fails / g.n)
        else:
            assert g.p is None and g.ucl is None
    assert s.out_of_control == 0


def test_p_chart_flags_subgroups_above_and_below_the_limits():
    # 200 parts with 2 failed in the first 5 minutes (below the LCL), 20 with 15 failed later (above the UCL)
    records = [rec(i, "FAIL" if i < 2 else "PASS", i / 50) for i in range(200)]
    records += [rec(1000 + i, "FAIL" if i < 15 else "PASS", 60 + i / 10) for i in range(20)]
    records += [rec(2000, "PASS", 119)]
    s = shift_stats([inspection(r) for r in records])
    flagged = [(g.n, g.fails) for g in s.subgroups if g.out_of_control]
    assert flagged == [(200, 2), (20, 15)]
    assert s.out_of_control == 2


def test_empty_shift():
    s = shift_stats([])
    assert (s.total, s.yield_pct, s.p_bar, s.subgroups, s.worst, s.latency) == (0, None, None, [], [], [])


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([0.0, 10.0], 95) == pytest.approx(9.5)


@pytest.mark.parametrize("start, end", [
    (datetime(2026, 11, 26, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),  # traceback before
    (datetime(1, 1, 2, tzinfo=timezone.utc), datetime(2026, 11, 27, tzinfo=timezone.utc)),  # 105,000 weekly subgroups before
    (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 11, 27, tzinfo=timezone.utc)),
])
def test_a_period_of_years_keeps_a_readable_p_chart(start, end):
    records = [rec(i, "FAIL" if i % 4 == 0 else "PASS", 10 * i) for i in range(40)]  # 2026-11-26 06:00 to 12:30
    s = shift_stats([inspection(r) for r in records], start, end)
    assert 1 <= len(s.subgroups) <= 24 and sum(g.n for g in s.subgroups) == 40 and sum(g.fails for g in s.subgroups) == 10
    assert s.subgroups[0].start <= start and s.subgroups[-1].end >= end
    assert s.subgroup_width >= timedelta(weeks=1)


@pytest.mark.parametrize("text", ["2026-11-26T06:00+0100", "2026-11-26T06:00:00.12Z", "2026-11-26T06:00:00.1234567Z", "20261126T0600",
                                  "2026-11-26", "2026-11-26 06:00", "2026-11-26T06:00:05-05:30", "2026-11-26T06:00z", "2026-11-26Z",
                                  "2026-11-26T23:59:59,5+00:00"])
def test_times_read_as_python_311_reads_them_on_310_too(text):
    """3.10's fromisoformat reads only isoformat()'s own output: `--from 2026-11-26T06:00+0100` was refused there."""
    from reports.zones import iso_datetime, parse_iso

    expected = datetime.fromisoformat(text.replace("z", "Z").replace("2026-11-26Z", "2026-11-26T00:00Z")) if sys.version_info >= (3, 11) else None
    assert parse_iso(text) == iso_datetime(text) and (expected is None or parse_iso(text) == expected)
    assert (parse_iso(text).utcoffset() is None) == (text[-1] not in "zZ" and "+" not in text and "-05" not in text)


@pytest.mark.parametrize("text", ["26/11/2026", "2026-13-01", "2026-11-26T25:00", "2026-11-26T06:00+1", "yesterday", ""])
def test_what_is_not_a_time_stays_refused(text):
    from reports.zones import parse_iso

    with pytest.raises(ValueError):
        parse_iso(text)


def test_daily_bins_start_at_midnight_on_the_reports_clock():
    """Bins were cut at UTC midnight and labelled on the plant's clock: in Chicago, days ran 18:00 to 18:00."""
    from zoneinfo import ZoneInfo

    chicago = ZoneInfo("America/Chicago")
    start = datetime(2026, 11, 20, tzinfo=chicago)
    parts = [inspection({"inspection_id": str(i), "timestamp": (start + timedelta(hours=5 + 24 * i)).isoformat(), "verdict": "PASS"})
             for i in range(10)]
    stats = shift_stats(parts, start, start + timedelta(days=10), zone=chicago)
    assert stats.subgroup_width == timedelta(days=1)
    assert [g.start.astimezone(chicago).hour for g in stats.subgroups] == [0] * 10 and all(g.n == 1 for g in stats.subgroups)


@pytest.mark.parametrize("hours", [4, 24 * 20])
def test_time_bins_hold_the_parts_of_their_own_span_when_the_clocks_go_back(hours):
    """Bins were stepped on the wall clock and filled by real time: after 25 October in Berlin every label read an hour
    late, and the last one lay past the period's end."""
    from zoneinfo import ZoneInfo

    start = datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc) - timedelta(hours=hours / 2)
    end = start + timedelta(hours=hours)
    times = [start + timedelta(minutes=7 * i) for i in range(int(hours * 60 / 7))]
    parts = [inspection({"inspection_id": f"p{i}", "timestamp": t.isoformat(), "verdict": "PASS", "score": 0.0, "threshold": 1.0})
             for i, t in enumerate(times)]
    groups = shift_stats(parts, start, end, zone=ZoneInfo("Europe/Berlin")).subgroups
    for g, following in zip(groups, groups[1:] + [None]):
        assert g.n == sum(g.start <= t < g.end for t in times) or following is None  # the last bin also takes the period's end
        assert following is None or g.end == following.start
    assert groups[0].start <= start and groups[-1].start < end and sum(g.n for g in groups) == len(times)
    if hours > 48:  # days on the plant's calendar: each bin starts at its midnight
        assert {g.start.astimezone(ZoneInfo("Europe/Berlin")).time().isoformat() for g in groups} == {"00:00:00"}


def test_multi_hour_bins_stay_on_the_plants_clock_after_the_clocks_go_back():
    """8-hour bins of a week began at 23:00, 07:00 and 15:00 for the rest of it after the change (and at midnight
    though the report began at 06:00): no longer the plant's shifts."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    start, end = datetime(2026, 10, 22, 6, 0, tzinfo=berlin), datetime(2026, 10, 29, 6, 0, tzinfo=berlin)
    times = [start + timedelta(minutes=37 * i) for i in range(int((end - start) / timedelta(minutes=37)))]
    parts = [inspection({"inspection_id": f"p{i}", "timestamp": t.isoformat(), "verdict": "PASS"}) for i, t in enumerate(times)]
    stats = shift_stats(parts, start, end, zone=berlin)
    assert stats.subgroup_width == timedelta(hours=8)
    assert {g.start.astimezone(berlin).hour for g in stats.subgroups} == {0, 8, 16}
    assert stats.subgroups[0].start <= start < stats.subgroups[1].start and stats.subgroups[0].start.astimezone(berlin).hour == 0
    assert sum(g.n for g in stats.subgroups) == len(times)
    assert sorted({(g.end - g.start) / timedelta(hours=1) for g in stats.subgroups}) == [8.0, 9.0]  # the night of the change
