"""HTML reports: self-contained, escaped, robust to missing images, partial records and empty shifts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import reports
from reports.render import inspection_html, shift_html

from .conftest import XSS


class Refs(HTMLParser):
    """Every URL-bearing attribute and every element name in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [(tag, v) for k, v in attrs if k in ("src", "href", "srcset", "data", "poster", "action") and v]


def refs(html: str) -> Refs:
    p = Refs()
    p.feed(html)
    return p


def test_reports_package_never_imports_torch():
    code = "import sys, reports, reports.sample, reports.render; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_inspection_html_is_self_contained_with_images_inline(sample, failed_record):
    root, _ = sample
    html = inspection_html(failed_record, store_root=root)
    r = refs(html)
    assert "script" not in r.tags
    images = [u for t, u in r.urls if t == "img"]
    assert len(images) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in images)
    assert not [u for t, u in r.urls if t != "img"], "an inspection page links nowhere"
    assert "default-src 'none'" in html  # CSP: nothing may load from outside
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", html)


def test_hostile_serial_is_escaped_everywhere(sample, failed_record):
    root, records = sample
    evil = dict(failed_record, station='"><img src=x onerror=alert(2)>', defects=[{"type": "<i>dent</i>", "box": [1, 2, 3, 4]}],
                model={"id": "</style><script>alert(3)</script>"})
    for html in (inspection_html(evil, store_root=root), shift_html([*records, evil], {"title": "<b>Shift</b>"}, store_root=root)):
        assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html and "<i>dent</i>" not in html and "<b>Shift</b>" not in html and "</style><script>" not in html
        assert "script" not in refs(html).tags


def test_missing_and_escaping_image_paths_render_a_clear_note(sample, failed_record, tmp_path):
    root, _ = sample
    outside = tmp_path / "secret.png"
    outside.write_bytes((root / failed_record["images"]["image"]).read_bytes())
    for escape in (os.path.relpath(outside, root), str(outside)):
        record = dict(failed_record, images={"image": "images/gone/none_image.png", "overlay": escape})
        html = inspection_html(record, store_root=root)
        assert "data:image" not in html  # neither the missing file nor the one outside the store
        assert html.count("Image not available") == 2 and "images/gone/none_image.png" in html
    assert "data:image" in inspection_html(dict(failed_record, images={"image": str(outside)}))  # no store: the caller's path
    html = inspection_html(dict(failed_record, images={}), store_root=root)
    assert html.count("No image recorded") == 2


def test_a_file_that_is_not_an_image_is_not_embedded(sample, failed_record):
    root, _ = sample
    (root / "notes.txt").write_text("not an image")
    html = inspection_html(dict(failed_record, images={"image": "notes.txt", "overlay": failed_record["images"]["overlay"]}), store_root=root)
    assert html.count("data:image") == 1 and "Image not available" in html


@pytest.mark.parametrize("record", [{}, {"inspection_id": "x"}, {"inspection_id": "y", "verdict": "FAIL", "defects": None, "score": None,
                                                                   "images": None, "timestamp": 12, "model": "m"}])
def test_partial_records_render(record, tmp_path):
    out = reports.render_inspection(record, tmp_path, formats=("html",))
    html = out["html"].read_text(encoding="utf-8")
    assert "Inspection report" in html and "No image recorded" in html


def test_render_inspection_writes_named_files_in_each_language(sample, failed_record, tmp_path):
    root, _ = sample
    for lang, heading, verdict in (("en", "Inspection report", "FAIL"), ("zh", "检测报告", "不合格"), ("es", "Informe de inspección", "RECHAZADA")):
        out = reports.render_inspection(failed_record, tmp_path / lang, formats=["html"], lang=lang, store_root=root)
        assert list(out) == ["html"] and out["html"].name == f"inspection-{failed_record['inspection_id']}.html"
        html = out["html"].read_text(encoding="utf-8")
        assert f'<html lang="{lang}">' in html and heading in html and verdict in html
        assert not list((tmp_path / lang).glob(".*tmp"))


def test_shift_html_sections_links_and_worst_pages(sample, tmp_path):
    root, records = sample
    out = reports.render_shift(records, {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z", "worst_n": 5,
                                         "config": {"decision": {"min_region_px": 16}}, "lot": "L-42"},
                               tmp_path, formats=("html",), store_root=root)
    assert out["html"].name == "shift-20261126T0600-20261126T1400.html"
    html = out["html"].read_text(encoding="utf-8")
    for section in ("totals", "pareto", "scores", "p-chart", "throughput", "worst", "failed", "model", "signoff"):
        assert f'id="{section}"' in html
    assert html.count('<svg class="chart"') == 4 and "L-42" in html and "decision.min_region_px" in html
    links = [u for t, u in refs(html).urls if t == "a"]
    assert len(links) == 5 and all((tmp_path / u).is_file() for u in links)
    n_fail = sum(r["verdict"] == "FAIL" for r in records)
    assert f'<div class="v">{n_fail}</div>' in html


def test_no_thumbnails_when_none_are_asked_for(sample, tmp_path):
    root, records = sample
    out = reports.render_shift(records, {"worst_n": 0}, tmp_path, formats=("html",), store_root=root)
    html = out["html"].read_text(encoding="utf-8")
    assert 'id="worst"' not in html and "data:image" not in html and 'id="failed"' in html
    assert [p.name for p in tmp_path.iterdir()] == ["shift.html"]


def test_empty_shift_renders_a_clear_report(tmp_path):
    out = reports.render_shift([], {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z"}, tmp_path, formats=("html",))
    html = out["html"].read_text(encoding="utf-8")
    assert "No inspections were recorded in this period." in html and "2026-11-26 06:00 UTC" in html
    assert 'id="signoff"' in html and "<svg" not in html
    assert [p.name for p in tmp_path.iterdir()] == [out["html"].name]


@pytest.mark.parametrize("kwargs, message", [({"formats": ("docx",)}, "report format docx"), ({"formats": ()}, "report format"),
                                             ({"lang": "fr"}, "language 'fr'")])
def test_bad_arguments_raise_one_line_errors(kwargs, message, tmp_path):
    with pytest.raises(reports.ReportError, match=re.escape(message)) as err:
        reports.render_inspection({"inspection_id": "a"}, tmp_path, **kwargs)
    assert "\n" not in str(err.value)


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(reports.ReportError, match="report folder .*cannot be created"):
        reports.render_shift([], {}, blocker / "sub", formats=("html",))


def test_missing_cjk_font_is_stated_in_a_chinese_pdf(failed_record, monkeypatch):
    import reports.render

    monkeypatch.setattr(reports.render, "cjk_font", lambda: None)
    assert 'id="font-note"' in inspection_html(failed_record, "zh", formats=("pdf",))
    assert 'id="font-note"' not in inspection_html(failed_record, "zh", formats=("html",))  # a browser brings its own fonts
    assert 'id="font-note"' not in inspection_html(failed_record, "en", formats=("pdf",))
