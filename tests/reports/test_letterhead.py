"""The letterhead of a controlled QA document: organisation, logo and form number on every report, in HTML and PDF."""

from __future__ import annotations

import io
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

import reports
from reports.letterhead import MAX_LOGO_BYTES, letterhead

from .conftest import XSS, need

SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="40" height="10"><rect width="40" height="10"/></svg>'


def png_logo(path):
    buf = io.BytesIO()
    Image.new("RGB", (60, 20), (200, 30, 30)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


def test_letterhead_heads_the_html_reports_escaped(sample, failed_record, tmp_path):
    root, records = sample
    head = letterhead(organisation=f"ACME {XSS}", document="QF-7.5-03 rev. B", logo=png_logo(tmp_path / "logo.png"))
    out = reports.render_shift(records, {}, tmp_path / "shift", ("html",), store_root=root, letterhead=head)
    html = out["html"].read_text(encoding="utf-8")
    block = re.search(r'<div class="letterhead" id="letterhead">(.*?)\n</div>', html, re.S).group(1)
    assert "ACME &lt;script&gt;alert(1)&lt;/script&gt;" in block and XSS not in html
    assert '<span class="doc-id">QF-7.5-03 rev. B</span>' in block and 'src="data:image/png;base64,' in block
    page = reports.render_inspection(failed_record, tmp_path / "one", ("html",), store_root=root, lang="es",
                                     letterhead=letterhead(document="QF-8"))["html"].read_text(encoding="utf-8")
    assert "Documento: <span class=\"doc-id\">QF-8</span>" in page and "<img class=\"logo\"" not in page
    plain = reports.render_inspection(failed_record, tmp_path / "plain", ("html",), store_root=root)["html"].read_text(encoding="utf-8")
    assert 'id="letterhead"' not in plain


def test_pdf_pages_after_the_first_carry_organisation_and_form_number(sample, tmp_path):
    pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")
    root, records = sample
    (tmp_path / "logo.svg").write_bytes(SVG)
    head = letterhead(organisation="ACME Motors, Plant 2", document="QF-7.5-03 rev. B", logo=tmp_path / "logo.svg")
    pdf = reports.render_shift(records, {}, tmp_path, ("pdf",), store_root=root, letterhead=head)["pdf"]
    pages = subprocess.run([need("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout.split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) >= 2
    assert all("ACME Motors, Plant 2" in p and "QF-7.5-03 rev. B" in p for p in pages)  # the letterhead, then each page's head
    assert pages[0].count("QF-7.5-03 rev. B") == 1  # the first page's own letterhead, not a running head beside it


@pytest.mark.parametrize("content, message", [
    (None, r"report logo .*missing.png: no such file; give a PNG, JPEG or SVG file"),
    (b"GIF89a....", r"report logo .*: not a PNG, JPEG or SVG file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(MAX_LOGO_BYTES), r"report logo .*: 2.1 MB; give a logo file under 2 MB"),
    ("cut", r"report logo .*: cannot be decoded \(damaged or cut short\); export the logo again"),
    (b"<svg", r"report logo .*: cannot be decoded"),
    (b"<?xml version='1.0'?><html><svg/></html>", r"report logo .*: cannot be decoded"),  # not an SVG document
])
def test_a_bad_logo_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / ("missing.png" if content is None else "logo.bin")
    if content == "cut":  # a PNG whose copy was cut short
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buf, "PNG")
        content = buf.getvalue()[:200]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(reports.ReportError, match=message) as err:
        letterhead(logo=path)
    assert "\n" not in str(err.value)


def test_texts_are_one_line_and_bounded():
    assert letterhead(organisation="  ACME\n Plant 2 ", document="") == letterhead(organisation="ACME Plant 2")
    assert not letterhead()
    with pytest.raises(reports.ReportError, match="report organisation of 201 characters: keep it to 200"):
        letterhead(organisation="x" * 201)


def _png_header(path, width: int, height: int, mode: int = 2):
    """A PNG of `width` x `height` pixels that is its header alone (mode 2 RGB, 0 grey): Pillow judges its size there."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_a_logo_of_too_many_pixels_is_refused_in_one_line_by_its_count(tmp_path, side):
    """A poster's artwork as the logo: 400 Mpx read 'cannot be decoded (damaged or cut short)', and in its own process
    (`inspector report` loads no model code) 100 Mpx printed Pillow's DecompressionBombWarning before the error."""
    import sys

    logo = _png_header(tmp_path / "poster.png", side, side)
    (tmp_path / "store").mkdir()
    run = subprocess.run([sys.executable, "-m", "inspector", "report", "--db", str(tmp_path / "store"), "--from", "2026-12-01T00:00",
                          "--logo", str(logo), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert f"{side * side:,} pixels, too many for a logo" in run.stderr and "scale it down" in run.stderr


def test_a_stored_frame_the_station_read_is_in_its_report_from_any_process(tmp_path):
    """A 13,500 x 13,500 grey line-scan frame (182 Mpx: over twice Pillow's own limit, under the station's) was read by
    the station, but `inspector report` in its own process left it out of the report as a decompression bomb."""
    import sys

    Image.new("L", (13_500, 13_500), 128).save(tmp_path / "frame.png", compress_level=1)
    code = ("import sys; from reports.images import data_uri; uri = data_uri(sys.argv[1], None); "
            "print(uri[:23] if uri else None)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "frame.png")], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "data:image/jpeg;base64,", (run.stdout, run.stderr)
    assert run.stderr == ""  # nor Pillow's warning, as the report's one-line errors stand alone
