"""Records at their edges (reports/records.py): malformed values of every kind become None instead of errors or
text, the last well-formed review wins, and the p-chart's subgroup width steps through its fixed ladder."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reports.records import inspection, shift_stats


@pytest.mark.parametrize("record", [None, [], "a record", 7])
def test_a_record_that_is_no_object_is_an_unknown_part(record):
    part = inspection(record)
    assert (part.id, part.verdict, part.time, part.defects, part.review) == ("unknown", "UNKNOWN", None, [], None)


def test_objects_lists_and_blank_text_are_no_text():
    part = inspection({"station": {"name": "s1"}, "serial": ["S1"], "source": "   ", "defect_type": "\t",
                       "images": {"image": "", "overlay": "o.png"}})
    assert (part.station, part.serial, part.source, part.defect_type) == (None, None, None, None)
    assert part.images == {"overlay": "o.png"}  # an empty path names no image


@pytest.mark.parametrize("box", [[1, 2, 3], [1, 2, 3, 4, 5], "1,2,3,4", {"x": 1}])
def test_a_box_of_other_than_four_numbers_is_none(box):
    assert inspection({"defects": [{"type": "dent", "box": box}]}).defects[0].box is None


def test_the_last_well_formed_review_is_the_parts_review():
    good = {"outcome": "false_alarm", "truth": "good", "by": "QA", "at": "2026-11-26T06:00+01:00"}
    part = inspection({"reviews": [good, ["confirmed"], "escape", {"outcome": "overruled"}, {"by": "x"}]})
    assert part.review is not None
    assert (part.review.outcome, part.review.truth, part.review.by, part.review.time) == \
        ("false_alarm", "good", "QA", datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc))
    assert inspection({"reviews": [good, {"outcome": "confirmed", "by": " "}]}).review.outcome == "confirmed"
    assert inspection({"reviews": {"outcome": "confirmed"}}).review is None
    assert inspection({"reviews": [{"outcome": "maybe"}]}).review is None


START = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("minutes, width", [
    (0.5, 1), (24, 1), (25, 5), (120, 5), (121, 10), (240, 10), (241, 15), (360, 15), (361, 30), (720, 30), (721, 60),
    (1440, 60), (1441, 120), (2880, 120), (2881, 240), (5760, 240), (5761, 480), (11520, 480), (11521, 1440),
    (34560, 1440), (34561, 10080), (241920, 10080),
    (725760, 30240), (725761, 40320),  # beyond a week: whole weeks, at most 24 subgroups (72 weeks: 3-week ones)
])
def test_the_subgroup_width_is_the_first_of_the_ladder_giving_at_most_24(minutes, width):
    # the ladder 1, 5, 10, 15, 30 minutes, 1, 2, 4, 8 hours, a day, a week: by hand, span / width <= 24
    s = shift_stats([], START, START + timedelta(minutes=minutes))
    assert s.subgroup_width == timedelta(minutes=width)


def test_the_worst_parts_are_ranked_by_margin_over_their_own_threshold():
    # two thresholds in one shift (a recalibrated model): 3.0 over a threshold of 1.0 is worse than 5.0 over 4.0
    a = inspection({"inspection_id": "a", "verdict": "FAIL", "score": 5.0, "threshold": 4.0})
    b = inspection({"inspection_id": "b", "verdict": "FAIL", "score": 3.0, "threshold": 1.0})
    assert (a.margin, b.margin) == (1.0, 2.0)
    assert [p.id for p in shift_stats([a, b]).worst] == ["b", "a"]


def test_a_recorded_total_time_is_the_parts_latency_not_the_sum_of_its_stages():
    # the pipeline writes total from receipt to result (queueing included): that is the latency, not a stage sum
    part = inspection({"timings_ms": {"decode": 4, "infer": 10, "total": 12}})
    assert part.total_ms == 12.0
    assert inspection({"timings_ms": {"decode": 4, "infer": 10}}).total_ms == 14.0
    assert inspection({"timings_ms": {}}).total_ms is None


def test_an_end_without_a_start_and_no_dated_part_gives_no_time_bins():
    # `--to` alone over records without timestamps: nothing to place in time, and no crash
    s = shift_stats([inspection({"verdict": "PASS"})], None, START)
    assert (s.start, s.end, s.subgroups, s.parts_per_hour, s.undated) == (None, START, [], None, 1)


def test_parts_without_a_threshold_rank_by_score_and_are_left_out_of_the_thresholds():
    parts = [inspection({"inspection_id": "a", "verdict": "FAIL", "score": 5.0, "threshold": 2.0}),
             inspection({"inspection_id": "b", "verdict": "FAIL", "score": 4.0}),  # an old record: no threshold
             inspection({"inspection_id": "c", "verdict": "PASS", "score": 0.5, "threshold": 1.0})]
    s = shift_stats(parts)
    assert s.thresholds == [1.0, 2.0]
    assert [p.id for p in s.worst] == ["b", "a", "c"]  # b by its score 4.0, a by its margin 3.0


def test_shift_totals_of_a_shift_without_a_passed_part_worked_out_by_hand():
    at = lambda h: f"2026-11-26T0{h}:00:00Z"  # noqa: E731
    parts = [inspection(r) for r in [
        {"inspection_id": "a", "verdict": "FAIL", "score": 5.0, "threshold": 2.0, "timestamp": at(6), "warnings": ["dark", "dark"],
         "reviews": [{"outcome": "confirmed"}], "model": {"id": "m1"}, "timings_ms": {"infer": 10}},
        {"inspection_id": "b", "verdict": "FAIL", "score": 4.0, "timestamp": at(7), "warnings": ["dark"], "timings_ms": {"infer": 20}},
        {"inspection_id": "c", "verdict": "REVIEW", "score": 1.5, "threshold": 2.0, "timestamp": at(8), "warnings": ["size 640x480"]},
        {"inspection_id": "d", "verdict": "review"},  # undated, unscored
    ]]
    s = shift_stats(parts)
    assert (s.total, s.yield_pct, s.unjudged, s.undated) == (4, 0.0, 2, 1)  # judged: a and b, both failed
    assert s.scores == [(5.0, "FAIL"), (4.0, "FAIL")]  # judged parts only
    assert s.parts_per_hour == 1.5  # three dated parts over 06:00-08:00
    assert s.reviews == {"confirmed": 1}
    assert s.warnings == [("dark", 2, 2), ("size 640x480", 1, 0)]  # a part counted once per text
    assert s.models == [({"id": "m1", "backbone": None, "sha256": None, "runtime": None}, 1)]
    # latency of [10, 20] ms: median 15, p95 10 + 0.95 x 10 = 19.5; the total is the stages' sum without a recorded one
    assert s.latency == [{"stage": "infer", "median": 15.0, "p95": 19.5, "max": 20.0},
                         {"stage": "total", "median": 15.0, "p95": 19.5, "max": 20.0}]


def test_a_value_reads_with_four_significant_digits_unless_more_tell_it_from_the_other():
    from reports.records import apart

    assert apart(0.123456, None) == "0.1235" and apart(123456.7, None) == "123457"  # every integer digit
    assert (apart(0.49996, 0.5), apart(0.5, 0.49996)) == ("0.49996", "0.5")


def test_a_half_hour_with_a_recorded_total_an_unscored_failure_and_a_common_warning():
    parts = [inspection(r) for r in [
        {"inspection_id": "a", "verdict": "FAIL", "score": 3.0, "timestamp": "2026-11-26T06:00:00Z", "warnings": ["dark"],
         "timings_ms": {"infer": 10, "total": 12}},
        {"inspection_id": "b", "verdict": "FAIL", "timestamp": "2026-11-26T06:10:00Z", "warnings": ["dark", "dim"]},  # no score
        {"inspection_id": "c", "verdict": "PASS", "score": 0.5, "timestamp": "2026-11-26T06:20:00Z", "warnings": ["dim"]},
        {"inspection_id": "d", "verdict": "PASS", "score": 0.4, "timestamp": "2026-11-26T06:30:00Z", "warnings": ["dim"]},
    ]]
    s = shift_stats(parts)
    assert s.parts_per_hour == 8.0  # four parts in half an hour
    assert s.scores == [(3.0, "FAIL"), (0.5, "PASS"), (0.4, "PASS")]  # b has no score to plot
    assert [row["stage"] for row in s.latency] == ["infer", "total"]  # the recorded total, once
    assert s.warnings == [("dim", 3, 1), ("dark", 2, 2)]  # most parts first, not most failures


def test_percentiles_interpolate_between_neighbours_in_sorted_order():
    from reports.records import percentile

    # sorted 10, 20, 40, 80: the median is halfway from 20 to 40; p95 is 85% of the way from 40 to 80
    assert (percentile([80.0, 10.0, 40.0, 20.0], 50), percentile([80.0, 10.0, 40.0, 20.0], 95)) == (30.0, 74.0)
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def test_parts_outside_the_report_period_are_in_no_time_bin():
    parts = [inspection({"inspection_id": str(h), "verdict": "PASS", "timestamp": f"2026-11-26T{h}Z"})
             for h in ("05:00", "06:30", "08:00")]
    s = shift_stats(parts, START, START + timedelta(hours=1))
    assert sum(g.n for g in s.subgroups) == 1


def test_values_apart_by_one_double_step_are_told_apart_and_equal_ones_are_short():
    import math

    from reports.records import apart

    nxt = math.nextafter(0.1, 1.0)  # 0.10000000000000002: the two differ in the 17th significant digit only
    assert (apart(0.1, nxt), apart(nxt, 0.1)) == ("0.10000000000000001", "0.10000000000000002")
    assert apart(0.1, 0.1) == "0.1"


def test_a_subgroups_limits_latency_and_start_worked_out_by_hand():
    # 100 parts in the first minute, half failed: p = p_bar = 0.5, sigma = sqrt(0.25 / 100) = 0.05, limits 0.5 +- 0.15
    parts = [inspection({"inspection_id": str(i), "verdict": "FAIL" if i % 2 else "PASS", "timestamp": "2026-11-26T06:00:30Z",
                         "timings_ms": {"total": float(i)}}) for i in range(100)]
    first = shift_stats(parts, START, START + timedelta(minutes=20)).subgroups[0]
    assert (first.n, first.fails) == (100, 50)
    assert abs(first.ucl - 0.65) < 1e-12 and abs(first.lcl - 0.35) < 1e-12
    # latency 0..99 ms: median 49.5, p95 at 94.05
    assert abs(first.latency_median - 49.5) < 1e-9 and abs(first.latency_p95 - 94.05) < 1e-9


def test_bins_start_on_whole_multiples_of_the_width_not_at_the_reports_start():
    # 06:07 to 08:00 is 113 minutes: 5-minute bins, the first from 06:05
    s = shift_stats([], START + timedelta(minutes=7), START + timedelta(hours=2))
    assert s.subgroup_width == timedelta(minutes=5) and s.subgroups[0].start == START + timedelta(minutes=5)


def test_a_pixel_threshold_changed_within_a_shift_is_said():
    """A `--pixel` change mid-shift moved every region drawn after it, and the shift report named only image thresholds."""
    from reports.render import shift_html

    records = [{"inspection_id": f"p{i}", "verdict": "PASS", "score": 1.0, "threshold": 4.2, "station": "s1",
                "timestamp": f"2026-11-27T06:{i:02d}:00.000Z", "pixel_threshold": px} for i, px in enumerate([0.5, 0.5, 0.75])]
    s = shift_stats([inspection(r) for r in records])
    assert (s.thresholds, s.pixel_thresholds) == ([4.2], [0.5, 0.75])
    html = shift_html(records, {})
    assert "More than one pixel threshold drew the defect regions during this period: 0.5; 0.75." in html
    assert '<p id="pixel-thresholds">Pixel threshold: 0.5, 0.75</p>' in html
    assert "More than one threshold was in use" not in html
    one = shift_html(records[:2], {})
    assert "pixel-thresholds-note" not in one and '<p id="pixel-thresholds">Pixel threshold: 0.5</p>' in one
    assert "像素阈值来划定缺陷区域：0.5; 0.75" in shift_html(records, {}, lang="zh")
