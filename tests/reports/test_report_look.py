"""How the reports look to the QA manager who signs them: a black-and-white copy, a Chinese PDF's column headings, a phone."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

import reports
from reports import charts
from reports.sample import make_records

NS = "{http://www.w3.org/2000/svg}"


def grey(colour: str) -> float:
    """A #rrggbb colour's grey on a black-and-white print (ITU-R BT.601 luma, 0 to 255)."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def bar_fills(svg: str) -> set[str]:
    """The fills of a chart's bars (taller than its legend's 10 px boxes)."""
    root = ET.fromstring(str(svg))
    return {r.get("fill") for r in root.iter(f"{NS}rect") if r.get("fill", "").startswith("#") and float(r.get("height", 0)) > 12}


def test_passed_and_failed_bars_differ_in_black_and_white_print():
    """The histogram's PASS (#2e7d32) and FAIL (#c62828) bars printed as one grey (93 and 87 of 255): on a photocopied shift
    report, or to a red-green colour-blind reader, a stacked bar's failed parts could not be told from its passed ones."""
    _ = str
    passed = bar_fills(charts.histogram([(1.0, "PASS"), (1.2, "PASS")], [4.0], _))
    failed = bar_fills(charts.histogram([(6.0, "FAIL"), (6.2, "FAIL")], [4.0], _))
    (pass_fill,), (fail_fill,) = passed, failed
    assert abs(grey(pass_fill) - grey(fail_fill)) >= 60, (pass_fill, fail_fill)
    legend = ET.fromstring(str(charts.histogram([(1.0, "PASS"), (6.0, "FAIL")], [4.0], _)))
    boxes = {r.get("fill") for r in legend.iter(f"{NS}rect") if r.get("height") == "10"}
    assert boxes == {pass_fill, fail_fill}  # the legend says which is which, in the bars' own two greys


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (pdftotext)")
def test_chinese_column_headings_are_not_one_character_a_line(tmp_path):
    """In a Chinese shift PDF the warnings table's 件数 (parts) and 不合格 (failed) and the refused inputs' 序列号 (serial)
    stood one or two characters a line: Chinese may break between any two characters, and a wider column took the room."""
    pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")
    from reports.i18n import cjk_font

    if cjk_font() is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk)")
    records = make_records(30, seed=1)
    for r in records[:4]:
        r["warnings"] = ["image 640x480 px is unlike the training images (512x512 px); check the camera's resolution, crop and "
                         "orientation, or fit on images like it"]
    meta = {"start": "2026-11-26T06:00Z", "end": "2026-11-26T14:00Z",
            "not_inspected": {"count": 1, "items": [{"timestamp": "2026-11-26T07:00:00Z", "serial": "SN-X", "source": "folder:/srv/in",
                                                     "reason": "no region of interest found in frame", "file": "refused/2026-11-26/abc_image.png"}]}}
    out = reports.render_shift(records, meta, tmp_path, formats=("pdf",), lang="zh")
    text = subprocess.run(["pdftotext", "-layout", str(out["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"警告\s+件数\s+不合格\n", text), text[:3000]
    assert re.search(r"时间\s+序列号\s+来源", text), text[:3000]


def test_a_phone_scrolls_a_wide_table_not_the_page(tmp_path, tmp_path_factory):
    """On a 420 px phone the inspection's defect table pushed its Peak column off the screen (the whole page scrolled
    sideways), a defect's box stood one number a line with a lone "," between them, and its type broke as "aboll|adur|a"."""
    pytest.importorskip("websocket", reason="browser tests need websocket-client (the dev extra)")
    from tests.reports.browser import Chromium, chromium_binary

    binary = chromium_binary()
    if not binary:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    records = make_records(40, seed=1)
    part = next(r for r in records if r["verdict"] == "FAIL")
    part["defects"] = [dict(part["defects"][0], type="dent", box=[165, 143, 31, 35]) for _ in range(6)]
    pages = [reports.render_inspection(part, tmp_path / "one", formats=("html",), lang="es")["html"],
             reports.render_shift(records, {}, tmp_path / "shift", formats=("html",), lang="es")["html"]]
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium"))
    try:
        for path in pages:
            page = browser.open(path.as_uri(), width=420, height=900)  # loaded: layout is synchronous from here
            wide, seen = page.eval("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert wide <= seen, (path.name, wide, seen)
            if path == pages[0]:
                lines = page.eval("""(() => { const lines = cell => { const r = document.createRange(); r.selectNodeContents(cell);
                    return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size };
                    return [...document.querySelectorAll('table.defects tbody tr')].map(tr => [lines(tr.cells[1]), lines(tr.cells[3])]) })()""")
                assert lines and all(t == 1 and b <= 2 for t, b in lines), lines  # "abolladura" whole, "165, 143, 31, 35" in two at most
            page.close()
    finally:
        browser.close()
