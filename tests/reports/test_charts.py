"""Inline SVG charts: well-formed, escaped, threshold and limits where the data puts them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from reports import charts
from reports.records import Subgroup

NS = "{http://www.w3.org/2000/svg}"


def _(s: str) -> str:
    return s


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def test_pareto_sorted_bars_and_cumulative_line_with_escaped_labels():
    root = parse(charts.pareto([("<b>dent</b>", 6), ("scratch", 3), ("pit", 1)], _))
    bars = root.findall(f"{NS}rect")[:3]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] > heights[1] > heights[2] > 0
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "<b>dent</b>" in texts  # parsed back from &lt;b&gt;: it was text, not markup
    assert root.find(f"{NS}b") is None
    line = root.find(f"{NS}polyline")
    ys = [float(p.split(",")[1]) for p in line.get("points").split()]
    assert ys == sorted(ys, reverse=True)  # cumulative share only rises
    assert charts.pareto([], _) is None


def test_histogram_draws_threshold_at_its_value():
    scores = [(0.5 + 0.01 * i, "PASS") for i in range(100)] + [(3.0, "FAIL"), (4.0, "FAIL")]
    root = parse(charts.histogram(scores, [2.0], _))
    dashed = [ln for ln in root.iter(f"{NS}line") if ln.get("stroke") == charts.LIMIT_C and ln.get("y1") != ln.get("y2")]  # not the legend
    assert len(dashed) == 1
    x = float(dashed[0].get("x1"))
    left, right = charts.LEFT, charts.W - charts.RIGHT
    assert x == pytest.approx(left + (2.0 - 0.5) / (4.0 - 0.5) * (right - left), abs=0.2)
    fills = {r.get("fill") for r in root.iter(f"{NS}rect")}
    assert charts.PASS_C in fills and charts.FAIL_C in fills
    assert charts.histogram([], [1.0], _) is None


def test_a_few_failed_parts_beside_many_passed_ones_stay_visible():
    """A shift's 3,000 FAILs beside 40,000 PASSes in one bin were slivers no one could read: the count axis turns log."""
    scores = [(1.0, "PASS")] * 40_000 + [(1.5, "PASS")] * 20_000 + [(3.0 + i / 1000, "FAIL") for i in range(300)]
    root = parse(charts.histogram(scores, [2.0], _))
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "Parts (log scale)" in texts and {"0", "1", "10", "100", "1,000", "10,000", "100,000"} <= set(texts)
    bars = {r.get("fill"): float(r.get("height")) for r in root.iter(f"{NS}rect") if r.get("fill") in (charts.PASS_C, charts.FAIL_C)}
    assert bars[charts.FAIL_C] > 0.3 * bars[charts.PASS_C]  # about 75 FAILs a bin on a log axis: near half of 20,000 PASSes
    # FAILs in a bin of many PASSes stand beside them from zero, not stacked on top as a sliver
    mixed = [(1.0, "PASS")] * 40_000 + [(1.0, "FAIL")] * 300 + [(3.0, "FAIL")] * 5
    rects = list(parse(charts.histogram(mixed, [2.0], _)).iter(f"{NS}rect"))
    first = {fill: min((r for r in rects if r.get("fill") == fill), key=lambda r: float(r.get("x"))) for fill in (charts.PASS_C, charts.FAIL_C)}
    passed, failed = (float(first[c].get("height")) for c in (charts.PASS_C, charts.FAIL_C))
    assert failed > 0.4 * passed  # log(301) / log(40,001) = 0.54; stacked, it was 0.1 px
    few = [(1.0, "PASS")] * 50 + [(3.0, "FAIL")] * 5
    assert "Parts (log scale)" not in [t.text for t in parse(charts.histogram(few, [2.0], _)).iter(f"{NS}text")]


def test_p_chart_marks_out_of_control_points():
    t0 = datetime(2026, 11, 26, 6, tzinfo=timezone.utc)
    w = timedelta(hours=1)
    groups = [Subgroup(t0, t0 + w, 100, 5, 0.05, 0.115, 0.0, None, None),
              Subgroup(t0 + w, t0 + 2 * w, 0, 0, None, None, None, None, None),
              Subgroup(t0 + 2 * w, t0 + 3 * w, 100, 30, 0.30, 0.115, 0.0, None, None)]
    root = parse(charts.p_chart(groups, 0.05, _))
    points = root.findall(f"{NS}circle")
    assert len(points) == 2  # the empty hour has no point
    assert [p.get("fill") for p in points] == [charts.INK, charts.FAIL_C]
    assert charts.p_chart([], 0.1, _) is None


def test_throughput_and_gauge():
    t0 = datetime(2026, 11, 26, 6, tzinfo=timezone.utc)
    w = timedelta(minutes=30)
    groups = [Subgroup(t0 + i * w, t0 + (i + 1) * w, 10 * (i + 1), 0, 0.0, 0.0, 0.0, 20.0 + i, 30.0 + i) for i in range(4)]
    root = parse(charts.throughput(groups, _))
    assert len(root.findall(f"{NS}polyline")) == 2
    assert "06:00" in [t.text for t in root.iter(f"{NS}text")]
    gauge = parse(charts.score_gauge(3.0, 2.0, "FAIL", _))
    assert any(r.get("fill") == charts.FAIL_C for r in gauge.iter(f"{NS}rect"))
    assert charts.score_gauge(None, 2.0, "FAIL", _) is None


def test_nice_ticks():
    assert charts.nice_ticks(0, 11, integer=True) == [0, 5, 10, 15]
    assert charts.nice_ticks(0, 0.2) == pytest.approx([0, 0.05, 0.1, 0.15, 0.2])
    assert all(float(t).is_integer() for t in charts.nice_ticks(0, 3, integer=True))


def test_close_thresholds_labels_do_not_overlap_and_stay_inside_the_plot():
    scores = [(0.5 + 0.01 * i, "PASS") for i in range(100)] + [(3.0, "FAIL")]
    root = parse(charts.histogram(scores, [2.0, 2.01, 2.02], _))
    labels = [t for t in root.iter(f"{NS}text") if (t.text or "").startswith("Threshold ")]
    assert sorted(t.text for t in labels) == ["Threshold 2", "Threshold 2.01", "Threshold 2.02"]
    assert len({t.get("y") for t in labels}) == 3  # one row each: all three sat on one line before
    edge = parse(charts.histogram(scores, [3.0], _))
    label = next(t for t in edge.iter(f"{NS}text") if (t.text or "").startswith("Threshold "))
    assert float(label.get("x")) + charts.text_width(label.text) <= charts.W - charts.RIGHT  # it ran off the plot before


def test_chart_numbers_follow_the_language():
    from reports.numbers import STYLES

    groups = [Subgroup(datetime(2026, 11, 27, h, tzinfo=timezone.utc), datetime(2026, 11, 27, h + 1, tzinfo=timezone.utc), n=12000,
                       fails=30, p=0.0025, ucl=None, lcl=None, latency_median=1500.5, latency_p95=2500.0) for h in range(3)]
    texts = [t.text for t in parse(charts.throughput(groups, _, STYLES["es"])).iter(f"{NS}text")]
    assert "10.000" in texts and "2500" in texts and "10,000" not in texts  # CLDR: Spanish groups with a point, from five digits up
    gauge = [t.text for t in parse(charts.score_gauge(123456.7, 4.25, "FAIL", _, STYLES["es"])).iter(f"{NS}text")]
    assert "Score 123.457" in gauge and "Threshold 4,25" in gauge  # "1.235e+05" and "4.25" before; every integer digit kept


def test_time_labels_across_a_clock_change_carry_the_zone():
    """The fall-back night read 00:00 01:00 02:00 02:00 03:00: which 02:00 was which?"""
    from zoneinfo import ZoneInfo

    berlin, w = ZoneInfo("Europe/Berlin"), timedelta(hours=1)
    t0 = datetime(2026, 10, 24, 22, 0, tzinfo=timezone.utc)  # 00:00 CEST; clocks go back at 01:00 UTC
    groups = [Subgroup(t0 + i * w, t0 + (i + 1) * w, 10, 1, 0.1, 0.3, 0.0, None, None) for i in range(6)]
    labels = [t.text for t in parse(charts.p_chart(groups, 0.1, _, z=berlin)).iter(f"{NS}text")]
    assert {"02:00 CEST", "02:00 CET"} <= set(labels)
    calm = [Subgroup(g.start - timedelta(days=7), g.end - timedelta(days=7), 10, 1, 0.1, 0.3, 0.0, None, None) for g in groups]
    assert "00:00" in [t.text for t in parse(charts.p_chart(calm, 0.1, _, z=berlin)).iter(f"{NS}text")]  # no change: no zone
