"""Accessibility of the reports and the live view, as a screen-reader user or an accessibility policy (WCAG 2.1 AA) sees
them: contrast, landmarks, table header scope, images' text, keyboard-scrollable tables, line breaks at natural points,
and the live view's polite announcement of each new part. Checked by parsing the HTML and CSS; the layout and the live
view's script in a real Chromium where one is installed."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import reports
from reports import charts
from reports.images import array_uri
from reports.render import PACKAGE, live_html
from reports.sample import make_records
from reports.validation import render_validation
from tests.reports.browser import serve_page
from tests.reports.test_validation import run_of

LANGS = ("en", "zh", "es")
VERDICT = {"en": "FAIL", "zh": "不合格", "es": "RECHAZADA"}
CSS = (PACKAGE / "static" / "report.css").read_text(encoding="utf-8")
LONG_NAME = "Maximiliana Alexandrovna Konstantinopoulou-Vanderbilt"


def luminance(hex_colour: str) -> float:
    c = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def css_var(name: str) -> str:
    return re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})", CSS).group(1)


class Tags(HTMLParser):
    """Every start tag as (name, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str, name: str) -> list[dict[str, str | None]]:
    p = Tags()
    p.feed(html)
    return [a for t, a in p.tags if t == name]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("a11y_store")
    records = make_records(40, root=root, image_size=64, fail_rate=0.3, seed=3)
    fail = next(r for r in records if r["verdict"] == "FAIL" and len(r["defects"]) >= 2)
    fail["reviews"] = [{"outcome": "confirmed", "by": LONG_NAME, "note": "scrapped", "time": "2026-11-26T09:00:00Z"}]
    good = next(r for r in records if r["verdict"] == "PASS")
    escape = dict(good, inspection_id="esc", serial="LOT_2026_11_26_LINE3_STATION7_0000123457",
                  reviews=[{"outcome": "escape", "by": LONG_NAME, "note": "found at final QA", "time": "2026-11-26T10:00:00Z"}])
    worst = dict(fail, inspection_id="worst", score=99.0, serial="LOT_2026_11_26_LINE3_STATION7_0000123456")
    return root, [*records, escape, worst], fail


@pytest.fixture(scope="module")
def pages(parts, tmp_path_factory):
    """{(kind, lang): html} for every kind of page the project serves or renders."""
    root, records, fail = parts
    out = tmp_path_factory.mktemp("a11y_pages")
    overlay = array_uri(np.full((40, 60, 3), 90, np.uint8))
    found = {}
    for lang in LANGS:
        found["inspection", lang] = reports.render_inspection(fail, out / f"i-{lang}", formats=("html",), lang=lang, store_root=root)["html"]
        found["shift", lang] = reports.render_shift(records, {"worst_n": 6}, out / f"s-{lang}", formats=("html",), lang=lang, store_root=root)["html"]
        found["empty shift", lang] = reports.render_shift([], {}, out / f"e-{lang}", formats=("html",), lang=lang)["html"]
        run = run_of([0.0, 0.4, 1.6, 2.0, 0.3, 3.0], ["good", "good", "good", "crack", "crack", "pit"])
        run.thumbnails = {4: overlay, 2: overlay}
        found["validation", lang] = render_validation(run, out / f"v-{lang}", formats=("html",), lang=lang)["html"]
        live = out / f"live-{lang}.html"
        live.write_text(live_html([fail, *records[:4]], {"status": "ok", "station": "st-9"}, overlay, lang=lang), encoding="utf-8")
        found["live", lang] = live
    return {k: p.read_text(encoding="utf-8") for k, p in found.items()} | {("path", *k): p for k, p in found.items()}


def html_pages(pages):
    return [(k, v) for k, v in pages.items() if k[0] != "path"]


def test_small_print_and_badges_reach_wcag_aa_contrast():
    """The muted grey of the period, column labels, captions and notes read 4.37:1 on white (#607d8b), under the 4.5:1
    WCAG AA asks of normal text; a PDF's running header and footer too."""
    muted = css_var("muted")
    for background in ("#ffffff", css_var("soft"), "#fff3e0"):  # the page, a table heading's, a note's
        assert contrast(muted, background) >= 4.5, (muted, background)
    for colour in re.findall(r"@(?:top|bottom)-\w+ \{[^}]*color: (#[0-9a-f]{6})", CSS):
        assert contrast(colour, "#ffffff") >= 4.5, colour
    for badge in ("pass", "fail"):  # the PASS/FAIL badge's white text, and the KPI figures in these colours
        assert contrast("#ffffff", css_var(badge)) >= 4.5, badge


def test_chart_text_reaches_wcag_aa_contrast():
    """A threshold's label on the score histogram and the ROC curve was drawn in the limit lines' orange, 3.8:1 on white."""
    svg = str(charts.histogram([(0.5, "PASS"), (1.5, "FAIL"), (0.7, "PASS")], [1.0], str)) + str(charts.roc([0, 0.5, 1], [0, 0.8, 1], (0.2, 0.7), str))
    fills = set(re.findall(r'<text[^>]*fill="(#[0-9a-f]{6})"', svg)) | set(re.findall(r'<svg[^>]*fill="(#[0-9a-f]{6})"', svg))
    assert len(fills) >= 2  # the ink and a threshold's label
    for fill in fills:
        assert contrast(fill, "#ffffff") >= 4.5, fill


def test_every_page_has_its_language_landmarks_and_scoped_headers(pages):
    for (kind, lang), html in html_pages(pages):
        assert re.search(r'<html lang="(\w+)"', html).group(1) == lang, (kind, lang)
        assert len(tags(html, "main")) == 1 and len(tags(html, "footer")) == 1, (kind, lang)  # all content within landmarks
        headers = tags(html, "th")
        assert headers and all(h.get("scope") in ("col", "row") for h in headers), (kind, lang, [h for h in headers if not h.get("scope")])
        # a table wider than a zoomed screen scrolls in its box, which a keyboard must reach
        assert all(d.get("tabindex") == "0" for d in tags(html, "div") if "wide" in (d.get("class") or "").split()), (kind, lang)


def test_images_say_what_they_show(pages, parts):
    """An overlay's text said "Anomaly overlay" (a thumbnail's only the serial): a screen reader heard nothing of the
    verdict or the defects its picture shows."""
    _, _, fail = parts
    for (kind, lang), html in html_pages(pages):
        alts = [i.get("alt") for i in tags(html, "img")]
        assert all(a and a.strip() for a in alts), (kind, lang, alts)
        if kind in ("inspection", "live", "shift"):
            assert any(VERDICT[lang] in a for a in alts), (kind, lang, alts)
    inspection_alts = [i["alt"] for i in tags(pages["inspection", "en"], "img")]
    types = {d["type"] for d in fail["defects"]}
    assert any(all(t in a for t in types) for a in inspection_alts), (inspection_alts, types)
    assert any("crack" in i["alt"] for i in tags(pages["validation", "en"], "img"))


def test_a_worst_parts_serial_breaks_after_its_separators(pages):
    """The worst parts' thumbnails broke a long serial anywhere ("LOT_2026_11_2|6_LI"): an underscore is no line-break
    chance, so it now has one after each separator, as the failed parts' table has."""
    worst = re.search(r'<section id="worst">.*?</section>', pages["shift", "en"], re.S).group(0)
    assert "LOT_<wbr>2026_<wbr>11_<wbr>26_<wbr>LINE3" in worst


def test_the_live_view_announces_a_new_part_from_one_polite_region(pages):
    """Nothing on the live view was announced: its body was replaced every refresh. It now has one polite status
    region, outside the swapped content, that says each new part once (never the counts that change with each part)."""
    html = pages["live", "en"]
    announce = [p for p in tags(html, "p") if p.get("id") == "announce"]
    assert len(announce) == 1 and announce[0].get("aria-live") == "polite" and announce[0].get("role") == "status"
    assert "FAIL" in announce[0]["data-say"] and announce[0]["data-part"]
    assert len(re.findall(r"aria-live=", html)) == 1
    assert html.index('id="announce"') < html.index("<main>")


# ---- in a real Chromium ----

@pytest.mark.parametrize("kind, cells", [("shift", "#escapes td"), ("inspection", "#review td")])
def test_a_reviewers_name_breaks_between_words_at_200_percent_zoom(browser, pages, kind, cells):
    """At 200 % zoom (a 550 px wide window) the escapes table's name column was squeezed to a few letters and the name
    broke mid-word ("Konstantinopo|ulou"), and the inspection report's QA review too: its longest word now fits."""
    page = browser.open(pages["path", kind, "en"].as_uri(), width=550, height=900)
    try:
        fits = page.eval("""(cells => {
            const td = [...document.querySelectorAll(cells)].find(c => c.textContent.includes('Konstantinopoulou'));
            const probe = document.createElement('span');
            probe.textContent = 'Konstantinopoulou-';
            td.appendChild(probe);
            const word = probe.getBoundingClientRect().width;
            probe.remove();
            const style = getComputedStyle(td);
            return [word, td.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)];
        })""" + f"({json.dumps(cells)})")
        assert fits[0] <= fits[1] + 0.5, fits
    finally:
        page.close()


def test_the_live_view_says_each_new_part_once_across_refreshes(browser):
    """The region survives the script's refresh (a replaced live region is not announced), stays quiet while only the
    counts change, and says the new part when one arrives, and that the station stopped answering."""
    state = {"records": [{"inspection_id": "a1", "serial": "SN-1", "verdict": "PASS", "score": 1.0, "threshold": 2.0}], "n": 5}
    server = serve_page(lambda: live_html(state["records"], {"status": "ok", "verdicts": {"PASS": state["n"]}}, refresh_s=1).encode())
    page = browser.open(f"http://127.0.0.1:{server.server_address[1]}/")

    try:
        page.eval("window.announcer = document.getElementById('announce'); 0")
        assert page.eval("document.getElementById('announce').textContent") == ""  # nothing new on load
        state["n"] = 6
        page.shows("document.getElementById('inspected').textContent", "6")
        assert page.eval("document.getElementById('announce').textContent") == ""  # a count alone is not announced
        state["records"] = [{"inspection_id": "b2", "serial": "SN-2", "verdict": "FAIL", "score": 3.0, "threshold": 2.0,
                             "defects": [{"type": "crack", "confidence": 0.9, "box": [1, 1, 2, 2]}]}, *state["records"]]
        state["n"] = 7
        page.shows("document.getElementById('announce').textContent", "Last part: SN-2, FAIL, crack")
        assert page.eval("document.getElementById('announce') === window.announcer")  # the same region, kept
        assert page.eval("document.querySelectorAll('[aria-live]').length") == 1
        server.shutdown()
        server.server_close()
        page.shows("document.getElementById('announce').textContent.startsWith('The station is not answering')", True)
        page.settle()
        assert [e for e in page.errors if "Content Security Policy" in e or "exception" in e] == [], page.errors
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_the_live_views_table_box_keeps_the_keyboards_focus_across_a_refresh(browser):
    """The recent parts' box is in the tab order (tabindex=0) so that a keyboard scrolls it; the refresh replaced every
    element of the body but the announcement, so the focus fell back to the page within the refresh period (2 s)."""
    records = [{"inspection_id": f"a{i}", "serial": f"SN-{i}", "verdict": "PASS", "score": 1.0, "threshold": 2.0} for i in range(3)]
    state = {"n": 5}
    server = serve_page(lambda: live_html(records, {"status": "ok", "verdicts": {"PASS": state["n"]}}, refresh_s=1).encode())
    page = browser.open(f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        page.eval("document.querySelector('#recent .wide').focus(); 0")
        assert page.eval("document.activeElement.matches('#recent .wide')")
        state["n"] = 6
        page.shows("document.getElementById('inspected').textContent", "6")  # refreshed
        assert page.eval("document.activeElement.matches('#recent .wide')")
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_the_reports_still_run_no_script(pages):
    for (kind, lang), html in html_pages(pages):
        if kind != "live":
            assert "<script" not in html, (kind, lang)


def test_keyboard_focus_is_visible():
    """A worst part's link (its thumbnail had color: inherit and no outline of its own) and a scrolling table's box show a
    keyboard's focus plainly."""
    rule = re.search(r"([^}]*):focus-visible[^{]*\{([^}]*)\}", CSS)
    assert rule and "a:focus-visible" in rule.group(0) and ".wide:focus-visible" in rule.group(0) and "outline: 3px solid" in rule.group(2)
