"""PDF reports (WeasyPrint), read back with poppler: pages, headings, the defect table, escaping, Chinese text."""

from __future__ import annotations

import re
import subprocess

import pytest

import reports
from reports.i18n import cjk_font

from .conftest import XSS, need

pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")


def pdftext(path) -> str:
    return subprocess.run([need("pdftotext"), "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def pages(path) -> int:
    info = subprocess.run([need("pdfinfo"), str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def first_page_png(path, out_prefix):
    from PIL import Image, ImageStat

    subprocess.run([need("pdftoppm"), "-png", "-r", "40", "-f", "1", "-l", "1", "-singlefile", str(path), str(out_prefix)], check=True)
    png = out_prefix.with_suffix(".png")
    with Image.open(png) as im:
        assert im.size[0] > 250 and im.size[1] > 350  # A4 portrait at 40 dpi is 331 x 468
        assert im.size[1] > im.size[0]
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 10  # not a blank page
    return png


@pytest.fixture(scope="module")
def inspection_pdf(sample, failed_record, tmp_path_factory):
    root, _ = sample
    out = reports.render_inspection(failed_record, tmp_path_factory.mktemp("pdf_insp"), formats=("pdf",), store_root=root)
    return out["pdf"], failed_record


def test_inspection_pdf_headings_defect_table_and_escaped_serial(inspection_pdf, tmp_path):
    pdf, record = inspection_pdf
    assert 1 <= pages(pdf) <= 2
    text = pdftext(pdf)
    for heading in ("Inspection report", "Images", "Defects", "Traceability", "Sign-off"):
        assert heading in text
    assert XSS in text  # the serial printed as text, exactly
    assert record["model"]["sha256"] in text and record["image"]["sha256"] in text
    rows = [ln for ln in text.splitlines() if re.match(r"\s*\d+\s+(scratch|dent|stain|crack|pit)\s+\d+%", ln)]
    assert len(rows) == len(record["defects"])
    for row, d in zip(rows, record["defects"], strict=True):
        assert d["type"] in row and ", ".join(map(str, d["box"])) in row and str(d["area_px"]) in row and d["severity"] in row
    first_page_png(pdf, tmp_path / "insp")


def test_shift_pdf_sections_and_counts(sample, tmp_path):
    root, records = sample
    out = reports.render_shift(records, {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z"}, tmp_path, formats=("pdf",),
                               store_root=root)
    assert list(out) == ["pdf"] and not list(tmp_path.glob("*.html"))  # no HTML pages when only a PDF was asked for
    text = pdftext(out["pdf"])
    for heading in ("Shift report", "Totals and yield", "Failed parts by defect type", "Score distribution", "Defect rate over time",
                    "Throughput and latency", "Worst parts", "Failed parts", "Model and configuration", "Sign-off"):
        assert heading in text
    n_fail = sum(r["verdict"] == "FAIL" for r in records)
    assert re.search(rf"\b{len(records)}\b", text) and re.search(rf"FAIL\s+{n_fail}\b", text)
    assert pages(out["pdf"]) >= 2
    first_page_png(out["pdf"], tmp_path / "shift")


def test_empty_shift_and_imageless_inspection_pdfs(tmp_path):
    empty = reports.render_shift([], {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z"}, tmp_path, formats=("pdf",))
    assert pages(empty["pdf"]) == 1 and "No inspections were recorded in this period." in pdftext(empty["pdf"])
    bare = reports.render_inspection({"inspection_id": "bare", "verdict": "FAIL", "images": {"image": "missing.png"}}, tmp_path,
                                     formats=("pdf",))
    text = pdftext(bare["pdf"])
    assert "Image not available" in text and "No image recorded" in text and "No localised defect region" in text


def test_chinese_pdf_has_chinese_text(sample, failed_record, tmp_path):
    if cjk_font() is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk)")
    root, _ = sample
    out = reports.render_inspection(failed_record, tmp_path, formats=("pdf",), lang="zh", store_root=root)
    text = pdftext(out["pdf"])
    assert "检测报告" in text and "缺陷" in text and "签核" in text and XSS in text
    assert "CJK" not in text  # no missing-font note
    fonts = subprocess.run([need("pdffonts"), str(out["pdf"])], capture_output=True, text=True, check=True).stdout
    assert "CJK" in fonts


def test_pdf_renderer_fetches_nothing_but_data_urls(tmp_path):
    from reports.letterhead import letterhead
    from reports.render import html_to_pdf

    secret = tmp_path / "secret.png"
    from PIL import Image

    Image.new("RGB", (50, 50), (255, 0, 0)).save(secret)
    pdf = tmp_path / "x.pdf"
    # and a logo an SVG whose image is a local file, which the logo's check takes (the SVG itself parses)
    svg = tmp_path / "logo.svg"
    svg.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20"><image href="file://{secret}" width="20" height="20"/>'
                   '<rect x="30" width="30" height="20" fill="blue"/></svg>', encoding="utf-8")
    logo = letterhead("ACME", None, svg).logo
    pdf.write_bytes(html_to_pdf(f'<p>x</p><img src="file://{secret}"><img src="http://127.0.0.1:9/x.png"><img src="{logo}">'))
    images = subprocess.run([need("pdfimages"), "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert len(images.strip().splitlines()) == 2  # the header lines only: no image was fetched


def test_a_station_logs_no_weasyprint_steps_at_info(failed_record, tmp_path, caplog):
    import logging

    from inspector.commands.serve import configure_logging

    progress = logging.getLogger("weasyprint.progress")
    try:
        for level, steps in (("DEBUG", True), ("INFO", False)):
            configure_logging(level)
            caplog.clear()
            with caplog.at_level(logging.INFO):
                reports.render_inspection(failed_record, tmp_path / level, formats=("pdf",))
            assert any(r.name == "weasyprint.progress" for r in caplog.records) is steps
    finally:
        progress.setLevel(logging.NOTSET)


LONG_SERIAL, LONG_STATION = "SN2026LOT7734" + "X" * 51, "LINE7CELL12ENDKONTROLLEGEHAEUSEOBERSEITE" + "Y" * 24  # 64 each, no break


def test_long_serials_and_stations_keep_every_column_on_the_page(sample, tmp_path):
    """A 64-character serial or station (both allowed) widened the tables past the A4 page: the failed-parts and escapes
    tables lost score, defect type, QA review, name and comments, and the inspection report's serial ran off the paper."""
    import json

    root, records = sample
    # two stations: a shift of one has no Station column (the header names it)
    parts = [dict(r, serial=LONG_SERIAL, station=LONG_STATION[:-1] + "AB"[i % 2]) for i, r in enumerate(records[:40])]
    escaped = next(p for p in parts if p["verdict"] == "PASS")
    escaped["reviews"] = [{"outcome": "escape", "truth": "defect", "type": "scratch", "by": "Ana", "note": "audit",
                           "at": escaped["timestamp"]}]
    out = reports.render_shift(parts, {"name": "long"}, tmp_path, formats=("pdf",), store_root=root)
    text = pdftext(out["pdf"])
    headers = [" ".join(ln.split()) for ln in text.splitlines() if re.match(r"\s*Time\s+Serial\s+Station", ln)]
    assert len(headers) >= 2 and all("Score Defect" in h for h in headers)  # the failed parts' table (and its repeats), the escapes'
    assert all(h.endswith("QA") for h in headers[:-1]) and headers[-1].endswith("Name Comments")  # "QA review" on two lines
    assert re.search(r"\bscratch\s+Ana\s+audit\b", text)  # the escape's row: its type, reviewer and note
    inspection = reports.render_inspection(parts[0], tmp_path, formats=("pdf",), store_root=root)
    boxes = subprocess.run([need("pdftotext"), "-bbox", str(inspection["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    right = max(float(x) for x in re.findall(r'xMax="([\d.]+)"', boxes))
    assert right <= 595.3 - 13 * 72 / 25.4 + 0.5, json.dumps(right)  # inside the right margin of 13 mm


def page_texts(path) -> list[str]:
    return [subprocess.run([need("pdftotext"), "-f", str(i), "-l", str(i), "-layout", str(path), "-"], capture_output=True, text=True,
                           check=True).stdout for i in range(1, pages(path) + 1)]


@pytest.mark.parametrize("lang", ["en", "zh", "es"])
def test_every_page_says_what_is_signed(sample, tmp_path, lang):
    """The running footer named only the report's kind: a separated sign-off page was tied to no part and no shift."""
    from reports.i18n import translations

    if lang == "zh" and cjk_font() is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk)")
    _ = translations(lang).gettext
    root, records = sample
    part = next(r for r in records if r["verdict"] == "FAIL" and len(r["defects"]) >= 2)
    inspection = reports.render_inspection(part, tmp_path, formats=("pdf",), lang=lang, store_root=root)
    subject = f"{_('Serial')}: {part['serial']} · {_('Inspection ID')}: {part['inspection_id']}"
    texts = page_texts(inspection["pdf"])
    assert len(texts) >= 2 and all(subject in t for t in texts), subject
    shift = reports.render_shift(records, {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z", "station": "line1-station3"},
                                 tmp_path, formats=("pdf",), lang=lang, store_root=root)
    subject = f"{_('Station')}: line1-station3 · {_('Period')}: 2026-11-26 06:00 UTC – 2026-11-26 14:00 UTC"
    texts = page_texts(shift["pdf"])
    assert len(texts) >= 2 and all(subject in t for t in texts), subject
