"""Charts as small hand-written inline SVG: crisp in print, no JavaScript, no plotting library to import.

Every label that could come from a record is escaped; colours are paired with line styles so charts
still read in black-and-white print.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from markupsafe import Markup, escape

from reports.numbers import STYLES, Numbers, nearest
from reports.records import Subgroup
from reports.zones import Zone, zone_label

W, H = 680, 250
LEFT, RIGHT, TOP, BOTTOM = 56, 56, 24, 46
# PASS_C is light where FAIL_C is dark: the CSS's #2e7d32 for PASS prints as the same grey as FAIL_C (and looks alike to a
# red-green colour-blind reader), so a histogram bar's FAIL part could not be told from its PASS part on a black-and-white copy
PASS_C, FAIL_C, INK, GRID, LIMIT_C, ACCENT = "#81c784", "#c62828", "#263238", "#cfd8dc", "#e65100", "#1565c0"
# a threshold's label in LIMIT_C's hue, dark enough to read: LIMIT_C itself is 3.8:1 on white, under WCAG AA's 4.5:1 for text
LABEL_C = "#a84300"
Gettext = Callable[[str], str]
ENGLISH = STYLES["en"]


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About n round-numbered ticks covering [lo, hi] (whole numbers only with `integer`, for counts)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw and not (integer and (m * mag) % 1))
    first = math.floor(lo / step) * step
    return [round(first + i * step, 10) for i in range(int(math.ceil((hi - first) / step)) + 1)]


class Svg:
    """An SVG document built element by element; attribute values and text are escaped."""

    def __init__(self, title: str, width: int = W, height: int = H) -> None:
        self.parts: list[str] = []
        self.title, self.width, self.height = title, width, height

    def add(self, tag: str, text: str | None = None, **attrs: object) -> None:
        a = " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items() if v is not None)
        self.parts.append(f"<{tag} {a}>{escape(text)}</{tag}>" if text is not None else f"<{tag} {a}/>")

    def text(self, x: float, y: float, text: str, anchor: str = "middle", size: int = 11, **attrs: object) -> None:
        self.add("text", text, x=f"{x:.1f}", y=f"{y:.1f}", text_anchor=anchor, font_size=size, **attrs)

    def markup(self) -> Markup:
        body = "".join(self.parts)
        return Markup(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" role="img"'
                      f' font-family="sans-serif" fill="{INK}"><title>{escape(self.title)}</title>{body}</svg>')


class Axes:
    """Maps data to the plot area of an Svg and draws gridlines with labels."""

    def __init__(self, svg: Svg, x0: float, x1: float, y0: float, y1: float) -> None:
        self.svg, self.x0, self.x1, self.y0, self.y1 = svg, x0, x1 if x1 > x0 else x0 + 1, y0, y1 if y1 > y0 else y0 + 1
        self.left, self.right, self.top, self.bottom = LEFT, svg.width - RIGHT, TOP, svg.height - BOTTOM

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def y_grid(self, ticks: Sequence[float], label: Callable[[float], str], title: str | None = None) -> None:
        for t in ticks:
            self.svg.add("line", x1=self.left, x2=self.right, y1=f"{self.y(t):.1f}", y2=f"{self.y(t):.1f}", stroke=GRID, stroke_width=1)
            self.svg.text(self.left - 6, self.y(t) + 4, label(t), anchor="end", size=10)
        if title:
            self.svg.text(14, (self.top + self.bottom) / 2, title, size=11, transform=f"rotate(-90 14 {(self.top + self.bottom) / 2:.1f})")

    def right_labels(self, ticks: Sequence[float], to_y: Callable[[float], float], label: Callable[[float], str], title: str) -> None:
        for t in ticks:
            self.svg.text(self.right + 6, to_y(t) + 4, label(t), anchor="start", size=10)
        x = self.svg.width - 12
        self.svg.text(x, (self.top + self.bottom) / 2, title, size=11, transform=f"rotate(90 {x} {(self.top + self.bottom) / 2:.1f})")

    def frame(self, x_title: str | None = None) -> None:
        self.svg.add("line", x1=self.left, x2=self.right, y1=self.bottom, y2=self.bottom, stroke=INK, stroke_width=1)
        self.svg.add("line", x1=self.left, x2=self.left, y1=self.top, y2=self.bottom, stroke=INK, stroke_width=1)
        if x_title:
            self.svg.text((self.left + self.right) / 2, self.svg.height - 6, x_title, size=11)


def text_width(text: str, size: int = 10) -> float:
    """Rough rendered width: CJK characters are about twice as wide as Latin ones."""
    return sum(size if ord(c) >= 0x2E80 else 0.6 * size for c in text)


def legend(svg: Svg, items: Sequence[tuple[str, str, str | None]], x: float, y: float = 12) -> None:
    """Items (label, colour, dash pattern or None for a filled box) in a row ending at x."""
    for label, colour, dash in reversed(items):
        x -= text_width(label) + 30
        if dash is None:
            svg.add("rect", x=f"{x:.1f}", y=y - 8, width=10, height=10, fill=colour)
        else:
            svg.add("line", x1=f"{x - 4:.1f}", x2=f"{x + 12:.1f}", y1=y - 3, y2=y - 3, stroke=colour, stroke_width=2, stroke_dasharray=dash or None)
        svg.text(x + 15, y + 1, label, anchor="start", size=10)


SLANT = math.sqrt(0.5)  # sin and cos of a slanted label's 45 degrees
SLANT_MAX = 160  # the longest slanted label (about 30 characters): a longer name ends in "…" (the table below holds it whole)


def fit(text: str, room: float, size: int = 10) -> str:
    """`text`, cut to end in "…" where it is wider than `room`."""
    while text_width(text, size) > room and len(text) > 3:
        text = text[:-2] + "…"
    return text


def pareto(counts: Sequence[tuple[str, int]], _: Gettext, num: Numbers = ENGLISH) -> Markup | None:
    """Failed parts by defect type, largest first, with the cumulative share as a line."""
    if not counts:
        return None
    # names too wide for their bar's slot are slanted at 45 degrees, ending under their bar, and the chart grows downward
    # to hold them: 13 types left 44 px a slot, and "contamination", "scratch" read "conta…", "scrat…"
    slot = (W - LEFT - RIGHT) / len(counts)
    slanted = any(text_width(name) > slot - 4 for name, _c in counts)
    size = 9 if slanted else 10
    labels = [fit(name, min(SLANT_MAX, (LEFT + (i + 0.5) * slot + 1) / SLANT) if slanted else slot - 4, size)
              for i, (name, _c) in enumerate(counts)]  # a slanted name starts no further left than the chart
    drop = math.ceil(max(text_width(t, size) for t in labels) * SLANT + 24 - BOTTOM) if slanted else 0
    svg = Svg(_("Pareto of failed parts by defect type"), height=H + max(drop, 0))
    total = sum(c for _t, c in counts)
    ticks = nice_ticks(0, max(c for _t, c in counts), integer=True)
    ax = Axes(svg, 0, len(counts), 0, ticks[-1])
    ax.bottom -= max(drop, 0)  # the plot keeps its height above the names
    ax.y_grid(ticks, num.tick, title=_("Parts"))
    cum, points = 0, []
    for i, ((_name, count), label) in enumerate(zip(counts, labels, strict=True)):
        cum += count
        x = ax.left + i * slot
        svg.add("rect", x=f"{x + slot * 0.15:.1f}", y=f"{ax.y(count):.1f}", width=f"{slot * 0.7:.1f}", height=f"{ax.bottom - ax.y(count):.1f}", fill=FAIL_C)
        svg.text(x + slot / 2, ax.y(count) - 4, num.count(count), size=10)
        if slanted:
            at = f"{x + slot / 2 + 3:.1f} {ax.bottom + 10:.1f}"
            svg.text(x + slot / 2 + 3, ax.bottom + 10, label, anchor="end", size=size, transform=f"rotate(-45 {at})")
        else:
            svg.text(x + slot / 2, ax.bottom + 14, label, size=size)
        points.append((x + slot / 2, ax.bottom - cum / total * (ax.bottom - ax.top)))
    svg.add("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points), fill="none", stroke=INK, stroke_width=1.5, stroke_dasharray="5 3")
    for x, y in points:
        svg.add("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=2.5, fill=INK)
    ax.right_labels([0, 25, 50, 75, 100], lambda v: ax.bottom - v / 100 * (ax.bottom - ax.top), lambda v: num.percent(v, 0), _("Cumulative share"))
    ax.frame()
    legend(svg, [(_("Failed parts"), FAIL_C, None), (_("Cumulative share"), INK, "5 3")], ax.right)
    return svg.markup()


def histogram(scores: Sequence[tuple[float, str]], thresholds: Sequence[float], _: Gettext, num: Numbers = ENGLISH, bins: int = 30,
              classes: tuple[str, str] | None = None, title: str | None = None, axis: tuple[str, str] | None = None) -> Markup | None:
    """Score distribution, passed and failed parts stacked, with the thresholds in use as vertical lines (the first three
    of `thresholds`: give them most used first), each labelled apart from every score and other threshold. `classes`: the
    legend's names of the two kinds (default PASS and FAIL; a score's kind is "FAIL" or anything else); `axis`: what is
    counted, on a linear and on a log scale (default parts)."""
    if not scores:
        return None
    values = [s for s, _v in scores] + list(thresholds)
    lo, hi = min(values), max(values)
    if hi <= lo:
        # half a unit each side, or a millionth of the value where rounding loses half a unit: a lone score of 1e17 (a
        # damaged record) gave bins of no width, and the report a ZeroDivisionError
        pad = max(0.5, abs(lo) * 1e-6)
        lo, hi = lo - pad, hi + pad
    width = (hi - lo) / bins
    passed, failed = [0] * bins, [0] * bins
    for s, verdict in scores:
        i = min(int((s - lo) / width), bins - 1)
        (failed if verdict == "FAIL" else passed)[i] += 1
    svg = Svg(title or _("Score histogram with threshold"))
    tallest = max(p + f for p, f in zip(passed, failed, strict=True))
    # a log scale where a bin of failed parts would be under 1 % of the tallest bar: a shift's FAILs, a few hundred a
    # bin beside 40,000 PASSes in the tallest, were slivers no one could read. There the two stand side by side,
    # each from zero (stacked on a log axis, a FAIL segment's height would say nothing of its count).
    log = any(0 < f < tallest / 100 for f in failed)
    if log:
        counts = [0] + [10**k for k in range(math.ceil(math.log10(tallest)) + 1)]
        height = lambda c: math.log10(c + 1)  # noqa: E731
        ax = Axes(svg, lo, hi, 0, height(counts[-1]))
        ax.y_grid([height(c) for c in counts], lambda v: num.tick(round(10**v - 1)), title=axis[1] if axis else _("Parts (log scale)"))
    else:
        ticks, height = nice_ticks(0, tallest, integer=True), float
        ax = Axes(svg, lo, hi, 0, ticks[-1])
        ax.y_grid(ticks, num.tick, title=axis[0] if axis else _("Parts"))
    for i in range(bins):
        x0, x1 = ax.x(lo + i * width), ax.x(lo + (i + 1) * width)
        mid = (x0 + x1) / 2
        bars = ([(passed[i], 0, x0, mid, PASS_C), (failed[i], 0, mid, x1, FAIL_C)] if log
                else [(passed[i], 0, x0, x1, PASS_C), (failed[i], passed[i], x0, x1, FAIL_C)])
        for count, base, left, right, colour in bars:
            if count:
                svg.add("rect", x=f"{left + 0.5:.1f}", y=f"{ax.y(height(base + count)):.1f}", width=f"{max(right - left - 1, 0.5):.1f}",
                        height=f"{ax.y(height(base)) - ax.y(height(base + count)):.1f}", fill=colour)
    for t in nice_ticks(lo, hi, 6):
        if lo <= t <= hi:
            svg.text(ax.x(t), ax.bottom + 14, num.tick(t), size=10)
    row_ends: list[float] = []  # where each row of threshold labels ends: close thresholds' labels go on separate rows
    for t in sorted(thresholds[:3]):
        x = ax.x(t)
        svg.add("line", x1=f"{x:.1f}", x2=f"{x:.1f}", y1=ax.top, y2=ax.bottom, stroke=LIMIT_C, stroke_width=2, stroke_dasharray="6 3")
        label = f"{_('Threshold')} {num.apart(t, nearest(t, values))}"  # never the same text as a score or another threshold
        width = text_width(label)
        start = x + 4 if x + 4 + width <= ax.right else x - 4 - width  # left of its line at the right edge
        row = next((i for i, end in enumerate(row_ends) if end + 4 < start), len(row_ends))
        row_ends[row:row + 1] = [start + width]
        svg.text(start, ax.top + 10 + 12 * row, label, anchor="start", size=10, fill=LABEL_C)
    ax.frame(_("Anomaly score"))
    passed_name, failed_name = classes or (_("PASS"), _("FAIL"))
    legend(svg, [(passed_name, PASS_C, None), (failed_name, FAIL_C, None), (_("Threshold"), LIMIT_C, "6 3")], ax.right)
    return svg.markup()


def roc(fpr: Sequence[float], tpr: Sequence[float], point: tuple[float, float] | None, _: Gettext, num: Numbers = ENGLISH) -> Markup | None:
    """The ROC curve (detection rate against false-alarm rate, both in %), chance as a dashed diagonal, and the
    stored threshold's operating point."""
    if len(fpr) < 2:
        return None
    svg = Svg(_("ROC curve"), height=300)
    ax = Axes(svg, 0, 100, 0, 100)
    ticks = [0, 20, 40, 60, 80, 100]
    ax.y_grid(ticks, lambda v: num.percent(v, 0), title=_("Defects caught"))
    for t in ticks:
        svg.text(ax.x(t), ax.bottom + 14, num.percent(t, 0), size=10)
    svg.add("line", x1=ax.x(0), x2=ax.x(100), y1=ax.y(0), y2=ax.y(100), stroke=GRID, stroke_width=1.5, stroke_dasharray="4 3")
    svg.add("polyline", points=" ".join(f"{ax.x(100 * f):.1f},{ax.y(100 * t):.1f}" for f, t in zip(fpr, tpr, strict=True)),
            fill="none", stroke=ACCENT, stroke_width=2)
    items = [(_("ROC curve"), ACCENT, ""), (_("Chance"), GRID, "4 3")]
    if point is not None:
        x, y = ax.x(100 * point[0]), ax.y(100 * point[1])
        svg.add("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=5, fill=LIMIT_C, stroke=INK)
        svg.text(x + 8, y + 14, _("Threshold"), anchor="start", size=10, fill=LABEL_C)
        items.append((_("Threshold"), LIMIT_C, None))
    ax.frame(_("Good parts failed (false alarms)"))
    legend(svg, items, ax.right)
    return svg.markup()


def _time_label(t: datetime, width: timedelta, span: timedelta, z: Zone, zoned: bool = False) -> str:
    """`zoned`: with the zone's abbreviation, where the chart spans a clock change (the fall-back night read 02:00 twice)."""
    t = t.astimezone(z)
    if width >= timedelta(days=1):
        return t.strftime("%m-%d")
    label = t.strftime("%m-%d %H:%M") if span > timedelta(days=1) else t.strftime("%H:%M")
    return f"{label} {t.tzname()}" if zoned and t.tzname() else label


def _offset(t: datetime, z: Zone) -> timedelta | None:
    """t's UTC offset on the zone's clock; for the last bin's end, held at the calendar's last instant (a report --to
    9999-12-31 in Tokyo, whose clock is in the year 10000 then), that of a day before."""
    try:
        return t.astimezone(z).utcoffset()
    except OverflowError:
        return (t - timedelta(days=1)).astimezone(z).utcoffset()


def _x_time_axis(svg: Svg, ax: Axes, groups: Sequence[Subgroup], slot: float, _: Gettext, z: Zone) -> None:
    """Time labels under the subgroups on the zone's clock, and the axis titled with the zone."""
    span = groups[-1].end - groups[0].start
    zoned = _offset(groups[0].start, z) != _offset(groups[-1].end, z)
    every = max(1, math.ceil(len(groups) / (6 if zoned else 8)))  # longer labels: fewer of them
    for i, g in enumerate(groups):
        if i % every == 0:
            svg.text(ax.left + i * slot + slot / 2, ax.bottom + 14, _time_label(g.start, g.end - g.start, span, z, zoned), size=10)
    ax.frame(_("Time (%(zone)s)") % {"zone": zone_label(z, groups[0].start)})


def p_chart(groups: Sequence[Subgroup], p_bar: float | None, _: Gettext, num: Numbers = ENGLISH, z: Zone = timezone.utc) -> Markup | None:
    """Fraction failed per time subgroup, with the centre line and 3-sigma limits for each subgroup's size."""
    if not groups or p_bar is None or not any(g.n for g in groups):
        return None
    svg = Svg(_("Defect rate over time (p-chart)"))
    top = max([g.p or 0.0 for g in groups] + [g.ucl or 0.0 for g in groups] + [p_bar * 1.5, 0.01])
    ticks = nice_ticks(0, min(top * 1.05, 1.0))
    ax = Axes(svg, 0, len(groups), 0, ticks[-1])
    ax.y_grid(ticks, label=lambda v: num.significant(100 * v, 3) + num.percent_sign, title=_("Fraction failed"))
    slot = (ax.right - ax.left) / len(groups)
    svg.add("line", x1=ax.left, x2=ax.right, y1=f"{ax.y(p_bar):.1f}", y2=f"{ax.y(p_bar):.1f}", stroke=ACCENT, stroke_width=1.5)
    for attr in ("ucl", "lcl"):
        path = []
        for i, g in enumerate(groups):
            v = getattr(g, attr)
            if v is None:
                continue
            x0, x1 = ax.left + i * slot, ax.left + (i + 1) * slot
            path.append(f"M{x0:.1f},{ax.y(v):.1f}H{x1:.1f}")
        if path:
            svg.add("path", d="".join(path), fill="none", stroke=LIMIT_C, stroke_width=1.5, stroke_dasharray="6 3")
    pts = [(ax.left + i * slot + slot / 2, ax.y(g.p), g) for i, g in enumerate(groups) if g.p is not None]
    svg.add("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y, _g in pts), fill="none", stroke=INK, stroke_width=1.2)
    for x, y, g in pts:
        bad = g.out_of_control
        svg.add("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=4.5 if bad else 3, fill=FAIL_C if bad else INK,
                stroke="#000" if bad else None)
    _x_time_axis(svg, ax, groups, slot, _, z)
    legend(svg, [(_("Fraction failed"), INK, ""), (_("Mean"), ACCENT, ""), (_("Control limits (3σ)"), LIMIT_C, "6 3")], ax.right)
    return svg.markup()


def throughput(groups: Sequence[Subgroup], _: Gettext, num: Numbers = ENGLISH, z: Zone = timezone.utc) -> Markup | None:
    """Parts per subgroup as bars, median and 95th-percentile latency as lines on the right axis."""
    if not groups or not any(g.n for g in groups):
        return None
    svg = Svg(_("Throughput and latency"))
    ticks = nice_ticks(0, max(g.n for g in groups), integer=True)
    ax = Axes(svg, 0, len(groups), 0, ticks[-1])
    ax.y_grid(ticks, num.tick, title=_("Parts per interval"))
    slot = (ax.right - ax.left) / len(groups)
    for i, g in enumerate(groups):
        if g.n:
            svg.add("rect", x=f"{ax.left + i * slot + slot * 0.15:.1f}", y=f"{ax.y(g.n):.1f}", width=f"{slot * 0.7:.1f}",
                    height=f"{ax.bottom - ax.y(g.n):.1f}", fill="#90a4ae")
    lat = [v for g in groups for v in (g.latency_median, g.latency_p95) if v is not None]
    if lat:
        lt = nice_ticks(0, max(lat), 5)

        def ly(v: float) -> float:
            return ax.bottom - v / lt[-1] * (ax.bottom - ax.top)

        for attr, dash in (("latency_median", None), ("latency_p95", "4 3")):
            pts = [(ax.left + i * slot + slot / 2, ly(getattr(g, attr))) for i, g in enumerate(groups) if getattr(g, attr) is not None]
            svg.add("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in pts), fill="none", stroke=ACCENT, stroke_width=1.8,
                    stroke_dasharray=dash)
        ax.right_labels(lt, ly, num.tick, _("Latency (ms)"))
    _x_time_axis(svg, ax, groups, slot, _, z)
    legend(svg, [(_("Parts"), "#90a4ae", None), (_("Median latency"), ACCENT, ""), (_("95th percentile"), ACCENT, "4 3")], ax.right)
    return svg.markup()


def score_gauge(score: float | None, threshold: float | None, verdict: str, _: Gettext, num: Numbers = ENGLISH) -> Markup | None:
    """One horizontal bar: where the score sits against the threshold."""
    if score is None:
        return None
    hi = max(score, threshold or score, 1e-9) * 1.25
    lo = min(0.0, score, threshold if threshold is not None else 0.0)
    svg = Svg(_("Score against threshold"), width=W, height=64)
    ax = Axes(svg, lo, hi, 0, 1)
    ax.top, ax.bottom = 16, 40
    svg.add("rect", x=ax.left, y=ax.top, width=ax.right - ax.left, height=ax.bottom - ax.top, fill="#eceff1", stroke=GRID)
    svg.add("rect", x=ax.left, y=ax.top, width=f"{max(ax.x(score) - ax.left, 1):.1f}", height=ax.bottom - ax.top,
            fill=FAIL_C if verdict == "FAIL" else PASS_C)
    svg.text(ax.left - 6, ax.bottom - 7, num.tick(lo), anchor="end", size=10)
    svg.text(min(ax.x(score), ax.right - 40) + 4, ax.top - 4, f"{_('Score')} {num.apart(score, threshold)}", anchor="start", size=11)
    if threshold is not None:
        svg.add("line", x1=f"{ax.x(threshold):.1f}", x2=f"{ax.x(threshold):.1f}", y1=ax.top - 4, y2=ax.bottom + 4, stroke=INK,
                stroke_width=2.5, stroke_dasharray="4 2")
        svg.text(ax.x(threshold), ax.bottom + 16, f"{_('Threshold')} {num.apart(threshold, score)}", size=11)
    return svg.markup()
