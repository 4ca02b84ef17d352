"""Records -> self-contained HTML (Jinja2, autoescaped) -> PDF (WeasyPrint, only data: URLs fetched).

The HTML carries its CSS, charts (inline SVG) and images (JPEG data URIs), so it opens from a USB
stick with no network; the PDF is rendered from the very same HTML string.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from model.folders import dead_link, remove_stale_tmps, synced
from reports import charts
from reports.errors import ReportError
from reports.i18n import check_language, cjk_font, translations
from reports.images import THUMB_PX, data_uri
from reports.letterhead import Letterhead
from reports.names import safe_name
from reports.numbers import STYLES
from reports.records import Inspection, as_float, as_text, inspection, parse_time, shift_stats
from reports.warnings import translate_warning
from reports.zones import Zone, on_calendar, toward_calendar, zone, zone_label

PACKAGE = Path(__file__).parent
_FIRST = datetime.min.replace(tzinfo=timezone.utc)  # an undated part's stand-in time in a sort key (its flag puts it last)
FORMATS = ("html", "pdf")
WORST_N = 12
LONG_PART = 20  # a short name ("exp6_num_972") keeps its words together: it fits a line
MAX_FAILED_ROWS = 200  # the failed-parts and escapes tables of a shift report; beyond this a part of them, and a CSV of all
# Record values shown translated when they are one of these (anything else is shown as it is, escaped).
TRANSLATED_VALUES = ("PASS", "FAIL", "UNKNOWN", "unknown", "good", "checkpoint", "low", "medium", "high", "anomaly", "unclassified",
                     "scratch", "crack", "pit", "blowhole", "stain", "chip", "dent", "fray", "contamination",
                     "break", "uneven",  # Magnetic Tile's types, beside blowhole, crack, fray
                     "crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches",  # NEU steel's
                     "texture", "cutpaste", "transplant",  # the generated defects' types (`inspector synth`, the demo)
                     "decode", "preprocess", "infer", "decision", "intake", "queue", "total",  # the stages of timings_ms
                     "ok", "degraded", "failing")  # the daemon's status (the live view)


def in_language(name: str, lang: str) -> str:
    """A report's file name in its language: English keeps the bare name, another adds `-zh`, `-es`, so that a report
    of the same parts in another language (the operators' and QA's) never overwrites it."""
    return name if lang == "en" else f"{name}-{lang}"


def inspection_filename(inspection_id: str, lang: str = "en") -> str:
    return in_language(f"inspection-{safe_name(inspection_id)}", lang)


def translate_value(gettext: charts.Gettext, value: Any) -> Any:
    """A record value in the report's language if it is one we know (never gettext() on arbitrary text: Jinja marks its result safe)."""
    return gettext(value) if value in TRANSLATED_VALUES else value


def _time(value: datetime | None, z: Zone = timezone.utc, with_seconds: bool = True) -> str:
    """A time on the report's clock, its zone's abbreviation beside it (CET or CEST, as the date has it)."""
    if value is None:
        return "—"
    # a record's time the zone's clock cannot show (9999-12-31T23:00Z is in the year 10000 in Tokyo) is shown in UTC,
    # which says so: its inspection report stopped with a traceback
    t = value.astimezone(z if on_calendar(value, z) else timezone.utc)
    return f"{t.year:04d}" + t.strftime("-%m-%d %H:%M:%S %Z" if with_seconds else "-%m-%d %H:%M %Z")  # %Y: year 1 read "1-01-02"


def zone_name(z: Zone) -> str | None:
    """The zone's IANA name, printed once beside a page's first time: an abbreviation alone can name several zones (CST
    is China's, and the US's Central time, 14 hours apart; IST India's, Ireland's and Israel's). None for UTC."""
    if not isinstance(z, ZoneInfo) or z.key in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"):
        return None
    return z.key


def breakable(text: Any) -> Markup:
    """`text` (an identifier, a file name) with line-break chances after each / and : and before its extension, and in a
    part between them longer than LONG_PART after each _ between two words too, where a narrow cell wraps it: without
    them a PDF cut it within a word ("onnxruntime:CPUExecutio nProvider", "exp6_num_972.jp g", "..._2026_12_0 7_shift...")."""
    def words(m: re.Match) -> str:
        part = m.group(0)
        return re.sub(r"(?<=[^\W_])_(?=[^\W_])", "_<wbr>", part) if len(part) > LONG_PART else part

    marked = re.sub(r"[^/:]+", words, str(escape(text)))
    marked = re.sub(r"([/:])", r"\1<wbr>", marked)
    return Markup(re.sub(r"\.(\w{1,5})$", r"<wbr>.\1", marked))


def serial(text: Any) -> Markup:
    """A serial with a line-break chance after each - _ . / between two letters or digits, which a narrow cell (a shift table's)
    takes before breaking anywhere: "SN-261126-00003" broke as "SN-2611|26-00003" beside a long comment."""
    return Markup(re.sub(r"(?<=\w[-_./])(?=\w)", "<wbr>", str(escape(text))))


@cache
def environment(lang: str) -> Environment:
    """One Jinja2 environment per language (templates parsed once per process)."""
    env = Environment(loader=FileSystemLoader(PACKAGE / "templates"), autoescape=True, undefined=StrictUndefined,
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    t = translations(lang)
    env.install_gettext_translations(t, newstyle=True)
    num = STYLES[lang]
    env.filters.update(num=num.significant, apart=num.apart, distinct=num.distinct, column=num.column, fixed=num.fixed, percent=num.percent,
                       share=num.share, low=num.low, target=num.target, count=num.count, time=_time, breakable=breakable, serial=serial,
                       tv=lambda v: translate_value(t.gettext, v), tw=lambda w: translate_warning(t.gettext, w))
    env.globals.update(css=Markup((PACKAGE / "static" / "report.css").read_text(encoding="utf-8")), lang=lang)
    return env


def _formats(formats: Iterable[str]) -> tuple[str, ...]:
    if isinstance(formats, str):  # "pdf" read as the formats p, d and f; "html,pdf" as the config writes it
        formats = formats.split(",")
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in formats if f and f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ReportError(f"report format {', '.join(bad) or '(none)'}: choose html, pdf or both (html,pdf)")
    return fmts


def out_folder(out_dir: str | Path, option: str = "--out") -> Path:
    """The report folder, made if need be and tried with a file, so that a folder that cannot take the report is found
    before the work that fills it."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportError(f"report folder {out}: is a file; choose a folder for {option}")
    if why := dead_link(out):  # mkdir said "File exists" of it
        raise ReportError(f"report folder {out}: {why}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ReportError(f"report folder {out}: cannot be written ({exc.strerror}); choose a writable {option}") from None
    remove_stale_tmps(out)  # a report run killed mid-write (SIGKILL, a power cut) left its .<name>.<pid>.tmp for good
    return out


def _write(path: Path, data: bytes) -> Path:
    """Write via a temporary file so a reader (or a USB copy) never sees half a report, and on the disk when it returns:
    a FAIL record links its report, which QA signs, and after a power cut a file renamed unsynced can stand there empty,
    which the daemon's start, looking for reports missing, takes as written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        synced(tmp)  # before the rename: else the new name can reach the disk before the bytes
        tmp.replace(path)
        synced(path.parent)  # the rename itself
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"report {path}: cannot be written ({exc.strerror}); check the folder and free space") from None
    except BaseException:  # Ctrl-C mid-write (a PDF onto a slow USB stick) left the half-written file beside the reports
        tmp.unlink(missing_ok=True)
        raise
    return path


def pdf_renderer() -> tuple[Any, Any]:
    """WeasyPrint's (HTML, URLFetcher), or a ReportError saying how to install it."""
    try:
        from weasyprint import HTML
        from weasyprint.urls import URLFetcher
    except ImportError:
        raise ReportError("PDF reports need WeasyPrint >= 68: pip install 'inspector-edge[pdf]' (or use --format html)") from None
    return HTML, URLFetcher


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of a report's HTML. Only data: URLs are fetched: a record cannot make the renderer read files or the network."""
    html_doc, fetcher = pdf_renderer()
    return html_doc(string=html, url_fetcher=fetcher(allowed_protocols=["data"])).write_pdf()


@dataclass(frozen=True)
class Page:
    """What every page of one rendering shares: language, output formats, clock and letterhead."""

    lang: str
    formats: tuple[str, ...]
    zone: Zone
    letterhead: Letterhead | None = None

    @classmethod
    def of(cls, lang: str, formats: Iterable[str], tz: str | None, letterhead: Letterhead | None) -> Page:
        page = cls(check_language(lang), _formats(formats), zone(tz), letterhead or None)
        if "pdf" in page.formats:
            pdf_renderer()  # before anything is written: without it, a run of HTML then failed at its first PDF
        return page

    def context(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "letterhead": self.letterhead,
            "generated": _time(datetime.now(timezone.utc), self.zone),
            "zone_name": zone_name(self.zone),
            # Chinese in the PDF needs a CJK font on this machine; say so in the report instead of printing boxes silently
            "font_note": "pdf" in self.formats and self.lang == "zh" and cjk_font() is None,
        }


def emit(name: str, out: Path, html: str, formats: tuple[str, ...]) -> dict[str, Path]:
    """Write <name>.html and/or .pdf. The PDF is rendered before either is written, so a rendering that fails never
    leaves a new HTML beside an older PDF of the same name."""
    html = _in_utf8(html)
    data = {"html": html.encode("utf-8")} if "html" in formats else {}
    if "pdf" in formats:
        data["pdf"] = html_to_pdf(html)
    return {fmt: _write(out / f"{name}.{fmt}", blob) for fmt, blob in data.items()}


def _in_utf8(text: str) -> str:
    """`text` with each byte of a name not in UTF-8 (a type folder or file named in Latin-1 or GBK, which Python keeps as
    lone surrogates) written as \\xd6: a report holding one was a traceback at its writing (UTF-8 refuses surrogates)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name gave (a record's JSON "\\ud800"): as \\ud800
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _images(part: Inspection, store_root: str | Path | None) -> list[dict[str, Any]]:
    return [{"kind": kind, "path": part.images.get(kind), "uri": data_uri(part.images.get(kind), store_root)} for kind in ("image", "overlay")]


def _inspection_page(part: Inspection, store_root: str | Path | None, page: Page) -> str:
    _ = translations(page.lang).gettext
    context = page.context()
    if part.time is not None and not on_calendar(part.time, page.zone):  # its time is shown in UTC (_time): no other zone beside it
        context["zone_name"] = None
    return environment(page.lang).get_template("inspection.html.j2").render(
        i=part, images=_images(part, store_root), gauge=charts.score_gauge(part.score, part.threshold, part.verdict, _, STYLES[page.lang]),
        **context)


def inspection_html(record: dict[str, Any], lang: str = "en", store_root: str | Path | None = None, formats: tuple[str, ...] = ("html",),
                    tz: str | None = "UTC", letterhead: Letterhead | None = None) -> str:
    return _inspection_page(inspection(record), store_root, Page.of(lang, formats, tz, letterhead))


def render_inspection(record: dict[str, Any], out_dir: str | Path, formats: Iterable[str] = FORMATS, lang: str = "en",
                      store_root: str | Path | None = None, tz: str | None = "UTC", letterhead: Letterhead | None = None) -> dict[str, Path]:
    """Write inspection-<id>.html/.pdf for one result record; returns {format: path}. `tz`: the zone its times are
    shown in (an IANA name such as Europe/Berlin, "UTC" or "local"; records keep UTC); `letterhead`: see
    `reports.letterhead`."""
    page = Page.of(lang, formats, tz, letterhead)
    part = inspection(record)
    html = _inspection_page(part, store_root, page)
    return emit(inspection_filename(part.id, page.lang), out_folder(out_dir), html, page.formats)


def _flatten(config: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config -> (dotted key, compact value) rows."""
    if isinstance(config, dict):
        return [row for k, v in config.items() for row in _flatten(v, f"{prefix}{k}.")]
    text = config if isinstance(config, str) else json.dumps(config, ensure_ascii=False, default=str)
    return [(prefix.rstrip("."), text if len(text) <= 120 else text[:117] + "…")]


def _stamp(t: datetime) -> str:
    """UTC, and says so: the report inside shows its own zone's clock."""
    return f"{t.year:04d}{t.astimezone(timezone.utc):%m%dT%H%M}Z"  # %Y writes year 1 as "1" on glibc


def shift_name(meta: dict[str, Any], lang: str = "en") -> str:
    return in_language(_shift_base(meta), lang)


def _shift_base(meta: dict[str, Any]) -> str:
    if meta.get("name"):
        return safe_name(str(meta["name"]))
    start, end = parse_time(meta.get("start")), parse_time(meta.get("end"))
    # with the station, so that two stations' reports of one shift do not overwrite each other; a report of
    # everything up to now (no start) is named by its end, so that the next one does not overwrite it either
    station = f"-{safe_name(str(meta['station']))}" if meta.get("station") else ""
    if start and end:
        return f"shift{station}-{_stamp(start)}-{_stamp(end)}"
    if end:  # to the second: reports "so far" may be asked for minutes apart
        return f"shift{station}-until-{_stamp(end)[:-1]}{end.astimezone(timezone.utc):%S}Z"
    return f"shift{station}"


def shift_html(records: Iterable[dict[str, Any]], meta: dict[str, Any] | None = None, lang: str = "en",
               store_root: str | Path | None = None, formats: tuple[str, ...] = ("html",), linked_dir: Path | None = None,
               tz: str | None = "UTC", letterhead: Letterhead | None = None) -> str:
    """The shift report's HTML. With `linked_dir`, the worst parts' own report pages are written there and the thumbnails link to them."""
    return _shift_page(_parts(records), dict(meta or {}), store_root, Page.of(lang, formats, tz, letterhead), linked_dir)


def _parts(records: Iterable[dict[str, Any] | Inspection]) -> list[Inspection]:
    """Records normalised (those already normalised, e.g. by a caller that streamed them from a store, as they are)."""
    return [r if isinstance(r, Inspection) else inspection(r) for r in records]


def in_time_order(parts: list[Inspection]) -> list[Inspection]:
    """`parts` by time, those without one last: a table that says it lists parts in time order listed a caller's
    records in the order given (13:00, 06:20, 07:40, ...); a store's come sorted, at no cost."""
    return sorted(parts, key=lambda p: (p.time is None, p.time or _FIRST))


def failed_rows(parts: list[Inspection]) -> tuple[list[Inspection], int]:
    """The failed parts the report's table lists, in time order, and how many it leaves out: beyond MAX_FAILED_ROWS,
    those with the highest score relative to their threshold (the first ones by time covered 36 minutes of a shift)."""
    failed = in_time_order([p for p in parts if p.verdict == "FAIL"])
    if len(failed) <= MAX_FAILED_ROWS:
        return failed, 0
    def severity(p: Inspection) -> tuple[int, float]:  # by margin; without a threshold by score; without either last
        return (0, -p.margin) if p.margin is not None else (1, -p.score) if p.score is not None else (2, 0.0)

    rank = sorted(range(len(failed)), key=lambda i: severity(failed[i]))
    return [failed[i] for i in sorted(rank[:MAX_FAILED_ROWS])], len(failed) - MAX_FAILED_ROWS


def _cell(text: str | None) -> str:
    """A text cell a spreadsheet shows as text: a serial from the line such as `=HYPERLINK(...)` would run as a formula."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def escapes(parts: list[Inspection]) -> list[Inspection]:
    """The parts a QA review found defective after they passed (in the records' order)."""
    return [p for p in parts if p.review is not None and p.review.outcome == "escape"]


def parts_csv(parts: list[Inspection]) -> bytes:
    """These parts, one row each, for the list a report table cannot hold (machine-readable: the records' timestamps,
    dot decimals); with the review's type, name and note, which the escapes table shows."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["timestamp", "inspection_id", "serial", "station", "verdict", "score", "threshold", "defect_type", "regions", "review",
                  "review_type", "reviewed_by", "review_note"])
    for p in parts:
        r = p.review
        out.writerow([_cell(p.timestamp), _cell(p.id), _cell(p.serial), _cell(p.station), _cell(p.verdict),
                      "" if p.score is None else repr(p.score), "" if p.threshold is None else repr(p.threshold), _cell(p.primary_type),
                      p.regions, r.outcome if r else "", _cell(r.type) if r else "", _cell(r.by) if r else "", _cell(r.note) if r else ""])
    return buf.getvalue().encode("utf-8")


def worst_page_name(part: Inspection, shift: str) -> str:
    """A worst part's page beside its shift report: named by the shift too (the dot is in no safe_name), so that it
    never overwrites that part's own inspection report, nor another shift report's page of it (in its language)."""
    return f"{inspection_filename(part.id)}.{shift}.html"


def _shift_page(parts: list[Inspection], meta: dict[str, Any], store_root: str | Path | None, page: Page,
                linked_dir: Path | None, files: dict[str, str] | None = None) -> str:
    """`files`: {"failed": name, "escapes": name} of the CSVs written beside the report, where its tables list part of them."""
    _, z = translations(page.lang).gettext, page.zone
    worst_n = as_float(meta.get("worst_n"))
    stats = shift_stats(parts, parse_time(meta.get("start")), parse_time(meta.get("end")), WORST_N if worst_n is None else max(0, int(worst_n)),
                        z)
    worst, shift = [], shift_name(meta, page.lang)
    for part in stats.worst:
        href = None
        if linked_dir is not None:
            href = worst_page_name(part, shift)
            _write(linked_dir / href, _inspection_page(part, store_root, replace(page, formats=("html",))).encode("utf-8"))
        rel = part.images.get("overlay") or part.images.get("image")
        worst.append({"i": part, "uri": data_uri(rel, store_root, max_px=THUMB_PX, quality=80), "href": href})
    failed, failed_more = failed_rows(parts)
    escaped = escapes(parts)  # beyond the table's rows, in the CSV: 50 of 250 escapes were in no table and no file
    stations = {p.station for p in parts if p.station} | ({str(meta["station"])} if meta.get("station") else set())
    num = STYLES[page.lang]

    def station_column(rows: list[Inspection]) -> bool:
        """Whether a table shows its rows' stations: not where the header names the one station every row has (a long
        name on each of 200 rows took 4-5 lines a row), always where there are more, or a row has none."""
        return len(stations) != 1 or not all(p.station for p in rows)

    # the most used first: the chart draws three, and stats.thresholds (sorted) gave it the lowest three
    used = [t for t, _n in Counter(p.threshold for p in parts if p.threshold is not None).most_common()]
    svg = {"pareto": charts.pareto([(translate_value(_, t), n) for t, n in stats.defect_types], _, num),
           "histogram": charts.histogram(stats.scores, used, _, num),
           "p_chart": charts.p_chart(stats.subgroups, stats.p_bar, _, num, z),
           "throughput": charts.throughput(stats.subgroups, _, num, z)}
    return environment(page.lang).get_template("shift.html.j2").render(
        s=stats, charts=svg, worst=worst, failed=failed, failed_more=failed_more, failed_file=(files or {}).get("failed"),
        skipped=not_inspected(meta), refused=not_inspected(meta, "refused_on_arrival"), escapes=in_time_order(escaped)[:MAX_FAILED_ROWS],
        escapes_more=max(0, len(escaped) - MAX_FAILED_ROWS), escapes_file=(files or {}).get("escapes"),
        title=as_text(meta.get("title")), lot=as_text(meta.get("lot")), line=as_text(meta.get("line")), stations=sorted(stations),
        station_column={"failed": station_column(failed), "escapes": station_column(escaped)},
        config=_flatten(meta["config"]) if meta.get("config") else [], **page.context())


@dataclass(frozen=True)
class Script:
    text: Markup
    digest: str  # CSP's 'sha256-...' of the text, as the page carries it


@cache
def live_script() -> Script:
    """The live view's refresh script (static/live.js), with the digest its page's CSP allows it by."""
    import base64
    import hashlib

    text = (PACKAGE / "static" / "live.js").read_text(encoding="utf-8")
    return Script(Markup(text), "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode())


def live_html(records: list[dict[str, Any]], health: dict[str, Any], overlay: str | None = None, lang: str = "en",
              tz: str | None = "UTC", refresh_s: int = 2, last_fail: tuple[dict[str, Any], str | None] | None = None) -> str:
    """The daemon's live view (`inspector serve`, GET /): the newest of `records` (newest first) with `overlay` (a data
    URI), the others as a table, and the counts and status of `health` (the daemon's /health object); it fetches
    itself again every `refresh_s` seconds, and says so where the station does not answer. `last_fail`: (record,
    overlay) of the last failed part, where it is not the newest."""
    page = Page.of(lang, ("html",), tz, None)
    parts = [inspection(r) for r in records]
    health = health if isinstance(health, dict) else {}
    verdicts = health.get("verdicts") if isinstance(health.get("verdicts"), dict) else {}
    model = health.get("model") if isinstance(health.get("model"), dict) else {}
    return environment(page.lang).get_template("live.html.j2").render(
        latest=parts[0] if parts else None, recent=parts, overlay=overlay, refresh_s=refresh_s, script=live_script(),
        last_fail=inspection(last_fail[0]) if last_fail else None, fail_overlay=last_fail[1] if last_fail else None,
        station=as_text(health.get("station")),
        status=as_text(health.get("status")), model_id=as_text(model.get("id")),
        passed=int(as_float(verdicts.get("PASS")) or 0), failed=int(as_float(verdicts.get("FAIL")) or 0),
        rejected=int(as_float(health.get("rejected")) or 0), **page.context())


def not_inspected(meta: dict[str, Any], key: str = "not_inspected") -> dict[str, Any] | None:
    """meta[key] ({"count": n, "items": [...]}, as a store's `refused` lists inputs accepted but never inspected and its
    `refused_on_arrival` those refused at once, with "kinds": {kind: n} too) for the page; None where there are none, or
    it is malformed."""
    given = meta.get(key)
    count = as_float(given.get("count")) if isinstance(given, dict) else None
    if not count or count < 1:
        return None
    items = [i for i in given.get("items") or [] if isinstance(i, dict)] if isinstance(given.get("items"), list) else []
    rows = [{"time": parse_time(i.get("timestamp")), **{k: as_text(i.get(k)) for k in ("serial", "source", "reason", "file")}} for i in items]
    kinds = given.get("kinds") if isinstance(given.get("kinds"), dict) else {}
    return {"count": int(count), "rows": rows, "kinds": [(str(k), int(f)) for k, n in kinds.items() if (f := as_float(n) or 0) >= 1]}


def render_shift(records: Iterable[dict[str, Any] | Inspection], meta: dict[str, Any] | None, out_dir: str | Path, formats: Iterable[str] = FORMATS,
                 lang: str = "en", store_root: str | Path | None = None, tz: str | None = "UTC",
                 letterhead: Letterhead | None = None) -> dict[str, Path]:
    """Write a shift/lot report for `records` (dicts, or `reports.records.inspection` of them); returns {format: path}, with "csv"
    (every failed part) and "escapes_csv" (every escape) where there are more than the report's tables list (MAX_FAILED_ROWS).

    meta (all optional): start, end (ISO 8601; the period, else the records' span), station, line (the station's production line), title, lot,
    config (dict shown as "config used"), worst_n (thumbnails, default 12), name (file name stem), not_inspected
    ({"count": n, "items": [{timestamp, serial, source, reason, file}, ...]}: inputs accepted but never inspected),
    refused_on_arrival ({"count": n, "kinds": {kind: n}, "items": [{timestamp, serial, source, reason}, ...]}: inputs
    refused at once, e.g. an image that cannot be decoded, none of them in a record).
    `tz`: the zone the report's times are shown in (an IANA name such as Europe/Berlin, "UTC" or "local");
    `letterhead`: see `reports.letterhead`.
    With HTML output, the worst parts' inspection pages are written beside it (worst_page_name) so the thumbnails link somewhere.
    """
    page = Page.of(lang, formats, tz, letterhead)
    meta = dict(meta or {})
    for key in ("start", "end"):  # a time that cannot be read was dropped, and the period became the records' span
        if meta.get(key) is not None and (t := parse_time(meta[key])) is None:
            raise ReportError(f"{key} {str(meta[key])[:40]!r}: not a time; give ISO 8601, e.g. 2026-11-26T06:00Z")
        if meta.get(key) is not None and not on_calendar(t, page.zone):
            raise ReportError(f"{key} {str(meta[key])[:40]!r}: outside the calendar (years 1 to 9999) on the {zone_label(page.zone, t)} "
                              f"clock the report shows; give {toward_calendar(t.year)} time")
    out = out_folder(out_dir)
    parts = _parts(records)
    name = shift_name(meta, page.lang)
    # the whole list, where a table shows part of it
    lists = {"failed": [p for p in parts if p.verdict == "FAIL"], "escapes": escapes(parts)}
    files = {k: f"{name}-{k}.csv" for k, listed in lists.items() if len(listed) > MAX_FAILED_ROWS}
    html = _shift_page(parts, meta, store_root, page, out if "html" in page.formats else None, files)
    paths = emit(name, out, html, page.formats)
    for k, file in files.items():
        paths[{"failed": "csv", "escapes": "escapes_csv"}[k]] = _write(out / file, parts_csv(lists[k]))
    return paths
