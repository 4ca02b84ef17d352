"""Plain result records -> what a report shows. Records may be old or partial: every field is optional here."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from reports.zones import iso_datetime

# Subgroup widths for the p-chart and throughput, smallest first: the first that gives at most MAX_SUBGROUPS wins.
SUBGROUP_WIDTHS = [timedelta(minutes=m) for m in (1, 5, 10, 15, 30, 60, 120, 240, 480, 1440, 10080)]
MAX_SUBGROUPS = 24
# the stages of a record's timings_ms in the order a part goes through them (the latency table's rows; "total" last)
PIPELINE = ("intake", "queue", "decode", "preprocess", "infer", "decision")


def apart(value: float, other: float | None, digits: int = 4) -> str:
    """`value` with the fewest significant digits (at least `digits`, and every integer digit) that tell it from
    `other`, so that a score just below its threshold never reads as equal to it; give both the same `other` pair, swapped."""
    digits = max(digits, len(str(int(abs(value)))) if math.isfinite(value) else digits)  # 123456.7 reads 123457, never 123500
    text = f"{value:.{digits}g}"
    while other is not None and value != other and digits < 17 and text == f"{other:.{digits}g}":
        digits += 1
        text = f"{value:.{digits}g}"
    return text


def as_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def as_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive ones are taken as UTC, as the store writes them); None for
    what is no time, or none UTC's calendar (years 1 to 9999) holds."""
    text = as_text(value)
    if not text:
        return None
    try:
        t = iso_datetime(text)
        # in the try: 0001-01-01T00:20+01:00 is before UTC's calendar, and one such record stopped its whole shift report
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


@dataclass
class Defect:
    type: str
    confidence: float | None
    box: tuple[int, int, int, int] | None
    area_px: float | None
    area_mm2: float | None
    severity: str | None
    peak: float | None
    located_by: str | None = None  # "map_peak": no pixel reached the pixel threshold (records from before: None)


# a QA review's reading of the machine's verdict (reviewed_*: of a verdict neither PASS nor FAIL)
OUTCOMES = ("false_alarm", "escape", "confirmed", "reviewed_good", "reviewed_defect")


@dataclass
class Review:
    """The last QA review of a part (`inspector review`), as the record keeps it."""

    outcome: str
    truth: str | None
    type: str | None
    by: str | None
    note: str | None
    time: datetime | None


@dataclass
class Inspection:
    """One record, normalised: wrong or missing values become None instead of errors."""

    id: str
    station: str | None
    serial: str | None
    timestamp: str | None
    time: datetime | None
    verdict: str
    score: float | None
    threshold: float | None
    defect_type: str | None
    type_confidence: float | None
    defects: list[Defect]
    width: int | None
    height: int | None
    image_sha256: str | None
    model: dict[str, str | None]
    timings_ms: dict[str, float]
    images: dict[str, str]
    source: str | None
    warnings: list[str] = field(default_factory=list)  # as the inspector wrote them (English)
    review: Review | None = None
    pixel_threshold: float | None = None  # what drew the defect regions (records before 2026-12-05 lack it)
    defects_found: int | None = None  # regions the map held, of which `defects` lists the most severe (older records lack it)

    @property
    def margin(self) -> float | None:
        """How far above (positive) or below the threshold the score is."""
        return None if self.score is None or self.threshold is None else self.score - self.threshold

    @property
    def total_ms(self) -> float | None:
        if "total" in self.timings_ms:
            return self.timings_ms["total"]
        return sum(self.timings_ms.values()) if self.timings_ms else None

    @property
    def regions(self) -> int:
        """How many defect regions were found: `defects` lists at most the 20 most severe."""
        return max(self.defects_found or 0, len(self.defects))

    @property
    def primary_type(self) -> str:
        """The defect type a failed part is counted under in the Pareto chart."""
        return self.defect_type or next((d.type for d in self.defects if d.type), None) or "unclassified"


def _box(value: Any) -> tuple[int, int, int, int] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    nums = [as_float(v) for v in value]
    return None if None in nums else tuple(int(v) for v in nums)  # type: ignore[return-value]


def _defect(d: Any) -> Defect | None:
    if not isinstance(d, dict):
        return None
    return Defect(type=as_text(d.get("type")) or "anomaly", confidence=as_float(d.get("confidence")), box=_box(d.get("box")),
                  area_px=as_float(d.get("area_px")), area_mm2=as_float(d.get("area_mm2")), severity=as_text(d.get("severity")),
                  peak=as_float(d.get("peak")), located_by=as_text(d.get("located_by")))


def _review(reviews: Any) -> Review | None:
    """The last well-formed review of a record's `reviews`."""
    for r in reversed(reviews if isinstance(reviews, list) else []):
        if isinstance(r, dict) and r.get("outcome") in OUTCOMES:
            return Review(outcome=r["outcome"], truth=as_text(r.get("truth")), type=as_text(r.get("type")), by=as_text(r.get("by")),
                          note=as_text(r.get("note")), time=parse_time(r.get("at")))
    return None


def inspection(record: dict[str, Any]) -> Inspection:
    record = record if isinstance(record, dict) else {}
    image = record.get("image") if isinstance(record.get("image"), dict) else {}
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    timings = record.get("timings_ms") if isinstance(record.get("timings_ms"), dict) else {}
    images = record.get("images") if isinstance(record.get("images"), dict) else {}
    defects = record.get("defects") if isinstance(record.get("defects"), list) else []
    width, height = as_float(image.get("width")), as_float(image.get("height"))
    return Inspection(
        id=as_text(record.get("inspection_id")) or "unknown",
        station=as_text(record.get("station")),
        serial=as_text(record.get("serial")),
        timestamp=as_text(record.get("timestamp")),
        time=parse_time(record.get("timestamp")),
        verdict=(as_text(record.get("verdict")) or "UNKNOWN").upper(),
        score=as_float(record.get("score")),
        threshold=as_float(record.get("threshold")),
        pixel_threshold=as_float(record.get("pixel_threshold")),
        defect_type=as_text(record.get("defect_type")),
        type_confidence=as_float(record.get("type_confidence")),
        defects=[d for d in map(_defect, defects) if d],
        defects_found=None if (found := as_float(record.get("defects_found"))) is None else int(found),
        width=None if width is None else int(width),
        height=None if height is None else int(height),
        image_sha256=as_text(image.get("sha256")),
        model={k: as_text(model.get(k)) for k in ("id", "backbone", "sha256", "runtime")},
        timings_ms={str(k): v for k, v in ((k, as_float(v)) for k, v in timings.items()) if v is not None},
        images={str(k): v for k, v in images.items() if isinstance(v, str) and v},
        source=as_text(record.get("source")),
        warnings=[w for w in map(as_text, record.get("warnings") if isinstance(record.get("warnings"), list) else []) if w],
        review=_review(record.get("reviews")),
    )


@dataclass
class Subgroup:
    """One time bin: parts inspected, parts failed, and the p-chart limits for its size."""

    start: datetime
    end: datetime
    n: int
    fails: int
    p: float | None
    ucl: float | None
    lcl: float | None
    latency_median: float | None
    latency_p95: float | None

    @property
    def out_of_control(self) -> bool:
        return self.p is not None and self.ucl is not None and (self.p > self.ucl or self.p < (self.lcl or 0.0))


@dataclass
class ShiftStats:
    total: int
    verdicts: dict[str, int]
    yield_pct: float | None
    start: datetime | None
    end: datetime | None
    defect_types: list[tuple[str, int]]
    scores: list[tuple[float, str]]
    thresholds: list[float]
    pixel_thresholds: list[float]  # what drew the regions: a change within the period moves them, not the verdicts
    p_bar: float | None
    subgroup_width: timedelta | None
    subgroups: list[Subgroup]
    parts_per_hour: float | None
    latency: list[dict[str, Any]]
    worst: list[Inspection]
    models: list[tuple[dict[str, str | None], int]]
    undated: int = 0
    unjudged: int = 0  # parts neither PASS nor FAIL (e.g. REVIEW): out of the yield, the histogram and the p-chart
    # serials (at one station) inspected more than once, and their inspections: each inspection counts as a part in the
    # totals, and nothing said so (SN-2 failed, then passed when inspected again: 2 parts, 1 FAIL)
    reinspected: tuple[int, int] = (0, 0)
    reviews: dict[str, int] = field(default_factory=dict)  # QA reviews by outcome (OUTCOMES order)
    warnings: list[tuple[str, int, int]] = field(default_factory=list)  # (a warning as written, parts with it, failed)
    # where the period had not ended when the report was made: then (or the latest part, if later), up to which its rate
    # is counted (a report of 06:00-14:00 made at 10:00 gave half the parts per hour, over the 4 hours still to come)
    until: datetime | None = None
    # where the period had not begun when the report was made: then. Its report read "No inspections were recorded in
    # this period" alone, to be signed for a shift still to come (a --from on the wrong day, a cron job's wrong date)
    before: datetime | None = None

    @property
    def reached(self) -> list[Subgroup]:
        """The time bins that had begun when the report was made (all of them, for a period that had ended)."""
        return [g for g in self.subgroups if self.until is None or g.start < self.until]

    @property
    def out_of_control(self) -> int:
        return sum(g.out_of_control for g in self.subgroups)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _subgroup_width(span: timedelta) -> timedelta:
    # beyond the widest width, whole multiples of it: a report over years still has at most MAX_SUBGROUPS
    widest = SUBGROUP_WIDTHS[-1]
    return next((w for w in SUBGROUP_WIDTHS if span / w <= MAX_SUBGROUPS), widest * math.ceil(span / widest / MAX_SUBGROUPS))


def _plus(t: datetime, width: timedelta) -> datetime:
    """t + width, held at the calendar's last instant (a report may run --to 9999-12-31)."""
    try:
        return t + width
    except OverflowError:
        return t.max.replace(tzinfo=t.tzinfo)


def _subgroups(parts: list[Inspection], start: datetime, end: datetime, p_bar: float | None,
               zone: tzinfo | None) -> tuple[timedelta, list[Subgroup]]:
    width = _subgroup_width(max(end - start, timedelta(minutes=1)))
    edges = _edges(start, end, width, zone)
    bins: list[list[Inspection]] = [[] for _ in edges]
    for part in parts:
        if part.time is not None and start <= part.time <= end:
            bins[max(0, bisect.bisect_right(edges, part.time) - 1)].append(part)
    groups = []
    for i, (t0, members) in enumerate(zip(edges, bins, strict=True)):
        n = len(members)
        fails = sum(m.verdict == "FAIL" for m in members)
        judged = sum(m.verdict in ("PASS", "FAIL") for m in members)  # as p_bar counts them: a REVIEW part is neither
        p = fails / judged if judged else None
        ucl = lcl = None
        if judged and p_bar is not None:
            sigma = math.sqrt(p_bar * (1.0 - p_bar) / judged)
            ucl, lcl = min(1.0, p_bar + 3 * sigma), max(0.0, p_bar - 3 * sigma)
        lat = [m.total_ms for m in members if m.total_ms is not None]
        t1 = edges[i + 1] if i + 1 < len(edges) else _plus(t0, width)
        groups.append(Subgroup(t0, t1, n, fails, p, ucl, lcl, percentile(lat, 50), percentile(lat, 95)))
    return width, groups


def _edges(start: datetime, end: datetime, width: timedelta, zone: tzinfo | None) -> list[datetime]:
    """Where the time bins start, as real instants: whole multiples of the width from midnight on the report's clock,
    so hourly bins start on the hour and daily ones at the plant's midnight, from the bin that holds `start`. Bins of an
    hour or less are steps of real time (the hour the clocks go back is two bins, each labelled with its own start);
    longer ones step on the wall clock (8-hour bins began at 23:00, 07:00 and 15:00 for the rest of a week after the
    clocks went back), so the bin that holds a change is an hour longer or shorter."""
    midnight = start.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    if width <= timedelta(hours=1):
        try:
            first = midnight.astimezone(timezone.utc)  # arithmetic on an aware time in a zone is on its wall clock
        except OverflowError:  # the plant's midnight before the calendar's first instant (--from 0001-01-01T01:00Z in Tokyo)
            first = start
        t = first + ((start - first) // width) * width
        return [t + i * width for i in range(max(1, math.ceil((end - t) / width)))]
    edges: list[datetime] = []
    k = 0
    while True:
        try:
            nxt = (midnight + k * width).astimezone(timezone.utc)
        except OverflowError:  # a report may run --to 9999-12-31 (or from 0001-01-01, its midnight before the calendar's)
            if edges:
                return edges
            nxt = start
        if edges and nxt >= end:
            return edges
        if nxt <= start:  # the bins before the one that holds the start are not shown
            edges = [nxt]
        else:
            edges.append(nxt)
        k += 1


def shift_stats(parts: list[Inspection], start: datetime | None = None, end: datetime | None = None, worst_n: int = 12,
                zone: tzinfo | None = timezone.utc, now: datetime | None = None) -> ShiftStats:
    """Everything the shift report shows, from normalised records in any order; time bins on `zone`'s clock. `now`
    (default: the clock's): a period that ends later is counted up to then (`ShiftStats.until`)."""
    verdicts = Counter(p.verdict for p in parts)
    judged = verdicts.get("PASS", 0) + verdicts.get("FAIL", 0)
    times = [p.time for p in parts if p.time is not None]
    start = start or (min(times) if times else None)
    end = end or (max(times) if times else None)
    until = before = None
    if end is not None:
        reached = max([now or datetime.now(timezone.utc), *times])  # a station's clock ahead of this one's: its parts stay in
        if end > reached and (start is None or reached >= start):
            until = reached
        elif start is not None and reached < start:
            before = reached
    p_bar = verdicts.get("FAIL", 0) / judged if judged else None
    width, groups = _subgroups(parts, start, end, p_bar, zone) if start and end and end >= start else (None, [])
    counted = until or end  # the time the rate is over: the charts show the whole period, the time to come empty
    hours = (counted - start).total_seconds() / 3600.0 if start and counted else 0.0
    stages: list[str] = [k for k in PIPELINE if any(k in p.timings_ms for p in parts)]
    for p in parts:  # a stage of another tool's records after the known ones, as they first come
        stages += [k for k in p.timings_ms if k not in stages and k != "total"]
    latency = []
    for stage in stages + (["total"] if any(p.timings_ms for p in parts) else []):
        vals = [p.total_ms if stage == "total" else p.timings_ms.get(stage) for p in parts]
        vals = [v for v in vals if v is not None]
        latency.append({"stage": stage, "median": percentile(vals, 50), "p95": percentile(vals, 95), "max": max(vals) if vals else None})
    ranked = sorted((p for p in parts if p.score is not None), key=lambda p: (p.verdict != "FAIL", -(p.margin if p.margin is not None else p.score)))
    models = Counter(tuple(sorted(p.model.items())) for p in parts if any(p.model.values()))
    return ShiftStats(
        total=len(parts),
        verdicts=dict(verdicts.most_common()),
        yield_pct=100.0 * verdicts.get("PASS", 0) / judged if judged else None,
        start=start,
        end=end,
        defect_types=Counter(p.primary_type for p in parts if p.verdict == "FAIL").most_common(),
        scores=[(p.score, p.verdict) for p in parts if p.score is not None and p.verdict in ("PASS", "FAIL")],
        thresholds=sorted({p.threshold for p in parts if p.threshold is not None}),
        pixel_thresholds=sorted({p.pixel_threshold for p in parts if p.pixel_threshold is not None}),
        p_bar=p_bar,
        subgroup_width=width,
        subgroups=groups,
        parts_per_hour=len(times) / hours if hours > 0 else None,
        latency=latency,
        worst=ranked[:worst_n],
        models=[(dict(m), n) for m, n in models.most_common()],
        undated=len(parts) - len(times),
        unjudged=len(parts) - judged,
        reinspected=reinspected(parts),
        reviews={o: n for o in OUTCOMES if (n := sum(p.review is not None and p.review.outcome == o for p in parts))},
        warnings=warning_counts(parts),
        until=until,
        before=before,
    )


def reinspected(parts: list[Inspection]) -> tuple[int, int]:
    """(serials inspected more than once at one station, their inspections): re-inspections the totals count as parts."""
    seen = Counter((p.station, p.serial) for p in parts if p.serial)
    again = [n for n in seen.values() if n > 1]
    return len(again), sum(again)


def warning_counts(parts: list[Inspection]) -> list[tuple[str, int, int]]:
    """(a warning's text, parts that carry it, of them failed), most parts first: one row per text, so that a size
    warning names the size its parts had."""
    rows: dict[str, list] = {}
    for p in parts:
        for text in dict.fromkeys(p.warnings):
            row = rows.setdefault(text, [text, 0, 0])
            row[1] += 1
            row[2] += p.verdict == "FAIL"
    return sorted((tuple(row) for row in rows.values()), key=lambda row: -row[1])
