"""The shift report's layout after a visual review: the failed parts' Station column, serials' line breaks, "the first 1
of them", and the Pareto chart's defect type names."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

import reports
from reports import charts
from reports.i18n import cjk_font
from reports.sample import make_records

NS = "{http://www.w3.org/2000/svg}"
STATION = "press-line-07-station-12-final-visual-inspection-after-anodising"
pdf_tools = pytest.mark.skipif(not shutil.which("pdftotext") or not shutil.which("pdfinfo"), reason="needs poppler-utils")


def pdf_pages(path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def pdf_text(path) -> str:
    """Laid out: without -layout, pdftotext joins a line that ends in "-" to the next, dropping the "-"."""
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def section(html: str, id_: str) -> str:
    part = html[html.index(f'id="{id_}"'):]
    return part[:part.index("</section>")]


def long_shift(n_stations: int) -> list[dict]:
    """60 failed parts with long serials, at `n_stations` stations with long names."""
    records = make_records(60, fail_rate=1.0, seed=3, station=STATION)
    for k, r in enumerate(records):
        r["serial"] = f"ACME-BRG-6204-2RS-{k:08d}-LOTB-2026W48-PRESSLINE07"
        r["station"] = f"{STATION}-{k % n_stations}"
    return records


def test_a_station_column_only_where_the_header_does_not_name_every_rows_station():
    """One station's name, often long, was repeated on each of 200 failed parts' rows (4-5 lines a row with a long serial)."""
    one, two = long_shift(1), long_shift(2)
    for p in (one[0], two[0]):
        p["reviews"] = [{"outcome": "escape", "type": "crack", "by": "Li Wei", "note": "found at customer", "at": p["timestamp"]}]
    html = reports.render.shift_html(one, {})
    assert f"Station: {STATION}-0" in html  # the header names it
    for table in ("failed", "escapes"):
        assert '<th scope="col">Station</th>' not in section(html, table) and f"{STATION}-0</td>" not in section(html, table)
    html = reports.render.shift_html(two, {})
    for table in ("failed", "escapes"):
        assert '<th scope="col">Station</th>' in section(html, table) and f"<td>{STATION}-" in section(html, table)
    # a row without a station beside the named one: the column stays, the row says it has none
    html = reports.render.shift_html([*one[:5], dict(one[5], station=None)], {})
    assert '<th scope="col">Station</th>' in section(html, "failed") and 'PRESSLINE07</td><td>—</td><td class="num">' in section(html, "failed")


@pdf_tools
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_one_stations_shift_has_no_station_column_and_fewer_pages(tmp_path, lang):
    if lang == "zh" and cjk_font() is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk)")
    one = reports.render_shift(long_shift(1), {"name": "one"}, tmp_path, formats=("pdf",), lang=lang)["pdf"]
    two = reports.render_shift(long_shift(2), {"name": "two"}, tmp_path, formats=("pdf",), lang=lang)["pdf"]
    station = {"en": "Station", "zh": "工位"}[lang]
    headers = [" ".join(ln.split()) for ln in pdf_text(one).splitlines() if re.match(r"\s*(Time\s+Serial|时间\s+序列号)", ln)]
    assert headers and not any(station in h for h in headers), headers
    assert pdf_pages(one) < pdf_pages(two)


@pdf_tools
def test_a_short_serial_breaks_at_its_hyphens_beside_a_long_comment(tmp_path):
    """"SN-261126-00003" broke as "SN-2611 / 26-00003" in the escapes table, beside a long reviewer comment."""
    records = make_records(30, fail_rate=0.2, seed=1)
    note = ("Found at the customer's incoming inspection: a hairline crack along the machined groove, visible only under "
            "raking light; ") * 2
    escaped = []
    for i, r in enumerate(records):
        r["serial"], r["station"] = f"SN-261126-{i:05d}", "LINE7CELL12ENDKONTROLLEGEHAEUSEOBERSEITE-" + "AB"[i % 2]  # a Station column
        if r["verdict"] == "PASS" and len(escaped) < 3:
            escaped.append(r["serial"])
            r["reviews"] = [{"outcome": "escape", "type": "contamination-by-cutting-fluid-residue", "by": "Maximiliane Oberhauser-Grünwald", "note": note,
                             "at": r["timestamp"]}]
    pdf = reports.render_shift(records, {"name": "esc", "worst_n": 0}, tmp_path, formats=("pdf",))["pdf"]
    text = pdf_text(pdf)
    table = text[text.index("Escapes found by QA review"):text.index("Model and configuration")]
    for serial in escaped:
        _, day, number = serial.split("-")
        # "SN-" / "261126-" / "00003", each a line: not "SN-2611" / "26-00003", nor "261126" / "-00003"
        assert re.search(rf"\b{day}-", table) and re.search(rf"\b{number}\b", table), (serial, table[:900])


def test_a_serial_breaks_after_separators_between_letters_or_digits():
    """Break chances after - _ . / inside a serial, none added elsewhere (its text escaped, as before)."""
    assert str(reports.render.serial("SN-261126-00003")) == "SN-<wbr>261126-<wbr>00003"
    assert str(reports.render.serial("A_B.C/D--E-")) == "A_<wbr>B.<wbr>C/<wbr>D--E-"
    assert str(reports.render.serial("<script>alert(1)</script>")) == "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.mark.parametrize(("lang", "one", "two"), [("en", "Only the first is listed.", "The first 2 of them, in time order."),
                                                   ("es", "Solo se lista la primera.", "Las primeras 2, por orden de tiempo."),
                                                   ("zh", "仅列出第一个。", "按时间顺序列出其中前 2 个。")])
def test_one_listed_input_of_several_is_said_naturally(lang, one, two):
    """"The first 1 of them, in time order." where one of three inputs that could not be inspected was listed."""
    item = {"timestamp": "2026-11-26T07:00:00Z", "serial": "SN-1", "source": "folder:/srv/in", "reason": "unreadable"}
    html = reports.render.shift_html([], {"not_inspected": {"count": 3, "items": [item]}}, lang=lang)
    assert one in html and "1 of them" not in html and " 1 个" not in html
    html = reports.render.shift_html([], {"not_inspected": {"count": 3, "items": [item, dict(item, serial="SN-2")]}}, lang=lang)
    assert two in html and one not in html


TYPES = ["contamination-by-cutting-fluid-residue", "scratch", "dent", "stain", "crack", "pit", "chip", "fraying", "blowhole",
         "burr", "inclusion", "porosity", "discolouration"]


def test_a_pareto_of_13_types_shows_their_names_not_5_letters():
    """With 13 defect types each name was cut to its slot, 44 px: "conta…", "scrat…"."""
    counts = [(t, 40 - i) for i, t in enumerate(TYPES)]
    svg = charts.pareto(counts, str)
    root = ET.fromstring(str(svg))
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    labels = [t for t in root.iter(f"{NS}text") if t.text and t.text.rstrip("…") and any(n.startswith(t.text.rstrip("…")) for n in TYPES)
              and t.text not in ("Parts",)]
    names = [t.text for t in labels]
    assert len(names) == len(TYPES), names
    for name, shown in zip(TYPES, names, strict=True):
        assert shown == name or (shown.endswith("…") and name.startswith(shown[:-1]) and len(shown) >= 16), (name, shown)
    assert names[1:] == TYPES[1:]  # every shorter name whole
    for t in labels:  # slanted, ending under its bar, starting inside the chart
        x, y = float(t.get("x")), float(t.get("y"))
        assert t.get("transform") == f"rotate(-45 {x:.1f} {y:.1f})" and t.get("text-anchor") == "end"
        assert x - charts.text_width(t.text, int(t.get("font-size"))) * charts.SLANT >= 0
        assert y + charts.text_width(t.text, int(t.get("font-size"))) * charts.SLANT <= height
    bars = [r for r in root.iter(f"{NS}rect") if float(r.get("height")) > 10]
    assert max(float(b.get("y")) + float(b.get("height")) for b in bars) < min(float(t.get("y")) for t in labels)
    # a few short names fit their slots as before: level, in the chart's usual height
    few = ET.fromstring(str(charts.pareto([("scratch", 3), ("dent", 1)], str)))
    assert few.get("viewBox") == f"0 0 {charts.W} {charts.H}" and not any(t.get("transform") for t in few.iter(f"{NS}text")
                                                                         if t.text in ("scratch", "dent"))
    html = reports.render.shift_html([dict(r, defect_type=TYPES[0], defects=[dict(d, type=TYPES[0]) for d in r["defects"]])
                                      for r in make_records(20, fail_rate=1.0)], {})
    assert f"<td>{TYPES[0]}</td>" in section(html, "pareto")  # whole in the table below the chart
