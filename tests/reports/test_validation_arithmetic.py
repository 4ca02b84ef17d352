"""What the validation report's arithmetic and charts must give, pinned where hand-made mutants of reports/validation.py
and reports/charts.py went unnoticed by the other tests. Every expected value is worked out by hand from a formula or a
hand-made set, never copied from the code's output."""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from reports import charts
from reports.render import Page
from reports.validation import ValidationRun, per_type, rate, roc_points, validation_html, validation_name, wilson

from .test_validation import run_of, section

Z = 1.959964  # the 97.5 % point of the normal distribution
NS = "{http://www.w3.org/2000/svg}"
EN = Page.of("en", ("html",), "UTC", None)


def _(s: str) -> str:
    return s


def textbook_wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927): (p + z²/2n ± z √(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre, half = p + Z**2 / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return (centre - half) / (1 + Z**2 / n), (centre + half) / (1 + Z**2 / n)


# --- reports/validation.py ---


def test_wilson_at_none_and_all_of_a_few_images_is_the_closed_form():
    """At k = 0 the upper bound is z²/(n + z²) exactly (the docstring's 3.8 / (n + 3.8)); at k = n the lower one is
    n/(n + z²). One image is a sample too: 0 of 1 escaped reads "up to 79 %", not "no interval"."""
    for n in (1, 2, 3, 7, 50):
        lo, hi = wilson(0, n)
        assert lo == 0.0 and hi == pytest.approx(Z**2 / (n + Z**2), rel=1e-12), n
        lo, hi = wilson(n, n)
        assert hi == 1.0 and lo == pytest.approx(n / (n + Z**2), rel=1e-12), n
    assert wilson(0, 1)[1] == pytest.approx(0.7935, abs=5e-5)  # 3.8415 / 4.8415
    assert wilson(1, 1)[0] == pytest.approx(0.2065, abs=5e-5)


def test_rate_gives_the_wilson_bounds_in_percent():
    """2 of 20 false alarms: 10 %, and the interval the report prints beside it, both bounds in percent."""
    lo, hi = textbook_wilson(2, 20)
    assert 0.0278 < lo < 0.0279 and 0.3010 < hi < 0.3011  # (0.19604 ∓ 0.16282) / 1.19207, worked by hand
    r = rate(2, 20)
    assert (r["k"], r["n"], r["pct"]) == (2, 20, 10.0)
    assert r["low"] == pytest.approx(100 * lo, rel=1e-9) and r["high"] == pytest.approx(100 * hi, rel=1e-9)
    none = rate(0, 5)
    assert none["pct"] == 0.0 and none["low"] == 0.0 and none["high"] == pytest.approx(100 * Z**2 / (5 + Z**2), rel=1e-12)


def test_per_type_reads_each_types_auroc_and_counts_its_own_images():
    labels = ["good", "good", "good", "crack", "crack", "crack", "pit", "pit"]
    run = run_of([0.0, 0.5, 1.5, 2.0, 1.0, 0.9, 3.0, 0.1], labels, per_type_auroc={"crack": 0.61, "pit": 0.93})
    rows = per_type(run)
    assert [r["type"] for r in rows] == ["crack", "pit"]  # sorted, no "good"
    assert [(r["caught"]["k"], r["caught"]["n"], r["auroc"]) for r in rows] == [(2, 3, 0.61), (1, 2, 0.93)]  # 2.0 and 1.0 >= 1.0
    types = section(validation_html(run, EN), "types")
    assert "0.610" in types and "0.930" in types
    bare = run_of([0.0, 2.0], ["good", "crack"], per_type_auroc=None)  # an eval that did not compute them
    assert [r["auroc"] for r in per_type(bare)] == [None]


def test_roc_points_of_one_defect_or_none():
    """The rates divide by the number of defects and of good images; a set with none of one kind gives that rate 0, not
    NaN, and a set with one gives whole steps."""
    fpr, tpr = roc_points(np.array([True, False]), np.array([2.0, 1.0]))
    assert (fpr, tpr) == ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    fpr, tpr = roc_points(np.array([False, True]), np.array([2.0, 1.0]))
    assert (fpr, tpr) == ([0.0, 1.0, 1.0], [0.0, 0.0, 1.0])
    fpr, tpr = roc_points(np.array([False, False, False, False]), np.array([4.0, 3.0, 2.0, 1.0]))
    assert (fpr, tpr) == ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0] * 5)
    fpr, tpr = roc_points(np.array([True, True]), np.array([2.0, 1.0]))
    assert (fpr, tpr) == ([0.0] * 3, [0.0, 0.5, 1.0])


def test_a_test_set_of_one_kind_has_no_operating_point_on_the_roc():
    """With no defect (or no good) images one of the two rates is undefined: no threshold marker at NaN."""
    for labels in (["good", "good"], ["crack", "crack"]):
        html = validation_html(run_of([0.0, 2.0], labels), EN)
        scores = section(html, "scores")
        assert "<circle" not in scores and "nan" not in scores.lower(), labels
    both = section(validation_html(run_of([0.0, 2.0], ["good", "crack"]), EN), "scores")
    assert both.count("<circle") == 1


def test_the_galleries_show_at_most_twelve_of_each():
    """20 escapes and 15 false alarms: the 12 lowest-scoring escapes and the 12 highest-scoring false alarms."""
    scores = [0.01 * i for i in range(20)] + [2.0 + i for i in range(15)]  # defects 0..19 pass, good 20..34 fail
    run = run_of(scores, ["crack"] * 20 + ["good"] * 15)
    escapes, alarms = run.examples()
    assert escapes == list(range(12)) and alarms == list(range(34, 22, -1))
    html = validation_html(run, EN)
    assert "The first 12 are shown." in section(html, "escapes") and "The first 12 are shown." in section(html, "false-alarms")


def test_notes_the_report_words_itself_are_dropped_from_evals_notes():
    """eval's notes on the rates too few images resolve are said by the report in its own language; the others stay."""
    kept = "1 link(s) in data/test/good lead nowhere and were left out"
    run = ValidationRun(report={}, data="d", data_sha256="d", model_sha256="m", names=[], labels=[], scores=np.array([]), threshold=1.0,
                        notes=["fpr_at_recall_99: 3 defect images cannot resolve it", kept, "tpr_at_fpr_1: 5 good images cannot"])
    assert run.notes == [kept]


def test_the_report_names_key_is_eight_hex_digits_of_the_evaluations_digest():
    """A report is rewritten by the same evaluation only: its name's key must stay as earlier reports on disk have it."""
    run = run_of([0.0, 2.0], ["good", "crack"], threshold=1.5)
    key = hashlib.sha256(f"{'m' * 64} {'d' * 64} 1.5".encode()).hexdigest()[:8]
    assert validation_name(run) == f"validation-abc123-line1-{key}"
    run.trace = {"pixel_threshold": 0.75, "masks_sha256": "a" * 64}
    key = hashlib.sha256(f"{'m' * 64} {'d' * 64} 1.5 0.75 {'a' * 64}".encode()).hexdigest()[:8]
    assert validation_name(run) == f"validation-abc123-line1-{key}"


# --- reports/charts.py ---
# The plot box, worked out from the layout (680 x 250, margins 56 left and right, 24 top, 46 bottom): x from 56 to 624,
# y from 204 (zero) up to 24; the ROC chart is 300 high, so its zero is at 254.
X0, X1, Y_TOP, Y0 = 56.0, 624.0, 24.0, 204.0


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def rects(root: ET.Element, *fills: str) -> list[tuple[float, float, float, float, str]]:
    return [(float(r.get("x")), float(r.get("y")), float(r.get("width")), float(r.get("height")), r.get("fill"))
            for r in root.iter(f"{NS}rect") if r.get("fill") in fills and r.get("y") != "4"]  # not the legend's boxes


def texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{NS}text")]


def axis_labels(root: ET.Element, axis: str, y0: float = Y0) -> list[str]:
    """The tick labels under the x axis (14 px below it) or left of the y axis (6 px left of it), in drawing order."""
    at = ("y", f"{y0 + 14:.1f}") if axis == "x" else ("x", f"{X0 - 6:.1f}")
    return [t.text for t in root.iter(f"{NS}text") if t.get(at[0]) == at[1]]


def test_nice_ticks_by_hand():
    assert charts.nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]  # raw step 2 is itself round: not 2.5
    assert charts.nice_ticks(0, 5) == [0, 1, 2, 3, 4, 5]  # raw step 1
    assert charts.nice_ticks(12, 31) == [10, 15, 20, 25, 30, 35]  # raw 3.8 -> 5, from the multiple of 5 below 12
    assert charts.nice_ticks(3, 3) == [3, 4, 5, 6]  # one value: a span as wide as it, from it
    assert charts.nice_ticks(0, 0) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])  # zero: a span of 1
    assert charts.nice_ticks(0, 0, integer=True) == [0, 1]
    assert charts.nice_ticks(0, 10, n=1) == [0, 10] and charts.nice_ticks(0, 10, n=0) == [0, 10]
    assert charts.nice_ticks(0, math.inf) == [0.0] and charts.nice_ticks(math.nan, 1) == [0.0]


def test_axes_map_data_onto_the_plot_box_and_widen_an_empty_range():
    ax = charts.Axes(charts.Svg("t"), 2.0, 6.0, 10.0, 30.0)
    assert (ax.x(2.0), ax.x(6.0), ax.x(3.0)) == (X0, X1, X0 + 0.25 * (X1 - X0))
    assert (ax.y(10.0), ax.y(30.0), ax.y(15.0)) == (Y0, Y_TOP, Y0 - 0.25 * (Y0 - Y_TOP))
    flat = charts.Axes(charts.Svg("t"), 2.0, 2.0, 5.0, 5.0)  # one value: a span of 1 from it, not a division by zero
    assert (flat.x(2.5), flat.y(5.5)) == ((X0 + X1) / 2, (Y0 + Y_TOP) / 2)


def test_histogram_bars_stack_where_their_scores_are():
    """Scores 0, 0, 0 (FAIL) and 3 (FAIL), threshold 1.5: 30 bins 0.1 wide over [0, 3]; bin 0 holds 2 PASS with a FAIL
    stacked on them, the last bin (3 is its closed right end) a FAIL. Counts 3 tall: ticks 0-3, 60 px a part."""
    root = parse(charts.histogram([(0.0, "PASS"), (0.0, "PASS"), (0.0, "FAIL"), (3.0, "FAIL")], [1.5], _))
    bin_w = (X1 - X0) / 30
    part = (Y0 - Y_TOP) / 3
    assert rects(root, charts.PASS_C, charts.FAIL_C) == [
        (round(X0 + 0.5, 1), round(Y0 - 2 * part, 1), round(bin_w - 1, 1), round(2 * part, 1), charts.PASS_C),
        (round(X0 + 0.5, 1), round(Y0 - 3 * part, 1), round(bin_w - 1, 1), round(part, 1), charts.FAIL_C),
        (round(X0 + 29 * bin_w + 0.5, 1), round(Y0 - part, 1), round(bin_w - 1, 1), round(part, 1), charts.FAIL_C)]
    line = next(ln for ln in root.iter(f"{NS}line") if ln.get("stroke") == charts.LIMIT_C and ln.get("y1") != ln.get("y2"))
    assert float(line.get("x1")) == (X0 + X1) / 2 and (float(line.get("y1")), float(line.get("y2"))) == (Y_TOP, Y0)
    assert axis_labels(root, "y") == ["0", "1", "2", "3"]  # the count axis: whole parts up to the tallest bar
    assert axis_labels(root, "x") == ["0", "0.5", "1", "1.5", "2", "2.5", "3"]  # ticks at lo and hi are inside: labelled
    assert root.find(f"{NS}title").text == "Score histogram with threshold"  # no title given: the default
    assert parse(charts.histogram([(0.0, "PASS")], [1.0], _, title="Mine")).find(f"{NS}title").text == "Mine"


def test_histogram_of_one_value_spans_half_a_unit_each_side():
    root = parse(charts.histogram([(1.0, "PASS")] * 3, [1.0], _))
    line = next(ln for ln in root.iter(f"{NS}line") if ln.get("stroke") == charts.LIMIT_C and ln.get("y1") != ln.get("y2"))
    assert float(line.get("x1")) == (X0 + X1) / 2  # [0.5, 1.5]: the threshold in the middle
    assert axis_labels(root, "x") == ["0.6", "0.8", "1", "1.2", "1.4"]  # ticks 0.2 apart inside [0.5, 1.5]
    bin_w = (X1 - X0) / 30  # a thirtieth of the span (1.5 - 0.5), not of anything else
    [(x, y, width, height, fill)] = rects(root, charts.PASS_C, charts.FAIL_C)
    assert (y, width, height, fill) == (Y_TOP, round(bin_w - 1, 1), Y0 - Y_TOP, charts.PASS_C)  # 3 of 3: full height
    assert x - 0.5 <= (X0 + X1) / 2 <= x - 0.5 + bin_w  # the bar holds the score 1.0, mid-axis


def test_histogram_turns_log_when_a_fail_bin_is_under_one_percent_of_the_tallest():
    """101 PASS at 0 and 1 FAIL at 3: 1 < 101 / 100, a log count axis 0, 1, 10, 100, 1,000 (log10(c + 1) high), the
    bars side by side from zero. 100 PASS and 1 FAIL: 1 is not under 1 %, the axis stays linear."""
    root = parse(charts.histogram([(0.0, "PASS")] * 101 + [(3.0, "FAIL")], [1.5], _))
    assert "Parts (log scale)" in texts(root)
    assert axis_labels(root, "y") == ["0", "1", "10", "100", "1,000"]
    top = math.log10(1001)
    bin_w = (X1 - X0) / 30

    def h(c: int) -> float:
        return math.log10(c + 1) / top * (Y0 - Y_TOP)

    assert rects(root, charts.PASS_C, charts.FAIL_C) == [
        (round(X0 + 0.5, 1), round(Y0 - h(101), 1), round(bin_w / 2 - 1, 1), round(h(101), 1), charts.PASS_C),
        (round(X0 + 29.5 * bin_w + 0.5, 1), round(Y0 - h(1), 1), round(bin_w / 2 - 1, 1), round(h(1), 1), charts.FAIL_C)]
    assert "Parts (log scale)" not in texts(parse(charts.histogram([(0.0, "PASS")] * 100 + [(3.0, "FAIL")], [1.5], _)))


def test_histogram_draws_the_first_three_thresholds_labelled_beside_their_lines():
    scores = [(0.0, "PASS"), (10.0, "FAIL")]
    root = parse(charts.histogram(scores, [2.0, 5.0, 8.0, 9.0], _))
    lines = [float(ln.get("x1")) for ln in root.iter(f"{NS}line") if ln.get("stroke") == charts.LIMIT_C and ln.get("y1") != ln.get("y2")]
    assert lines == [round(X0 + t / 10 * (X1 - X0), 1) for t in (2.0, 5.0, 8.0)]  # the fourth is not drawn
    labels = {t.text: float(t.get("x")) for t in root.iter(f"{NS}text") if (t.text or "").startswith("Threshold ")}
    assert sorted(labels) == ["Threshold 2", "Threshold 5", "Threshold 8"]
    for name, x in zip(("Threshold 2", "Threshold 5", "Threshold 8"), lines, strict=True):
        assert x < labels[name] <= x + 6, name  # just right of its own line
    edge = parse(charts.histogram(scores, [10.0], _))
    label = next(t for t in edge.iter(f"{NS}text") if (t.text or "").startswith("Threshold "))
    end = float(label.get("x")) + charts.text_width(label.text)
    assert X1 - 6 <= end < X1  # at the right edge: just left of its line


def test_roc_curve_and_operating_point_by_hand():
    """300 high: y from 254 (0 %) to 24 (100 %); x from 56 (0 %) to 624 (100 %)."""
    y0 = 300.0 - 46
    root = parse(charts.roc([0.0, 0.5, 1.0], [0.0, 1.0, 1.0], (0.25, 0.75), _))
    assert root.get("viewBox") == "0 0 680 300"
    assert root.find(f"{NS}polyline").get("points") == f"{X0:.1f},{y0:.1f} {(X0 + X1) / 2:.1f},{Y_TOP:.1f} {X1:.1f},{Y_TOP:.1f}"
    point = root.find(f"{NS}circle")
    assert (float(point.get("cx")), float(point.get("cy"))) == (round(X0 + 0.25 * (X1 - X0), 1), round(y0 - 0.75 * (y0 - Y_TOP), 1))
    chance = next(ln for ln in root.iter(f"{NS}line") if ln.get("stroke-dasharray") == "4 3" and ln.get("x1") != ln.get("x2")
                  and float(ln.get("y1")) != float(ln.get("y2")))
    assert [float(chance.get(k)) for k in ("x1", "y1", "x2", "y2")] == [X0, y0, X1, Y_TOP]
    labels = texts(root)
    for pct in (0, 20, 40, 60, 80, 100):
        assert labels.count(f"{pct}%") == 2, pct  # on both axes
    tick_x = [float(t.get("x")) for t in root.iter(f"{NS}text") if t.get("y") == f"{y0 + 14:.1f}"]
    assert tick_x == [round(X0 + f * (X1 - X0), 1) for f in (0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    assert axis_labels(root, "y", y0) == ["0%", "20%", "40%", "60%", "80%", "100%"]
    # all scores tied: one threshold step, two corners, still a curve
    assert charts.roc([0.0, 1.0], [0.0, 1.0], None, _) is not None and charts.roc([0.0], [0.0], None, _) is None


def test_threshold_labels_share_a_row_only_with_4_px_between_them():
    """"Threshold 2" is 11 characters, 66 px at 10 px: it ends 70 px right of its line. Thresholds 1.2 apart on a 0-10
    axis are 68.2 px apart, and the next label would start 2 px after it ends: a row below. 2 apart (113.6 px): one row."""
    scores = [(0.0, "PASS"), (10.0, "FAIL")]

    def rows(*thresholds: float) -> dict[str, str]:
        root = parse(charts.histogram(scores, list(thresholds), _))
        return {t.text: t.get("y") for t in root.iter(f"{NS}text") if (t.text or "").startswith("Threshold ")}

    close = rows(2.0, 3.2)
    assert sorted(close) == ["Threshold 2", "Threshold 3.2"] and close["Threshold 2"] != close["Threshold 3.2"]
    apart = rows(2.0, 4.0)
    assert apart["Threshold 2"] == apart["Threshold 4"]


def test_histogram_titles_its_count_axis_by_the_scale_it_draws():
    """The validation report counts images: "Images" on a linear axis, "Images (log scale)" on a log one."""
    axis = ("Images", "Images (log scale)")
    linear = texts(parse(charts.histogram([(0.0, "PASS")] * 3 + [(3.0, "FAIL")], [1.5], _, axis=axis)))
    assert "Images" in linear and "Images (log scale)" not in linear
    log = texts(parse(charts.histogram([(0.0, "PASS")] * 101 + [(3.0, "FAIL")], [1.5], _, axis=axis)))
    assert "Images (log scale)" in log and "Images" not in log


def test_a_threshold_label_near_the_right_edge_never_runs_past_it():
    for t in np.linspace(8.0, 10.0, 41):  # 2.8 px apart: every place where a label right of its line would cross the edge
        root = parse(charts.histogram([(0.0, "PASS"), (10.0, "FAIL")], [float(t)], _))
        label = next(x for x in root.iter(f"{NS}text") if (x.text or "").startswith("Threshold "))
        assert X0 < float(label.get("x")) and float(label.get("x")) + charts.text_width(label.text) <= X1, t


def test_an_intervals_lower_bound_under_the_first_step_reads_zero_not_raised_to_it():
    """1 escape in 2,500 defects: Wilson's 95 % interval is 0.007 % – 0.226 %, which read '0.1% (0.1% – 0.2%)', an interval
    starting 14 times higher than the true one; the rate itself still reads 0.1 %, never 0.0 % (it is not none)."""
    lo, hi = textbook_wilson(1, 2500)
    assert 100 * lo < 0.05 and 0.15 < 100 * hi < 0.25  # by hand: 0.00706 % and 0.2262 %
    run = run_of([0.5] + [2.0] * 2499 + [0.0] * 10, ["crack"] * 2500 + ["good"] * 10)
    decision = section(validation_html(run, EN), "decision")
    assert '0.1% <span class="muted">(0.0% – 0.2%)</span>' in decision, decision[:2000]
    none = section(validation_html(run_of([2.0] * 50 + [0.0] * 10, ["crack"] * 50 + ["good"] * 10), EN), "decision")
    assert '0.0% <span class="muted">(0.0% – 7.1%)</span>' in none  # docs/reports.md's example, unchanged
