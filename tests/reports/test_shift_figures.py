"""Shift and inspection reports as a QA signer meets them: figures that must agree, periods not yet over,
bad options, layout and the docs' commands."""

from __future__ import annotations

import re

import pytest

from reports.render import shift_html
from tests.cli import assert_one_line_error, cli


def _rec(i: int, verdict: str, score: float, **extra) -> dict:
    return {"inspection_id": f"a50-{i:05d}", "verdict": verdict, "score": score, "threshold": 4.2,
            "timestamp": f"2026-11-27T06:{i % 60:02d}:{i // 60 % 60:02d}.000Z", "station": "s1", **extra}


def test_the_pass_share_reads_as_the_yield_beside_it():
    """278 PASS of 300: the yield read 92.6 % (rounded down) and the PASS row beside it 92.7 %."""
    records = [_rec(i, "PASS", 1.0) for i in range(278)] + [_rec(278 + i, "FAIL", 9.0) for i in range(22)]
    html = shift_html(records, {})
    assert '<div class="v" id="yield">92.6%</div>' in html
    assert re.search(r'<td class="num">278</td><td class="num">92\.6%</td>', html), "PASS share not as the yield reads"
    assert '<td class="num">22</td><td class="num">7.4%</td>' in html  # rounded up: the two add up to 100 %
    one = shift_html([_rec(0, "PASS", 1.0)] + [_rec(1 + i, "FAIL", 9.0) for i in range(2999)], {})
    assert '<div class="v" id="yield">0.1%</div>' in one  # a part passed: never 0.0 %, and the row reads alike
    assert re.search(r'<td class="num">1</td><td class="num">0\.1%</td>', one)


def test_a_period_not_yet_over_counts_its_rate_up_to_when_the_report_was_made():
    """06:00-14:00 reported at 10:00 with 100 parts a minute apart from 08:20: 12.5 parts per hour (over 8 hours, 4 of
    them still to come), and nothing said the shift was still running."""
    from datetime import datetime, timedelta, timezone

    from reports.records import inspection, shift_stats

    t0 = datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)
    parts = [inspection({"inspection_id": f"p{i}", "verdict": "FAIL" if i % 10 == 0 else "PASS", "score": 1.0, "threshold": 4.2,
                         "timestamp": (t0 + timedelta(minutes=140 + i)).isoformat()}) for i in range(100)]
    s = shift_stats(parts, t0, t0 + timedelta(hours=8), now=t0 + timedelta(hours=4))
    assert s.until == t0 + timedelta(hours=4) and s.parts_per_hour == 25.0  # 100 parts in the 4 hours so far, not 12.5
    assert len(s.subgroups) == 16 and len(s.reached) == 8  # the chart shows the whole shift; the text counts the bins begun
    done = shift_stats(parts, t0, t0 + timedelta(hours=8), now=t0 + timedelta(hours=9))  # made after the period: as before
    assert done.until is None and done.parts_per_hour == 12.5 and len(done.reached) == 16
    ahead = shift_stats(parts, t0, t0 + timedelta(hours=8), now=t0 + timedelta(hours=1))  # the station's clock ahead of this one
    assert ahead.until == parts[-1].time and ahead.parts_per_hour == 100 / (239 / 60)


def test_the_shift_report_says_its_period_had_not_ended():
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    stamp = lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
    records = [_rec(i, "PASS", 1.0, timestamp=stamp(now - timedelta(minutes=i + 1))) for i in range(30)]
    meta = {"start": stamp(now - timedelta(hours=1)), "end": stamp(now + timedelta(hours=7))}
    for lang, words in (("en", "This period had not ended"), ("zh", "该时段尚未结束"), ("es", "El periodo no había terminado")):
        html = shift_html(records, meta, lang=lang)
        assert 'id="period-open"' in html and words in html, lang
    assert 'id="period-open"' not in shift_html(records, {"start": meta["start"], "end": stamp(now)})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of 40 inspections at station line1-station3, 06:00-10:00 UTC on 2026-11-26 (no image files)."""
    from inspector.store import Store
    from reports.sample import make_records

    root = tmp_path_factory.mktemp("figures_store")
    st = Store(root)
    for r in make_records(40, hours=4.0, seed=5):
        st.add(r)
    st.close()
    return root


def test_a_misspelt_station_is_refused_not_reported_as_an_empty_shift(store, tmp_path, capsys):
    """--station line1-statoin3 wrote a report of "No inspections were recorded in this period" over 40 parts."""
    rc, _out, err = cli(capsys, "report", "--db", store, "--from", "2026-11-26T06:00Z", "--to", "2026-11-26T14:00Z",
                        "--station", "line1-statoin3", "--format", "html", "--out", tmp_path / "a")
    assert_one_line_error(rc, err, "--station 'line1-statoin3'", "'line1-station3'")
    assert not list((tmp_path / "a").glob("shift-*"))
    # the right station on a day it judged nothing still gets its empty report
    rc, out, err = cli(capsys, "report", "--db", store, "--from", "2026-11-27T06:00Z", "--to", "2026-11-27T14:00Z",
                       "--station", "line1-station3", "--format", "html", "--out", tmp_path / "b")
    assert rc == 0 and out.startswith("0 inspections"), err


def test_a_shift_report_without_a_station_keeps_its_period_on_one_line(tmp_path):
    """An empty period with no --station printed 'Period:' on a line of its own, its times on the next (PDF)."""
    pytest.importorskip("weasyprint")
    import subprocess

    import reports
    from tests.reports.conftest import need

    out = reports.render_shift([], {"start": "2026-11-27T06:00:00Z", "end": "2026-11-27T14:00:00Z"}, tmp_path, formats=("pdf",))
    text = subprocess.run([need("pdftotext"), "-layout", str(out["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    assert "Period: 2026-11-27 06:00 UTC – 2026-11-27 14:00 UTC" in text.splitlines()[1], text[:300]


DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "reports.md"


def test_the_docs_code_example_reports_one_station(store, tmp_path, monkeypatch):
    """docs/reports.md's example passed station "line1" over line1-station3's records: its report named two stations."""
    pytest.importorskip("weasyprint")
    from reports.sample import make_records

    code = re.search(r"## From code.*?```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S).group(1)
    record_id = make_records(40, hours=4.0, seed=5)[0]["inspection_id"]
    code = (code.replace('"/var/lib/inspector/station3"', repr(str(store))).replace('"d15cf9dc358d4ed6a93e294009ef1b66"', repr(record_id))
            .replace(', "logo.png"', ""))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/reports.md", "exec"), {})
    shift = next((tmp_path / "qa").glob("shift-*.html")).read_text(encoding="utf-8")
    assert re.search(r'data-subject="工位: ([^·]*) ·', shift).group(1) == "line1-station3"  # "line1, line1-station3" before


def test_the_docs_say_what_report_config_writes_without_reports_formats(store, tmp_path, capsys):
    pytest.importorskip("weasyprint")
    config = tmp_path / "station.yaml"
    config.write_text(f"""station: {{name: line1-station3}}
model: {{path: /models/m.ckpt}}
source: {{type: mqtt}}
mqtt: {{prefix: factory/line1/station3}}
store: {{data_dir: {store}}}
reports: {{lang: es}}
""")
    rc, _out, err = cli(capsys, "report", "--config", config, "--from", "2026-11-26T06:00Z", "--to", "2026-11-26T07:00Z", "--out", tmp_path / "r")
    assert rc == 0, err
    assert {p.suffix for p in (tmp_path / "r").glob("shift-*")} == {".html", ".pdf"}
    docs = " ".join(DOCS.read_text(encoding="utf-8").split())
    assert "without `reports.formats` renders HTML only" not in docs  # it said so, and to add --format html,pdf
    assert "without `reports.formats` (whose daemon renders HTML only) still gets HTML and PDF here" in docs


def test_a_zone_whose_abbreviation_names_several_is_named_once_on_the_page():
    """Asia/Shanghai's times read '14:00 CST' alone: CST is the US's Central time too, 14 hours behind."""
    from reports.render import inspection_html

    record = _rec(1, "FAIL", 9.0)
    page = inspection_html(record, tz="Asia/Shanghai")
    assert "2026-11-27 14:01:00 CST (Asia/Shanghai)</div>" in page
    shift = shift_html([record], {"start": "2026-11-27T06:00:00Z", "end": "2026-11-27T14:00:00Z"}, tz="Asia/Kolkata")
    assert re.search(r'id="period">[^<]*2026-11-27 19:30 IST \(Asia/Kolkata\)', shift)  # IST: India, Ireland or Israel
    assert "(UTC)" not in inspection_html(record, tz="UTC")
    assert re.search(r'id="period">[^<]*06:01 UTC – [^<(]*06:01 UTC · Station', shift_html([record], {}, tz="Etc/UTC"))  # UTC needs no name


def test_a_serial_inspected_again_is_said_and_how_the_totals_count_it():
    """SN-2 failed, then passed when inspected again: 'Inspected 3, Failed 1, Yield 66.6 %' and nothing said that two of
    the three 'parts' were one part; the report now says which serials were inspected more than once, and how counted."""
    records = [_rec(0, "FAIL", 9.0, serial="SN-2"), _rec(1, "PASS", 1.0, serial="SN-2"), _rec(2, "PASS", 1.0, serial="SN-3"),
               _rec(3, "PASS", 1.0, serial="SN-3", station="s2")]  # one serial at two stations: two parts, not a re-inspection
    html = shift_html(records, {})
    note = re.search(r'<p class="note" id="reinspected">(.*?)</p>', html, re.S)
    assert note and "1 serial was inspected more than once (2 inspections)" in note.group(1)
    assert "counted above as a part" in note.group(1)
    assert 'id="reinspected"' not in shift_html(records[1:], {})
    assert "次检测" in shift_html(records, {}, lang="zh") and "inspeccionó más de una vez" in shift_html(records, {}, lang="es")


def test_a_shift_with_qa_reviews_says_its_yield_is_the_stations_verdict():
    """A FAIL QA reviewed as good and a PASS reviewed as defective: 'Yield 50.0 %' beside 'False alarm 1, Escape 1', and
    nothing on the page said whose verdicts the yield counts (the station's, not QA's); the page now says so."""
    review = lambda truth, outcome: {"reviews": [{"truth": truth, "outcome": outcome, "by": "qa"}]}  # noqa: E731
    records = [_rec(0, "FAIL", 9.0, **review("good", "false_alarm")), _rec(1, "PASS", 1.0, **review("defect", "escape")),
               _rec(2, "PASS", 1.0), _rec(3, "FAIL", 9.0)]
    html = shift_html(records, {})
    assert '<div class="v" id="yield">50.0%</div>' in html
    note = re.search(r'<p class="note" id="reviews-note">(.*?)</p>', html, re.S)
    assert note and "the yield and the charts are the station" in note.group(1) and "does not change them" in note.group(1)
    assert 'id="reviews-note"' not in shift_html(records[2:], {})  # no review, nothing to say
    assert "良率" in re.search(r'id="reviews-note">(.*?)</p>', shift_html(records, {}, lang="zh")).group(1)


def test_the_p_charts_interval_is_written_as_the_reports_numbers_are():
    """A lot report over a year read '18 intervalos de 30240 min' beside counts grouped as '30.240' (and '30240' beside
    '30,240' in English): the interval's minutes were the only number on the page written as Python wrote it."""
    parts = [{"inspection_id": f"p{i}", "verdict": "FAIL" if i % 3 == 0 else "PASS", "score": 1.0, "threshold": 4.2,
              "timestamp": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T06:00:00Z"} for i in range(300)]
    period = {"start": "2026-01-01T00:00:00Z", "end": "2026-12-31T00:00:00Z"}
    assert "18 intervals of 30,240 min;" in shift_html(parts, period)
    assert "18 intervalos de 30.240 min;" in shift_html(parts, period, lang="es")
    assert "每个 30,240 分钟" in shift_html(parts, period, lang="zh")
