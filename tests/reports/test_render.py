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
from reports.render import emit, inspection_html, out_folder, shift_html

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
    languages = (("en", "Inspection report", "FAIL"), ("zh", "检测报告", "不合格"), ("es", "Informe de inspección", "RECHAZADA"))
    written = [reports.render_inspection(failed_record, tmp_path, formats=["html"], lang=lang, store_root=root) for lang, _, _ in languages]
    for (lang, heading, verdict), out in zip(languages, written):
        suffix = "" if lang == "en" else f"-{lang}"  # one folder: the operators' Chinese report overwrote QA's English one
        assert list(out) == ["html"] and out["html"].name == f"inspection-{failed_record['inspection_id']}{suffix}.html"
        html = out["html"].read_text(encoding="utf-8")
        assert f'<html lang="{lang}">' in html and heading in html and verdict in html
    assert not list(tmp_path.glob(".*tmp"))


def test_shift_html_sections_links_and_worst_pages(sample, tmp_path):
    root, records = sample
    out = reports.render_shift(records, {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T14:00:00Z", "worst_n": 5,
                                         "config": {"decision": {"min_region_px": 16}}, "lot": "L-42"},
                               tmp_path, formats=("html",), store_root=root)
    assert out["html"].name == "shift-20261126T0600Z-20261126T1400Z.html"
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


def test_shift_reports_of_other_periods_and_stations_are_named_apart():
    from reports.render import shift_name

    names = [shift_name(m) for m in ({"start": "2026-11-26T06:00Z", "end": "2026-11-26T14:00Z", "station": "st3"},
                                      {"start": "2026-11-26T06:00Z", "end": "2026-11-26T14:00Z"},
                                      {"end": "2026-11-26T14:00:05Z"}, {"end": "2026-11-26T14:00:40Z"}, {"name": "lot7"}, {})]
    assert names == ["shift-st3-20261126T0600Z-20261126T1400Z", "shift-20261126T0600Z-20261126T1400Z",
                     "shift-until-20261126T140005Z", "shift-until-20261126T140040Z", "lot7", "shift"]


@pytest.mark.parametrize("kwargs, message", [({"formats": ("docx",)}, "report format docx"), ({"formats": ()}, "report format"),
                                             ({"lang": "fr"}, "language 'fr'"), ({"tz": "Mars/Olympus"}, "time zone 'Mars/Olympus': unknown")])
def test_bad_arguments_raise_one_line_errors(kwargs, message, tmp_path):
    with pytest.raises(reports.ReportError, match=re.escape(message)) as err:
        reports.render_inspection({"inspection_id": "a"}, tmp_path, **kwargs)
    assert "\n" not in str(err.value)


def test_formats_as_one_string_and_a_bad_period_time(tmp_path):
    out = reports.render_shift([], {"start": "2026-11-26T06:00Z", "end": "2026-11-26T14:00Z"}, tmp_path, formats="html")
    assert sorted(out) == ["html"]  # "html" was the formats h, t, m and l
    with pytest.raises(reports.ReportError, match="start 'yesterday': not a time; give ISO 8601"):  # dropped before: another period
        reports.render_shift([], {"start": "yesterday"}, tmp_path, formats=("html",))


def test_times_are_on_the_zones_clock_through_a_change_of_daylight_saving(tmp_path):
    """A plant's QA reads its own clock: in Berlin, 00:30Z on the night the clocks go back is 02:30 CEST, and 01:30Z is
    02:30 again, CET. Records keep UTC; every time in the report names its zone."""
    records = [{"inspection_id": f"p{i}", "timestamp": t, "verdict": "FAIL", "score": 2.0 + i, "threshold": 1.0}
               for i, t in enumerate(["2026-10-25T00:30:00.000Z", "2026-10-25T01:30:00.000Z"])]
    meta = {"start": "2026-10-25T00:00:00Z", "end": "2026-10-25T02:00:00Z"}
    html = reports.render_shift(records, meta, tmp_path / "berlin", formats=("html",), tz="Europe/Berlin")["html"].read_text(encoding="utf-8")
    assert "2026-10-25 02:00 CEST – 2026-10-25 03:00 CET" in html  # the period
    assert "<td>2026-10-25 02:30:00 CEST</td>" in html and "<td>2026-10-25 02:30:00 CET</td>" in html  # the failed parts
    assert "Time (Europe/Berlin)" in html and ">02:00 CEST<" in html  # the time charts' axis and first subgroup, zoned across the change
    assert "UTC" not in html
    default = reports.render_shift(records, meta, tmp_path / "utc", formats=("html",))["html"].read_text(encoding="utf-8")
    assert "<td>2026-10-25 00:30:00 UTC</td>" in default and "Time (UTC)" in default and "CET" not in default
    page = reports.render_inspection(records[0], tmp_path / "chicago", ("html",), tz="America/Chicago")["html"].read_text(encoding="utf-8")
    assert "2026-10-24 19:30:00 CDT" in page and "UTC" not in page


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(reports.ReportError, match="report folder .*cannot be written"):
        reports.render_shift([], {}, blocker / "sub", formats=("html",))
    with pytest.raises(reports.ReportError, match="report folder .*file: is a file; choose a folder for --report"):
        out_folder(blocker, "--report")
    assert out_folder(tmp_path / "a" / "b", "--report").is_dir() and not list((tmp_path / "a" / "b").iterdir())  # its try left nothing


def test_a_pdf_that_fails_leaves_the_earlier_html_and_pdf_as_they_were(tmp_path, monkeypatch):
    import reports.render

    emit("r", tmp_path, "<p>old</p>", ("html", "pdf"))  # rendered by WeasyPrint
    old_pdf = (tmp_path / "r.pdf").read_bytes()
    assert old_pdf.startswith(b"%PDF-")

    def broken(html):
        raise reports.ReportError("the renderer failed")

    monkeypatch.setattr(reports.render, "html_to_pdf", broken)
    with pytest.raises(reports.ReportError, match="the renderer failed"):
        emit("r", tmp_path, "<p>new</p>", ("html", "pdf"))
    assert (tmp_path / "r.html").read_text() == "<p>old</p>" and (tmp_path / "r.pdf").read_bytes() == old_pdf


def test_missing_cjk_font_is_stated_in_a_chinese_pdf(failed_record, monkeypatch):
    import reports.render

    monkeypatch.setattr(reports.render, "cjk_font", lambda: None)
    assert 'id="font-note"' in inspection_html(failed_record, "zh", formats=("pdf",))
    assert 'id="font-note"' not in inspection_html(failed_record, "zh", formats=("html",))  # a browser brings its own fonts
    assert 'id="font-note"' not in inspection_html(failed_record, "en", formats=("pdf",))


def _rec(i: int, verdict: str, score: float, threshold: float = 4.2, **extra) -> dict:
    return {"inspection_id": f"2026112706{i:04d}-part{i:04d}", "verdict": verdict, "score": score, "threshold": threshold,
            "timestamp": f"2026-11-27T06:{i % 60:02d}:00.000Z", "station": "s1", **extra}


def test_a_pass_just_below_its_threshold_never_reads_equal_to_it():
    html = inspection_html(_rec(1, "PASS", 4.1999995))
    assert "<td>4.199999</td>" in html and "<td>4.2</td>" in html  # both read 4.2 before
    gauge = re.search(r"Score ([0-9.]+)", html).group(1)
    assert float(gauge) < 4.2 and "Threshold 4.2" in html


def test_a_slow_rate_of_parts_keeps_its_digits():
    records = [_rec(i, "PASS", 1.0) for i in range(10)]
    html = shift_html(records, {"start": "2026-11-27T06:00:00Z", "end": "2026-11-27T23:00:00Z"})  # 10 parts in 17 hours
    assert re.search(r'<div class="v">0\.59</div><div class="l">Parts per hour', html)  # "1" before
    html = shift_html(records + [_rec(10, "PASS", 1.0, timestamp="2026-11-27T06:00:01.000Z")], {})  # 11 in 9 min 1 s
    assert re.search(r'<div class="v">73</div><div class="l">Parts per hour', html)


def test_a_column_of_scores_reads_alike():
    from reports.numbers import STYLES

    records = [_rec(i, "FAIL", v) for i, v in enumerate((8.234, 34.25, 20.1))] + [_rec(3, "FAIL", 4.2000001)]
    html = shift_html(records, {})
    for text in ("8.23", "34.25", "20.10", "4.2000001"):  # 8.234 over 34.25 and 20.1 before; at the threshold, the digits that tell
        assert f'<td class="num">{text}</td>' in html, text
    assert STYLES["es"].column(1234.5, 4.2) == "1234,50" and STYLES["en"].column(None, 1.0) == "—"


def test_yield_never_rounds_up_to_100_while_a_part_failed():
    records = [_rec(i, "PASS", 1.0) for i in range(2000)] + [_rec(2000, "FAIL", 9.0)]
    html = shift_html(records, {})
    assert '<div class="v" id="yield">99.9%</div>' in html  # 100.0% before
    assert '<td class="num">2,000</td><td class="num">99.9%</td>' in html  # the PASS share as the yield reads, not 100.0%


def test_worst_parts_are_told_apart_and_unknown_types_translated():
    records = [_rec(1, "FAIL", 9.0, defect_type="unknown"), _rec(2, "FAIL", 8.0, defect_type="unknown")]
    html = shift_html(records, {}, lang="zh")
    assert "20261127060001-part0001" in html and "20261127060002-part0002" in html  # both labelled "202611270600" before
    assert "未知类型" in html and ">unknown<" not in html


def test_unjudged_parts_stay_out_of_the_p_chart_subgroups():
    from reports.records import inspection, shift_stats

    records = [_rec(i, v, 1.0, timestamp="2026-11-27T06:00:00.000Z") for i, v in enumerate(("FAIL", "REVIEW", "PASS", "PASS"))]
    g = shift_stats([inspection(r) for r in records]).subgroups[0]
    assert g.n == 4 and g.p == 1 / 3  # as p-bar counts: 1 of 3 judged (1 of 4 before)


def test_two_stations_shift_reports_get_their_own_files(tmp_path):
    meta = {"start": "2026-11-27T06:00:00.000Z", "end": "2026-11-27T07:00:00.000Z"}
    a = reports.render_shift([_rec(1, "PASS", 1.0)], {**meta, "station": "line1"}, tmp_path, ("html",))
    b = reports.render_shift([_rec(2, "PASS", 1.0)], {**meta, "station": "line2"}, tmp_path, ("html",))
    assert a["html"] != b["html"] and a["html"].exists() and b["html"].exists()  # the second overwrote the first before


def test_the_inspection_page_names_the_type_the_shift_report_counts():
    html = inspection_html(_rec(1, "FAIL", 9.0, defects=[{"type": "anomaly", "box": [1, 2, 3, 4]}]))
    assert re.search(r"Defect type</th><td>anomaly", html)  # "—" before, while the shift report said "anomaly"
    # a region's peak is on the map's scale: a peak of -0.5 beside a threshold of 1.7 read as a contradiction
    assert "Peak: the anomaly map's highest value in the region, on the map's own scale, not the score's." in html
    assert "峰值：该区域内异常图的最高值" in inspection_html(_rec(1, "FAIL", 9.0, defects=[{"type": "anomaly", "box": [1, 2, 3, 4]}]), lang="zh")
    assert "Peak:" not in inspection_html(_rec(1, "PASS", 0.1))


def test_stage_names_and_units_are_translated():
    rec = _rec(1, "FAIL", 9.0, timings_ms={"decode": 1.5, "infer": 20.0}, image={"width": 96, "height": 96})
    shift, page = shift_html([rec], {}, lang="zh"), inspection_html(rec, lang="zh")
    assert "<td>推理</td>" in shift and "<td>infer</td>" not in shift  # English in a Chinese report before
    assert "推理 20.0 毫秒" in page and "96 × 96 像素" in page


def test_parts_neither_pass_nor_fail_are_said_to_be_out_of_the_yield():
    from reports.records import inspection, shift_stats

    records = [_rec(0, "FAIL", 9.0), _rec(1, "REVIEW", 1.0), _rec(2, "PASS", 1.0)]
    assert [v for _, v in shift_stats([inspection(r) for r in records]).scores] == ["FAIL", "PASS"]  # REVIEW drawn as PASS before
    assert "1 part was neither PASS nor FAIL; it is" in shift_html(records, {})


def test_counts_agree_in_number_and_are_grouped_as_the_language_groups():
    one = shift_html([_rec(0, "FAIL", 9.0), _rec(1, "REVIEW", 1.0), _rec(2, "PASS", 1.0, timestamp="not a time")], {})
    assert "1 record has no valid timestamp; it is" in one and "1 records" not in one
    records = [_rec(i, "FAIL" if i % 400 == 0 else "PASS", 4.0 + i / 10_000) for i in range(12_345)]
    en, es = shift_html(records, {}), shift_html(records, {}, lang="es")
    assert '<div class="v">12,345</div>' in en and '<div class="v">12.345</div>' in es  # 12345 beside "2,500" parts per hour before
    assert re.search(r'id="yield">99,7\xa0%<', es)
    assert "e+" not in inspection_html(_rec(1, "FAIL", 123456.7)).split("<svg")[0]  # the score read 1.235e+05


def test_a_records_warnings_are_on_its_page_in_its_language():
    known = ("image 288x96 px is unlike the training images (96x96 px); check the camera's resolution, crop and orientation, "
             "or fit on images like it")
    html = inspection_html(_rec(1, "FAIL", 9.0, warnings=[known, "a warning of a later version <b>"]), lang="es")
    assert "Advertencia: La imagen de 288x96 px no se parece a las de entrenamiento (96x96 px)" in html  # English before
    assert "Advertencia: a warning of a later version &lt;b&gt;" in html  # one it does not know: as written, escaped
    assert "Advertencia" not in inspection_html(_rec(1, "FAIL", 9.0, warnings="not a list"), lang="es")


def test_a_shift_counts_the_parts_that_carry_each_warning():
    from model.quality import WARNINGS

    size = "image {} px is unlike the training images (96x96 px); check the camera's resolution, crop and orientation, or fit on images like it"
    records = ([_rec(i, "FAIL", 9.0, warnings=[WARNINGS["dark"], WARNINGS["dark"]]) for i in range(5)]  # one part, one count
               + [_rec(10, "PASS", 1.0, warnings=[WARNINGS["dark"]]), _rec(11, "FAIL", 9.0, warnings=[size.format("288x96")]),
                  _rec(12, "PASS", 1.0, warnings=[size.format("288x96")]), _rec(13, "PASS", 1.0, warnings=[size.format("96x300")]),
                  _rec(14, "PASS", 1.0)])
    html = shift_html(records, {})
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td></tr>",
                      html[html.index('id="warnings"'):html.index("</table>", html.index('id="warnings"'))])
    unlike = "px is unlike the training images (96x96 px); check the camera&#39;s resolution, crop and orientation, or fit on images like it"
    assert rows == [("Image is much darker than the training images (no light, a covered lens or too short an exposure); check the light "
                     "and the camera", "6", "5"), (f"Image 288x96 {unlike}", "2", "1"), (f"Image 96x300 {unlike}", "1", "0")]
    assert "review it before it is scrapped" in html and "报废前请复核" in shift_html(records, {}, lang="zh")
    assert 'id="warnings"' not in shift_html([_rec(14, "PASS", 1.0)], {})


def test_the_image_quality_warnings_read_in_each_language():
    """reports.warnings keeps its own copy of model.quality's texts (reports imports no model code): each must match."""
    from model.quality import WARNINGS
    from reports.i18n import translations
    from reports.warnings import translate_warning

    for text in WARNINGS.values():
        en = translate_warning(translations("en").gettext, text)
        assert en == text[0].upper() + text[1:]
        for lang in ("zh", "es"):
            assert translate_warning(translations(lang).gettext, text) not in (text, en), (lang, text)
    html = inspection_html(_rec(1, "FAIL", 9.0, warnings=[WARNINGS["blurred"]]), lang="zh")
    assert "图像比训练图像模糊；请检查对焦" in html


def test_a_shift_with_more_failed_parts_than_the_table_lists_names_the_worst_and_writes_them_all(tmp_path):
    """The table listed the first 200 by time: 36 minutes of a 2,983-FAIL shift, not the worst parts."""
    import csv

    from reports.render import MAX_FAILED_ROWS

    n = MAX_FAILED_ROWS + 50
    records = [_rec(i, "FAIL", 5.0 + (i * 37 % n) / 10, timestamp=f"2026-11-27T{6 + i // 60:02d}:{i % 60:02d}:00.000Z")
               for i in range(n)] + [_rec(9999, "PASS", 1.0)]
    out = reports.render_shift(records, {"start": "2026-11-27T06:00:00Z", "end": "2026-11-27T14:00:00Z"}, tmp_path, ("html",))
    assert set(out) == {"html", "csv"} and out["csv"].name == "shift-20261127T0600Z-20261127T1400Z-failed.csv"
    html = out["html"].read_text(encoding="utf-8")
    table = html[html.index('<table class="failed">'):]
    table = table[:table.index("</table>")]
    listed = re.findall(r"<tr><td>(2026-11-27 \d\d:\d\d:\d\d) UTC</td>", table)
    assert len(listed) == len(re.findall("<tr><td>", table)) == MAX_FAILED_ROWS
    scores = sorted((r["score"] for r in records if r["verdict"] == "FAIL"), reverse=True)
    shown = [float(s) for s in re.findall(r'<td class="num">([0-9.]+)</td><td>', table)]
    assert sorted(shown, reverse=True) == scores[:MAX_FAILED_ROWS]  # the highest-scoring, not the first by time
    assert listed == sorted(listed)  # in time order
    assert "The 200 failed parts with the highest score relative to their threshold, in time order." in html
    assert f"… and 50 more failed parts, with lower scores; every failed part is listed in {out['csv'].name} beside this report." in html
    rows = list(csv.DictReader(out["csv"].open(encoding="utf-8")))
    assert len(rows) == n and {r["inspection_id"] for r in rows} == {r["inspection_id"] for r in records[:n]}
    assert float(rows[1]["score"]) == records[1]["score"] and rows[0]["timestamp"] == records[0]["timestamp"]
    few = reports.render_shift(records[:10], {}, tmp_path / "few", ("html",))
    assert set(few) == {"html"} and "failed parts with the highest score" not in few["html"].read_text(encoding="utf-8")


def test_the_failed_parts_csv_keeps_a_serial_from_running_as_a_formula(tmp_path):
    import csv

    from reports.records import inspection
    from reports.render import MAX_FAILED_ROWS, failed_rows

    records = [_rec(i, "FAIL", 5.0 + i / 100) for i in range(MAX_FAILED_ROWS + 2)]
    records[0]["serial"] = '=HYPERLINK("http://x","open")'
    records[1]["score"] = None  # ranked last, not above every part with a margin
    out = reports.render_shift(records, {}, tmp_path, ("html",))
    rows = list(csv.DictReader(out["csv"].open(encoding="utf-8")))
    assert rows[0]["serial"] == "'" + records[0]["serial"] and rows[1]["score"] == ""
    shown, more = failed_rows([inspection(r) for r in records])
    assert more == 2 and records[1]["inspection_id"] not in {p.id for p in shown}


def test_without_weasyprint_a_pdf_run_writes_nothing_and_says_how_to_install_it(sample, tmp_path, monkeypatch):
    """It wrote the HTML and the worst parts' pages (13 files), then failed at the PDF."""
    import sys

    root, records = sample
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    with pytest.raises(reports.ReportError, match=re.escape("PDF reports need WeasyPrint >= 68: pip install 'inspector-edge[pdf]'")):
        reports.render_shift(records, {}, tmp_path / "out", ("html", "pdf"), store_root=root)
    assert not (tmp_path / "out").exists()
    assert reports.render_shift(records, {}, tmp_path / "html", ("html",), store_root=root)["html"].is_file()


def test_the_live_view_takes_malformed_health_and_records():
    from reports.render import live_html

    for health in (None, {"model": "abc"}, {"verdicts": [1, 2], "rejected": "x"}, {}):
        html = live_html([{"verdict": None}, "junk"], health, lang="zh")  # a page, never a traceback in the daemon's HTTP thread
        assert '<div class="v" id="inspected">0</div>' in html and "<h1>实时视图</h1>" in html


def test_a_region_found_where_the_map_peaks_is_said_to_be_so(failed_record):
    """With no pixel over the pixel threshold, the region shown is the map's peak: a report gave it as a located defect."""
    assert 'id="map-peak"' not in inspection_html(failed_record)
    peak = dict(failed_record, defects=[dict(failed_record["defects"][0], located_by="map_peak")])
    for lang, says in (("en", "No pixel reached the pixel threshold"), ("zh", "没有像素达到像素阈值"), ("es", "Ningún píxel alcanzó")):
        page = inspection_html(peak, lang)
        assert 'id="map-peak"' in page and says in page


def test_escapes_beyond_the_table_are_counted_and_every_one_is_written_to_a_csv(tmp_path):
    """The escapes table kept the first 200 of 250 and said nothing: 50 escaped parts were in no table and no file."""
    import csv

    from reports.render import MAX_FAILED_ROWS

    n = MAX_FAILED_ROWS + 50
    review = {"outcome": "escape", "truth": "defect", "type": "scratch", "by": "QA", "note": "found at final audit"}
    records = [_rec(i, "PASS", 1.0, timestamp=f"2026-11-27T{6 + i // 60:02d}:{i % 60:02d}:00.000Z", reviews=[review]) for i in range(n)]
    out = reports.render_shift(records, {"start": "2026-11-27T06:00:00Z", "end": "2026-11-27T14:00:00Z"}, tmp_path, ("html",))
    assert set(out) == {"html", "escapes_csv"} and out["escapes_csv"].name == "shift-20261127T0600Z-20261127T1400Z-escapes.csv"
    html = out["html"].read_text(encoding="utf-8")
    assert section_of(html, "escapes").count("<tr><td>") == MAX_FAILED_ROWS
    assert f"… and 50 more escapes; every escape is listed in {out['escapes_csv'].name} beside this report." in html
    rows = list(csv.DictReader(out["escapes_csv"].open(encoding="utf-8")))
    assert [r["inspection_id"] for r in rows] == [r["inspection_id"] for r in records]
    assert rows[-1]["review"] == "escape" and rows[-1]["review_note"] == "found at final audit" and rows[-1]["verdict"] == "PASS"
    assert "… and 50 more escapes (see the inspection store)." in shift_html(records, {})  # no file beside an HTML string
    assert "escapes-more" not in shift_html(records[:MAX_FAILED_ROWS], {})


def section_of(html: str, name: str) -> str:
    return re.search(rf'<section[^>]*id="{name}".*?</section>', html, re.S).group(0)


def test_two_thresholds_in_one_shift_print_apart_and_the_chart_draws_the_most_used():
    """5.638107657 and 5.63849 both read 5.638 ("More than one threshold was in use: 5.638; 5.638"); and the chart,
    which draws three, drew the lowest three of four, not the ones most parts were judged at."""
    records = [_rec(i, "PASS", 5.0, threshold=5.638107657) for i in range(3)] + [_rec(3, "PASS", 5.0, threshold=5.63849)]
    html = shift_html(records, {})
    assert "More than one threshold was in use during this period: 5.6381; 5.6385." in html
    assert "<p>Threshold: 5.6381, 5.6385</p>" in html
    assert "Threshold 5.6381</text>" in html and "Threshold 5.6385</text>" in html  # the histogram's labels
    used = [_rec(i, "PASS", 5.0, threshold=t) for i, t in enumerate([1.0, 2.0, 3.0] + [9.0] * 5)]
    chart = section_of(shift_html(used, {}), "scores")
    assert "Threshold 9</text>" in chart and chart.count("stroke-dasharray=\"6 3\"") - 1 == 3  # the lines (and the legend's)


def test_a_failed_part_never_reads_as_none_failed():
    """One FAIL in 3,000 read "FAIL 1 0.0%"."""
    records = [_rec(i, "PASS", 1.0) for i in range(2999)] + [_rec(2999, "FAIL", 9.0)]
    verdicts = section_of(shift_html(records, {}), "totals").split('<table class="verdicts">')[1].split("</table>")[0]
    assert '<td>FAIL</td><td class="num">1</td><td class="num">0.1%</td>' in verdicts
    assert '<td>PASS</td><td class="num">2,999</td><td class="num">99.9%</td>' in verdicts
    one_in_30000 = shift_html([_rec(i, "PASS", 1.0) for i in range(29999)] + [_rec(29999, "FAIL", 9.0)], {"start": "2026-11-27T06:00:00Z",
                                                                                                       "end": "2026-11-27T07:00:00Z"})
    assert "Mean fraction failed 0.01%" in one_in_30000


def test_a_shift_report_never_overwrites_an_inspection_report_or_another_shift_reports_pages(sample, tmp_path, capsys):
    """Its worst parts' pages were inspection-<id>.html: a shift report (CLI) replaced a filed inspection report's HTML
    in its own language and zone, and each daemon shift report (all in one folder) rewrote the pages older ones link to."""
    import json

    from inspector.cli import main
    from inspector.store import Store

    root, records = sample
    store = Store(tmp_path / "store")
    for r in records[:20]:
        store.add(r)
    store.close()
    worst = max(records[:20], key=lambda r: r["score"] - r["threshold"])["inspection_id"]  # on the shift report too
    db, qa = str(tmp_path / "store"), tmp_path / "qa"
    assert main(["report", "--db", db, "--inspection", worst, "--lang", "zh", "--format", "html", "--out", str(qa)]) == 0
    filed = (qa / f"inspection-{worst}-zh.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["report", "--db", db, "--from", "2026-11-26T06:00Z", "--tz", "UTC", "--format", "html", "--out", str(qa), "--json"]) == 0
    shift = Path(json.loads(capsys.readouterr().out)["reports"][0]["html"])
    assert (qa / f"inspection-{worst}-zh.html").read_text(encoding="utf-8") == filed  # the filed report, as it was
    links = [u for t, u in refs(shift.read_text(encoding="utf-8")).urls if t == "a"]
    assert len(links) == 12 and all((qa / u).is_file() for u in links) and any(worst in u for u in links)
    # the daemon's: two shift reports in one folder, in two languages; each one's links open its own pages
    shifts = tmp_path / "shifts"
    first = reports.render_shift(records[:20], {"start": "2026-11-26T06:00Z", "end": "2026-11-26T07:00Z"}, shifts, ("html",), "zh", root)
    reports.render_shift(records[:20], {"start": "2026-11-26T06:00Z", "end": "2026-11-26T08:00Z"}, shifts, ("html",), "en", root)
    links = [u for t, u in refs(first["html"].read_text(encoding="utf-8")).urls if t == "a"]
    assert links and all('<html lang="zh">' in (shifts / u).read_text(encoding="utf-8") for u in links)


def test_the_station_line_is_on_the_shift_report():
    """The daemon passed station.line ("Production line name, for reports") and no template printed it."""
    html = shift_html([_rec(1, "PASS", 1.0)], {"station": "s1", "line": "Line 7"}, lang="es")
    assert re.search(r'id="period">.*Línea: Line 7', html, re.S)
    assert "Line 7" not in shift_html([_rec(1, "PASS", 1.0)], {})


def test_refusal_reasons_are_marked_as_the_stations_english_words_in_other_languages():
    """The daemon's English reason stood untranslated, unmarked, in a zh or es report."""
    refused = {"count": 1, "items": [{"timestamp": "2026-11-27T06:00:00Z", "serial": "SN-1", "reason": "cannot be decoded"}]}
    assert '<th scope="col">Reason</th>' in shift_html([], {"refused_on_arrival": refused})
    assert '<th scope="col">原因 (工位的英文原文)</th>' in shift_html([], {"refused_on_arrival": refused}, lang="zh")
    assert '<th scope="col">Motivo (texto original de la estación, en inglés)</th>' in shift_html([], {"refused_on_arrival": refused}, lang="es")


def test_the_inspection_report_gives_the_pixel_threshold_its_regions_were_drawn_at(sample, failed_record):
    """Each region's peak was printed with nothing to check it against."""
    root, _ = sample
    html = inspection_html(dict(failed_record, pixel_threshold=3.25), store_root=root)
    assert re.search(r'id="pixel-threshold">Pixel threshold: 3\.25<', html)
    assert 'id="pixel-threshold"' not in inspection_html({k: v for k, v in failed_record.items() if k != "pixel_threshold"}, store_root=root)
    assert "像素阈值: 3.25<" in inspection_html(dict(failed_record, pixel_threshold=3.25), store_root=root, lang="zh")


def test_a_small_region_area_keeps_its_digits(failed_record):
    """At 1 µm a pixel a 300 px region is 0.0003 mm²: the inspection report printed 0.00, as if it had no area."""
    defects = [dict(failed_record["defects"][0], area_px=300, area_mm2=0.0003), dict(failed_record["defects"][1], area_mm2=1.5)]
    html = inspection_html(dict(failed_record, defects=defects))
    cells = re.findall(r'<td class="num">([^<]*)</td>', html)
    assert "0.0003" in cells and "1.50" in cells and "0.00" not in cells, cells
