"""`inspector report` and `inspector bench report` against a real store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.store import Store
from reports.sample import make_records
from tests.cli import assert_one_line_error, cli


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A store holding 60 inspections between 06:00 and 10:00 UTC on 2026-11-26, images on disk."""
    root = tmp_path_factory.mktemp("cli_store")
    store = Store(root)
    records = make_records(60, root=root, hours=4.0, image_size=96, fail_rate=0.2, seed=11)
    for r in records:
        store.add(r)
    store.close()
    return root, records


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_shift_report_for_a_period(store_dir, tmp_path, capsys):
    root, records = store_dir
    out = run_json(capsys, "report", "--db", str(root), "--from", "2026-11-26T07:00Z", "--to", "2026-11-26T09:00:00+00:00",
                   "--format", "html", "--out", str(tmp_path), "--worst", "3", "--json")
    inside = [r for r in records if "2026-11-26T07:00" <= r["timestamp"] < "2026-11-26T09:00"]
    assert out["inspections"] == len(inside) and out["fail"] == sum(r["verdict"] == "FAIL" for r in inside)
    assert (out["start"], out["end"]) == ("2026-11-26T07:00:00.000Z", "2026-11-26T09:00:00.000Z")
    html = tmp_path / "shift-20261126T0700Z-20261126T0900Z.html"
    assert out["reports"] == [{"html": str(html)}]
    text = html.read_text(encoding="utf-8")
    assert f'<div class="v">{len(inside)}</div>' in text and text.count('class="thumb"') == 3
    assert text.count("data:image/jpeg") == 3  # the thumbnails came from the store's image files
    assert len(list(tmp_path.glob("inspection-*.html"))) == 3


@pytest.mark.parametrize("tz, start, end", [("Europe/Berlin", "2026-11-26T08:00", "2026-11-26T10:00"),
                                             ("local", "2026-11-26T12:30", "2026-11-26T14:30")])  # local: $TZ, Asia/Kolkata
def test_times_without_an_offset_and_the_report_are_on_the_zones_clock(store_dir, tmp_path, capsys, monkeypatch, tz, start, end):
    root, records = store_dir
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    out = run_json(capsys, "report", "--db", str(root), "--tz", tz, "--from", start, "--to", end, "--format", "html",
                   "--out", str(tmp_path), "--json")
    assert (out["start"], out["end"]) == ("2026-11-26T07:00:00.000Z", "2026-11-26T09:00:00.000Z")
    assert out["inspections"] == sum("2026-11-26T07:00" <= r["timestamp"] < "2026-11-26T09:00" for r in records)
    text = (tmp_path / "shift-20261126T0700Z-20261126T0900Z.html").read_text(encoding="utf-8")
    assert ("2026-11-26 08:00 CET" if tz == "Europe/Berlin" else "2026-11-26 12:30 IST") in text and "UTC" not in text
    rc = main(["report", "--db", str(root), "--tz", tz, "--from", start, "--to", end, "--format", "html", "--out", str(tmp_path / "text")])
    said = capsys.readouterr().out
    local = "2026-11-26 08:00:00 Europe/Berlin" if tz == "Europe/Berlin" else "2026-11-26 12:30:00 Asia/Kolkata"
    assert rc == 0 and f"from {local} (2026-11-26T07:00:00.000Z) to " in said  # the UTC time alone before


def test_a_station_config_gives_the_store_and_the_report_settings(store_dir, tmp_path, capsys):
    """`--config`: the station's store, name and `reports` section (language, zone, formats, letterhead); options win."""
    root, records = store_dir
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    config = tmp_path / "station.yaml"
    config.write_text(f"""station: {{name: line1-station3}}
model: {{path: /models/m.ckpt}}
source: {{type: mqtt}}
mqtt: {{prefix: factory/line1/station3}}
store: {{data_dir: {root}}}
reports: {{lang: es, timezone: Europe/Berlin, formats: [html], organisation: ACME Plant 2, document: QF-7.5-03, logo: {tmp_path / 'logo.svg'}}}
""")
    out = run_json(capsys, "report", "--config", str(config), "--from", "2026-11-26T08:00", "--to", "2026-11-26T10:00",
                   "--out", str(tmp_path / "a"), "--json")
    assert out["start"] == "2026-11-26T07:00:00.000Z" and set(out["reports"][0]) == {"html"}
    assert out["inspections"] == sum("2026-11-26T07:00" <= r["timestamp"] < "2026-11-26T09:00" and r["station"] == "line1-station3" for r in records)
    text = (tmp_path / "a" / "shift-line1-station3-20261126T0700Z-20261126T0900Z-es.html").read_text(encoding="utf-8")
    assert "Informe de turno" in text and "08:00 CET" in text and "ACME Plant 2" in text and "data:image/svg+xml;base64," in text
    out = run_json(capsys, "report", "--config", str(config), "--from", "2026-11-26T08:00Z", "--to", "2026-11-26T10:00Z", "--lang", "en",
                   "--tz", "UTC", "--organisation", "Other Co", "--logo", "", "--out", str(tmp_path / "b"), "--json")
    text = (tmp_path / "b" / "shift-line1-station3-20261126T0800Z-20261126T1000Z.html").read_text(encoding="utf-8")
    assert "Shift report" in text and "08:00 UTC" in text and "Other Co" in text and "QF-7.5-03" in text and "data:image/svg" not in text


def test_inspection_reports_by_id_in_chinese_with_pdf(store_dir, tmp_path, capsys):
    pytest.importorskip("weasyprint")
    root, records = store_dir
    ids = [r["inspection_id"] for r in records if r["verdict"] == "FAIL"][:2]
    assert main(["report", "--db", str(root / "inspections.sqlite"), "--inspection", *ids, "--lang", "zh", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(tmp_path / f"inspection-{i}-zh.{ext}") for i in ids for ext in ("html", "pdf"))
    assert "检测报告" in (tmp_path / f"inspection-{ids[0]}-zh.html").read_text(encoding="utf-8")
    assert (tmp_path / f"inspection-{ids[0]}-zh.pdf").read_bytes()[:5] == b"%PDF-"


def test_inspection_given_again_adds_its_ids_and_an_id_twice_is_one_report(store_dir, tmp_path, capsys):
    # `--inspection A --inspection B` wrote B's report alone, saying nothing of A; `A A` wrote A's twice
    root, records = store_dir
    a, b = [r["inspection_id"] for r in records][:2]
    assert main(["report", "--db", str(root), "--inspection", a, "--inspection", b, a, "--format", "html", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / f"inspection-{i}.html") for i in (a, b)]


def test_a_stored_frame_cut_short_is_not_available_whichever_the_formats(tmp_path):
    """A part image damaged on disk after the station stored it: `--format html` left it out ("Image not available"),
    but `--format html,pdf` (whose WeasyPrint, once imported, makes Pillow pad a file cut short) showed it padded
    with grey in both files, as it would in any process that had imported WeasyPrint before (a test worker's)."""
    import subprocess
    import sys

    pytest.importorskip("weasyprint")
    store = Store(tmp_path / "data")
    record = make_records(1, root=tmp_path / "data", image_size=96, seed=5)[0]
    store.add(record)
    store.close()
    image = tmp_path / "data" / record["images"]["image"]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    run = subprocess.run([sys.executable, "-m", "inspector", "report", "--db", str(tmp_path / "data"), "--inspection",
                          record["inspection_id"], "--format", "html,pdf", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    html = (tmp_path / "out" / f"inspection-{record['inspection_id']}.html").read_text(encoding="utf-8")
    assert "Image not available" in html and record["images"]["image"] in html


def test_reports_of_the_same_parts_in_two_languages_are_both_kept(store_dir, tmp_path, capsys):
    """The operators' Chinese report, then QA's English one of the same shift into one folder: the second replaced the
    first (its shift report, its worst parts' pages and the parts' inspection reports)."""
    root, records = store_dir
    ident = next(r["inspection_id"] for r in records if r["verdict"] == "FAIL")
    names = {}
    for lang in ("zh", "en", "es"):
        shift = run_json(capsys, "report", "--db", str(root), "--from", "2026-11-26T06:00Z", "--to", "2026-11-26T14:00Z", "--format", "html",
                         "--lang", lang, "--out", str(tmp_path), "--json")["reports"][0]["html"]
        part = run_json(capsys, "report", "--db", str(root), "--inspection", ident, "--format", "html", "--lang", lang,
                        "--out", str(tmp_path), "--json")["reports"][0]["html"]
        names[lang] = (Path(shift), Path(part))
    for lang, heading in (("zh", "检测报告"), ("en", "Inspection report"), ("es", "Informe de inspección")):
        shift, part = names[lang]
        assert f'<html lang="{lang}">' in shift.read_text(encoding="utf-8") and heading in part.read_text(encoding="utf-8")
        assert part.name == f"inspection-{ident}{'' if lang == 'en' else '-' + lang}.html"
        assert all(f'<html lang="{lang}">' in (tmp_path / u).read_text(encoding="utf-8")
                   for u in re.findall(r'href="(inspection-[^"]+)"', shift.read_text(encoding="utf-8")))


def test_empty_period_still_writes_a_report(store_dir, tmp_path, capsys):
    root, _ = store_dir
    out = run_json(capsys, "report", "--db", str(root), "--from", "2026-12-01", "--to", "2026-12-02", "--format", " html, ",
                   "--out", str(tmp_path), "--json")  # spaces and empty names are dropped, as in the other list options
    assert out["inspections"] == 0
    assert "No inspections were recorded" in (tmp_path / "shift-20261201T0000Z-20261202T0000Z.html").read_text(encoding="utf-8")


def test_inputs_accepted_but_never_inspected_are_named_in_the_shift_report(tmp_path, capsys):
    """They are in no record: a shift report that left them out let QA sign off a shift with parts nobody judged."""
    import reports.render

    store = Store(tmp_path / "data")
    store.add(make_records(1, seed=3)[0] | {"timestamp": "2026-12-05T07:00:00.000Z"})
    times = {"in-1": "2026-12-05T06:10:00.000Z", "in-2": "2026-12-05T06:00:00.000Z", "in-3": "2026-12-05T07:59:00.000Z",
             "late": "2026-12-05T08:00:00.000Z", "day-before": "2026-12-04T23:00:00.000Z"}
    for ident, at in times.items():
        store.accept(ident, {"serial": f"S-{ident}", "source": "folder:x.png", "timestamp": at}, b"\x89PNG")
        store.set_aside(ident, "frame 64x64 px does not contain the model's region of interest <here>")
    store.close()
    out = run_json(capsys, "report", "--db", str(tmp_path / "data"), "--from", "2026-12-05T06:00Z", "--to", "2026-12-05T08:00Z",
                   "--format", "html", "--out", str(tmp_path / "r"), "--json", "--lang", "es")
    assert (out["inspections"], out["not_inspected"]) == (1, 3)
    html = (tmp_path / "r" / "shift-20261205T0600Z-20261205T0800Z-es.html").read_text(encoding="utf-8")
    rows = re.findall(r"<td>(S-[\w-]+)</td>", html.split('id="not-inspected"')[1])
    assert rows == ["S-in-2", "S-in-1", "S-in-3"]  # in time order; the period's end and the day before left out
    assert "3 entradas se aceptaron pero no pudieron inspeccionarse" in html and "region of interest &lt;here&gt;" in html
    assert "refused/2026-12-05/in-1.png" in html
    count, first = Store(tmp_path / "data", readonly=True).refused("2026-12-05T06:00:00.000Z", "2026-12-05T08:00:00.000Z", limit=2)
    assert (count, [w["inspection_id"] for w in first]) == (3, ["in-2", "in-1"])
    html = reports.render.shift_html([], {"not_inspected": {"count": count, "items": first}})
    assert "The first 2 of them, in time order." in html and "No inspections were recorded" in html
    assert "not-inspected" not in reports.render.shift_html([], {"not_inspected": {"count": "x", "items": None}})  # malformed: none


def test_inputs_refused_on_arrival_are_counted_by_cause_in_the_shift_report(tmp_path, capsys):
    """An image that cannot be decoded is in no record either: it was only answered on the error topic and /health."""
    store = Store(tmp_path / "data")
    store.add(make_records(1, seed=3)[0] | {"timestamp": "2026-12-05T07:00:00.000Z"})
    for i, kind in enumerate(["invalid", "invalid", "queue_full", "something_new"]):
        store.note_refusal({"timestamp": f"2026-12-05T06:0{i}:00.000Z", "source": "image", "serial": f"R-{i}", "kind": kind,
                            "reason": f"image: <cause {i}>"})
    store.close()
    argv = ["report", "--db", str(tmp_path / "data"), "--from", "2026-12-05T06:00Z", "--to", "2026-12-05T08:00Z", "--format", "html",
            "--out", str(tmp_path / "r")]
    out = run_json(capsys, *argv, "--json", "--lang", "es")
    assert (out["inspections"], out["not_inspected"], out["refused_on_arrival"]) == (1, 0, 4)
    html = (tmp_path / "r" / "shift-20261205T0600Z-20261205T0800Z-es.html").read_text(encoding="utf-8")
    section = html.split('id="refused-on-arrival"')[1]
    assert "4 entradas fueron rechazadas al llegar" in section and 'id="not-inspected"' not in html
    causes = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td></tr>", section)
    assert causes == [("Entrada no válida o ilegible", "2"), ("Cola de inspección llena", "1"), ("something_new", "1")]
    assert re.findall(r"<td>(R-\d)</td>", section) == ["R-0", "R-1", "R-2", "R-3"] and "&lt;cause 3&gt;" in section
    assert main(argv) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("1 inspections (0 FAIL) from ") and first_line.endswith("; 4 refused on arrival"), first_line


@pytest.mark.parametrize("start, end, name", [("2026-11-26Z", "9999-12-31T23:59:59Z", "shift-20261126T0000Z-99991231T2359Z.html"),
                                              ("0001-01-02Z", "2026-11-27Z", "shift-00010102T0000Z-20261127T0000Z.html")])
def test_a_period_to_the_calendars_ends(store_dir, tmp_path, capsys, start, end, name):
    root, records = store_dir  # a traceback, and a year 1 named "shift-10102T0000-..." before
    out = run_json(capsys, "report", "--db", str(root), "--from", start, "--to", end, "--format", "html", "--out", str(tmp_path), "--json")
    assert out["inspections"] == len(records) and out["reports"] == [{"html": str(tmp_path / name)}]


@pytest.mark.parametrize("argv, message", [
    (["--db", "{missing}", "--from", "2026-11-26"], r"store .*: no inspections.sqlite there"),
    (["--db", "{root}", "--inspection", "nope"], r"inspection 'nope': not in store"),
    (["--db", "{root}", "--from", "26/11/2026"], r"--from '26/11/2026': not a time"),
    (["--db", "{root}", "--from", ""], r"--from '': not a time"),  # a script's unset $START: not a report of everything
    (["--db", "{root}", "--from", "2026-11-26T09:00Z", "--to", "2026-11-26T08:00Z"], r"the period is empty"),
    (["--db", "{root}", "--from", "2999-01-01"], r"--to now \(\d{4}-.*\): the period is empty"),
    (["--db", "{root}", "--to", "2026-11-26T08:00Z", "--inspection", "x"], r"--to needs --from"),
    (["--db", "{root}", "--from", "2026-11-26", "--lang", "fr"], r"language 'fr': choose one of en, zh, es"),
    (["--db", "{root}", "--from", "2026-11-26", "--tz", "CEST"], r"--tz: time zone 'CEST': unknown; give an IANA name"),
    # the hour the clocks skip, and the one they repeat: before, a window of the wrong length, silently
    (["--db", "{root}", "--from", "2026-03-08T02:30", "--tz", "America/New_York"],
     r"--from '2026-03-08T02:30': 2026-03-08T02:30 does not exist in America/New_York \(the clocks go forward then\)"),
    (["--db", "{root}", "--from", "2026-11-01T00:00", "--to", "2026-11-01T01:30", "--tz", "America/New_York"],
     r"--to '2026-11-01T01:30': .* happens twice in America/New_York \(the clocks go back then\); give an offset: "
     r"2026-11-01T01:30-04:00 or 2026-11-01T01:30-05:00"),
    (["--db", "{root}", "--from", "2026-11-26", "--format", "html,docx"], r"report format docx"),
    (["--db", "{root}", "--from", "2026-11-26", "--format", " , "], r"report format \(none\)"),
    (["--db", "{root}", "--from", "2026-11-26", "--worst", "-1"], r"--worst -1"),
    (["--db", "{root}"], r"one of the arguments --from --inspection is required"),
    (["--from", "2026-11-26"], r"no store given: give --db STORE \(the data directory\) or --config STATION.yaml"),
    (["--db", "{root}", "--from", "2026-11-26", "--logo", "{missing}"], r"report logo .*nowhere: no such file; give a PNG"),
    (["--config", "{missing}", "--from", "2026-11-26"], r"config .*nowhere"),
])
def test_bad_input_is_one_line_and_exit_2(store_dir, tmp_path, capsys, argv, message):
    root, _ = store_dir
    argv = [a.format(root=root, missing=tmp_path / "nowhere") for a in argv]
    assert main(["report", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "nowhere").exists()  # a wrong --db is not created as a new store


@pytest.mark.parametrize("where", ["store", "database"])
def test_a_store_or_its_database_that_is_a_link_loop_is_one_line(store_dir, tmp_path, capsys, where):
    """`--db` a link leading back to itself (a -> b -> a), or its inspections.sqlite one, was a RuntimeError traceback."""
    import os

    root = tmp_path / "store"
    if where == "store":
        os.symlink(tmp_path / "back", root)
        message = f"store {root}: a link that leads back to itself (a loop); remove the link"
    else:
        root.mkdir()
        message = f"store {root}: no inspections.sqlite there"
    os.symlink(root if where == "store" else root / "inspections.sqlite", tmp_path / "back")
    if where == "database":
        os.symlink(tmp_path / "back", root / "inspections.sqlite")
    for argv in (["report", "--db", root, "--from", "2026-11-26", "--out", tmp_path / "out"], ["review", "--db", root, "--export", tmp_path / "x"]):
        rc, _, err = cli(capsys, *argv)
        assert_one_line_error(rc, err, message)


def test_bench_report_runs_and_reports_medians(capsys):
    pytest.importorskip("weasyprint")
    out = run_json(capsys, "bench", "report", "--n", "40", "--repeat", "1", "--image-size", "64", "--json")
    assert out["n"] == 40
    for key in ("store_query_s", "shift_html_s", "shift_html_pdf_s", "inspection_html_s", "inspection_pdf_s"):
        assert out[key] > 0
    assert out["shift_pdf_bytes"] > 10_000
    assert out["shift_html_pdf_s"] >= out["shift_html_s"]
    assert out["shift_pdf_vs_html"] == pytest.approx(out["shift_html_pdf_s"] / out["shift_html_s"], rel=0.01)  # the same run's baseline


def test_the_printed_fail_count_is_the_reports(tmp_path, capsys):
    store = Store(tmp_path / "db")
    for i, verdict in enumerate(("FAIL", "fail", "PASS")):  # a record written by another tool, in lower case
        store.add({"inspection_id": f"v{i}", "timestamp": f"2026-11-26T06:0{i}:00.000Z", "verdict": verdict, "score": 1.0, "threshold": 0.5})
    store.close()
    out = run_json(capsys, "report", "--db", str(tmp_path / "db"), "--from", "2026-11-26T06:00Z", "--to", "2026-11-26T07:00Z",
                   "--format", "html", "--out", str(tmp_path / "o"), "--json")
    assert out["fail"] == 2  # 1 before, beside "Failed 2" in the report


# -- inspector review: QA's verdict beside the machine's -------------------------------------------------------------------

@pytest.fixture
def reviewed_store(tmp_path):
    """A store of its own (reviews change records): two FAILs and two PASSes in one hour."""
    root = tmp_path / "data"
    store = Store(root)
    records = make_records(40, root=root, hours=1.0, image_size=64, fail_rate=0.3, seed=5)
    for r in records:
        store.add(r)
    store.close()
    store = Store(root)
    store.add({**records[-1], "inspection_id": "held-1", "verdict": "REVIEW", "images": {}})  # a verdict neither PASS nor FAIL
    store.close()
    fails = [r["inspection_id"] for r in records if r["verdict"] == "FAIL"]
    passes = [r["inspection_id"] for r in records if r["verdict"] == "PASS"]
    return root, records, fails[:2], passes[:2]


def test_reviews_are_kept_beside_the_machines_verdict_and_shown_in_the_reports(reviewed_store, tmp_path, capsys):
    root, records, fails, passes = reviewed_store
    out = run_json(capsys, "review", "--db", str(root), fails[0], "--truth", "good", "--by", "A. Li", "--note", "glare <b>", "--json")
    assert [(r["inspection_id"], r["verdict"], r["outcome"], r["by"]) for r in out["reviews"]] == [(fails[0], "FAIL", "false_alarm", "A. Li")]
    assert main(["review", "--db", str(root), passes[0], "--truth", "defect", "--type", "crack"]) == 0
    assert capsys.readouterr().out.strip() == f"{passes[0]}: PASS, reviewed as defect (crack): escape"
    run_json(capsys, "review", "--db", str(root), fails[1], fails[1], "--truth", "defect", "--json")  # an id given twice: reviewed once
    run_json(capsys, "review", "--db", str(root), fails[1], "--truth", "good", "--json")  # a second look: it stands, the first stays
    held = run_json(capsys, "review", "--db", str(root), "held-1", "--truth", "defect", "--type", "pit\n\x1b[31m", "--json")
    assert held["reviews"][0]["outcome"] == "reviewed_defect" and held["reviews"][0]["type"] == "pit [31m"  # one printable line
    store = Store(root, readonly=True)
    before = {r["inspection_id"]: r for r in records}
    for ident in (fails[0], passes[0], fails[1]):
        after = store.get(ident)
        assert {k: v for k, v in after.items() if k not in ("reviews", "published_at")} == before[ident]  # what the machine said, unchanged
    assert [r["outcome"] for r in store.get(fails[1])["reviews"]] == ["confirmed", "false_alarm"]
    store.close()
    start, end = records[0]["timestamp"][:16], "2999-01-01"
    shift = run_json(capsys, "report", "--db", str(root), "--from", start, "--to", end, "--format", "html", "--out", str(tmp_path / "r"),
                     "--json", "--lang", "zh")
    html = Path(shift["reports"][0]["html"]).read_text(encoding="utf-8")
    table = html.split('id="reviews"')[1].split("</table>")[0]
    assert re.findall(r"<td>(\S+)</td><td class=\"num\">(\d+)</td>", table) == [("误报", "2"), ("漏检", "1"), ("已复核：缺陷", "1")]
    assert html.split('id="failed"')[1].split("</section>")[0].count("<td>误报</td>") == 2
    escapes = html.split('id="escapes"')[1].split("</section>")[0]  # the escaped PASS is in no failed-parts list: named here
    assert escapes.count("<tr><td>") == 1 and "裂纹" in escapes
    run_json(capsys, "report", "--db", str(root), "--inspection", fails[0], "--format", "html", "--out", str(tmp_path / "i"), "--json")
    page = next((tmp_path / "i").glob("inspection-*.html")).read_text(encoding="utf-8")
    review = page.split('id="review"')[1].split("</section>")[0]
    assert "<strong>False alarm</strong>" in review and "A. Li" in review and "glare &lt;b&gt;" in review


def test_a_part_is_reviewed_by_its_serial_as_last_inspected(reviewed_store, capsys):
    """QA at a rework station has the part and its serial, not the inspection id."""
    root, records, fails, _ = reviewed_store
    first = next(r for r in records if r["inspection_id"] == fails[0])
    store = Store(root)
    store.add({**first, "inspection_id": "again-1", "timestamp": "2999-01-01T00:00:00.000Z", "verdict": "PASS"})  # inspected again
    store.close()
    out = run_json(capsys, "review", "--db", str(root), "--serial", first["serial"], "--truth", "defect", "--json")
    assert [(r["inspection_id"], r["outcome"]) for r in out["reviews"]] == [("again-1", "escape")]
    rc = main(["review", "--db", str(root), "--serial", first["serial"], "SN-NOWHERE", "--truth", "good"])
    assert_one_line_error(rc, capsys.readouterr().err, "serial 'SN-NOWHERE': no inspection of it in store")
    store = Store(root, readonly=True)
    assert len(store.get("again-1")["reviews"]) == 1 and "reviews" not in store.get(fails[0])  # nothing written by the refused one
    store.close()


def test_every_outcome_a_review_writes_is_one_the_reports_read():
    from inspector.review import OUTCOMES as WRITTEN
    from reports.records import OUTCOMES as READ  # a review of any other outcome would be left out of the reports

    assert set(WRITTEN.values()) | {f"reviewed_{truth}" for truth in ("good", "defect")} == set(READ)


def test_export_copies_the_reviewed_parts_images_into_the_layout_fit_labels_reads(reviewed_store, tmp_path, capsys):
    from model.labels import load_labels

    root, records, fails, passes = reviewed_store
    by_id = {r["inspection_id"]: r for r in records}
    main(["review", "--db", str(root), fails[0], "--truth", "good"])
    main(["review", "--db", str(root), passes[0], "--truth", "defect", "--type", "crack"])
    main(["review", "--db", str(root), fails[1], "--truth", "defect"])  # confirmed: the type the model named
    main(["review", "--db", str(root), passes[1], "--truth", "defect"])  # an escape without a type: nothing to learn it as
    capsys.readouterr()
    out = run_json(capsys, "review", "--db", str(root), "--export", str(tmp_path / "x"), "--json")
    machine_type = by_id[fails[1]]["defect_type"]
    assert out["copied"] == dict(sorted({"good": 1, "crack": 1, machine_type: 1}.items()))
    assert out["skipped"] == {"a defect without a type (review it with --type)": 1}
    copied = tmp_path / "x" / "good" / f"{fails[0]}.png"
    assert copied.read_bytes() == (root / by_id[fails[0]]["images"]["image"]).read_bytes()
    labels = load_labels(tmp_path / "x")  # good/ is not a type
    assert sorted(labels.types) == sorted({"crack", machine_type})
    main(["review", "--db", str(root), fails[1], "--truth", "defect", "--type", "CRACK"])  # typed otherwise: one class still
    capsys.readouterr()
    cased = run_json(capsys, "review", "--db", str(root), "--export", str(tmp_path / "c"), "--json")
    first = "crack" if by_id[passes[0]]["timestamp"] < by_id[fails[1]]["timestamp"] else "CRACK"  # spelt as first met
    assert cased["copied"] == {first: 2, "good": 1} and sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted([first, "good"])
    (root / by_id[passes[0]]["images"]["image"]).unlink()  # a store that keeps no images of PASSes
    again = run_json(capsys, "review", "--db", str(root), "--export", str(tmp_path / "y"), "--json")
    assert "crack" not in again["copied"] and again["skipped"]["no stored image (store.save_images)"] == 1
    good_image = root / by_id[fails[0]]["images"]["image"]
    good_image.write_bytes(good_image.read_bytes()[: good_image.stat().st_size // 2])  # damaged on the disk since
    cut = run_json(capsys, "review", "--db", str(root), "--export", str(tmp_path / "w"), "--json")
    assert "good" not in cut["copied"] and cut["skipped"]["a stored image damaged since it was stored (it does not read whole)"] == 1
    first = min(by_id[i]["timestamp"] for i in (*fails, *passes))
    before = run_json(capsys, "review", "--db", str(root), "--export", str(tmp_path / "z"), "--to", first, "--json")
    assert before["copied"] == {} and before["skipped"] == {}  # --to: parts inspected before it only


@pytest.mark.parametrize("made", [False, True])
def test_an_export_interrupted_part_way_takes_back_what_it_copied(reviewed_store, tmp_path, capsys, monkeypatch, made):
    """Ctrl-C (or a full disk) part-way through review --export left the images copied so far: the folder read as a whole
    export, to fit from, and the same command again refused it ('is not a new or empty folder')."""
    import shutil

    root, _, fails, passes = reviewed_store
    main(["review", "--db", str(root), *fails, *passes, "--truth", "good"])
    out = tmp_path / "x"
    if made:
        out.mkdir()  # an empty folder given: it stays
    real, calls = shutil.copyfile, []

    def copy_then_ctrl_c(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(shutil, "copyfile", copy_then_ctrl_c)
    capsys.readouterr()
    assert main(["review", "--db", str(root), "--export", str(out)]) == 130
    assert (sorted(out.iterdir()) == []) if made else not out.exists()
    monkeypatch.setattr(shutil, "copyfile", real)
    assert run_json(capsys, "review", "--db", str(root), "--export", str(out), "--json")["copied"] == {"good": 4}


def test_a_second_export_into_the_folder_one_is_copying_into_is_refused(reviewed_store, tmp_path, capsys, monkeypatch):
    """Two QA engineers exporting into one new folder at once: each found it empty and copied into it, mixed (and one cut
    short took back the other's images). The second is refused while the first copies."""
    from inspector.commands import review

    root, _, fails, passes = reviewed_store
    main(["review", "--db", str(root), *fails, *passes, "--truth", "good"])
    out, real, second = tmp_path / "x", review.open_store, []

    def meanwhile(where):  # the first has found the folder new, and opens the store
        if not second:
            second.append("running")
            second[:] = [main(["review", "--db", str(root), "--export", str(out)]), capsys.readouterr().err]
        return real(where)

    monkeypatch.setattr(review, "open_store", meanwhile)
    capsys.readouterr()
    assert run_json(capsys, "review", "--db", str(root), "--export", str(out), "--json")["copied"] == {"good": 4}
    assert_one_line_error(second[0], second[1], "another `inspector review --export` is copying into it")
    assert len(list((out / "good").iterdir())) == 4 and not list(tmp_path.glob(".*.lock"))


@pytest.mark.parametrize("when", ["before the copy", "during the check"])
def test_an_image_the_serving_stations_retention_removes_meanwhile_is_skipped_not_a_failed_export(
        reviewed_store, tmp_path, capsys, monkeypatch, when):
    """`serve` prunes old records and their images while QA exports the reviewed ones: an image removed between its
    check and its copy stopped the export as 'cannot write good/ (No such file or directory); choose a writable folder
    with room', and took back every image copied before it."""
    import shutil

    from inspector.commands import review

    root, records, fails, passes = reviewed_store
    main(["review", "--db", str(root), *fails, *passes, "--truth", "good"])
    doomed = root / next(r for r in records if r["inspection_id"] == fails[1])["images"]["image"]
    real_check, real_copy = review._reads_whole, shutil.copyfile

    def check(path):
        ok = real_check(path)
        if path == doomed and when == "before the copy":
            doomed.unlink()  # retention lands after the check
        return ok

    def copy(src, dst):
        if Path(src) == doomed and when == "during the check":
            raise AssertionError("copied an image found gone")
        return real_copy(src, dst)

    if when == "during the check":
        monkeypatch.setattr(review, "_reads_whole", lambda path: (doomed.unlink() if path == doomed else None) or real_check(path))
    else:
        monkeypatch.setattr(review, "_reads_whole", check)
    monkeypatch.setattr(shutil, "copyfile", copy)
    capsys.readouterr()
    out = run_json(capsys, "review", "--db", str(root), "--export", str(tmp_path / "x"), "--json")
    assert out["copied"] == {"good": 3} and out["skipped"] == {"no stored image (store.save_images)": 1}
    assert len(list((tmp_path / "x" / "good").iterdir())) == 3


@pytest.mark.parametrize("argv, message", [
    (["{fail}", "nope", "x/../y", "--truth", "good"], r"inspection 'nope', 'x/../y': not in store .*\(nothing was written\)"),
    (["{fail}", "{fail_serial}", "--truth", "good"], r"inspection '[^']+': not in store .*, but '[^']+' is a part's serial; give --serial to review"),
    (["{fail}", "--truth", "defect", "--type", "Good"], r"--type Good: not a defect type; name the defect"),
    # kept before, then skipped by --export ('a defect without a type') or exported as a folder fit --labels refuses
    (["{fail}", "--truth", "defect", "--type", "unknown_"], r"--type unknown_: not a defect type; name the defect"),
    (["{fail}", "--truth", "defect", "--type", "_"], r"--type _: not a defect type; name the defect"),
    (["--export", "{missing}", "--from", "2026-11-27", "--to", "2026-11-26"], r"the period is empty"),
    (["--export", "{fail_file}/sub"], r"--export .*a-file/sub: .*a-file is a file; give a folder path"),
    (["{fail}"], r"give the inspection ids and --truth good\|defect, or --export DIR"),
    (["{fail}", "--truth", "good", "--from", "2026-11-26"], r"--from and --to choose the parts --export copies"),
    (["{fail}", "--export", "{missing}"], r"--export copies what was reviewed: give it without ids"),
    (["--export", "{fail_file}"], r"--export .*: is not a new or empty folder"),
    (["--export", "{missing}", "--from", "yesterday"], r"--from 'yesterday': not a time"),
    (["{fail}", "--truth", "good", "--type", "crack"], r"--type names a defect's type: give it with --truth defect"),
    (["{fail}", "--truth", "defect", "--note", "  "], r"--note is empty"),
    (["{fail}", "--truth", "maybe"], r"argument --truth: invalid choice: 'maybe'"),
    (["--serial", "--truth", "good"], r"--serial: give the parts' serials"),
    (["--serial", "--export", "{missing}"], r"--export copies what was reviewed: give it without ids, --serial"),
    (["{fail}", "--truth", "good", "--db", "{missing}"], r"store .*nowhere: no inspections.sqlite there"),
    (["{fail}", "--truth", "good", "--db", ""], r"no store given"),
])
def test_review_bad_input_is_one_line_and_writes_nothing(reviewed_store, tmp_path, capsys, argv, message):
    from tests.cli import assert_one_line_error

    root, _, fails, _ = reviewed_store
    (tmp_path / "a-file").write_text("x")
    store = Store(root, readonly=True)
    serial = store.get(fails[0])["serial"]
    store.close()
    argv = [a.format(fail=fails[0], missing=tmp_path / "nowhere", fail_file=tmp_path / "a-file", fail_serial=serial) for a in argv]
    rc = main(["review", *(["--db", str(root)] if "--db" not in argv else []), *argv])
    err = capsys.readouterr().err
    assert_one_line_error(rc, err)
    assert re.search(message, err), err
    store = Store(root, readonly=True)
    assert "reviews" not in store.get(fails[0])
    store.close()


@pytest.mark.parametrize("start, said", [("2026-10-25T02:30", "happens twice in Europe/Berlin"),
                                         ("2026-03-29T02:30", "does not exist in Europe/Berlin")])
def test_review_export_refuses_a_time_the_clocks_repeat_or_skip_as_report_does(reviewed_store, tmp_path, capsys, monkeypatch,
                                                                                start, said):
    """--from without an offset went to the C library, which took one of the two 02:30s (or the skipped one) unsaid:
    an hour of reviewed parts in or out of the export, where `inspector report` asked for the offset."""
    from tests.cli import assert_one_line_error

    root = reviewed_store[0]
    monkeypatch.setenv("TZ", "Europe/Berlin")
    rc = main(["review", "--db", str(root), "--export", str(tmp_path / "x"), "--from", start])
    err = capsys.readouterr().err
    assert_one_line_error(rc, err)
    assert f"--from '{start}': " in err and said in err and not (tmp_path / "x").exists(), err
