"""Values from outside the station (serials, ids, topics, QA's names and notes, report titles, defect types)
traced into file names, HTML, log lines and SQL lookups."""

from __future__ import annotations

import json
import logging
import queue
from pathlib import Path

import pytest

from inspector.mqtt import Message
from reports.names import safe_name
from tests.cli import assert_one_line_error, cli
from tests.inspector.test_review_access import fill, reviews

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">x</a>'
LETTERS = "𝐀" * 80  # letters of 4 bytes each (Mathematical Bold A): 320 bytes as a file name


def test_outside_text_in_reviews_refusals_and_the_live_view_is_shown_as_text(tmp_path):
    """A guard: the review's type, name and note, the refusal tables and the live view carry text from outside as text."""
    from reports.render import live_html, shift_html
    from reports.sample import make_records

    records = make_records(4, root=tmp_path, hours=1.0, image_size=32, fail_rate=0.5, seed=3)
    for r in records:
        r.update(serial=EVIL, source=f"folder:{EVIL}", defect_type=EVIL)
        r["reviews"] = [{"truth": "defect", "type": EVIL, "by": EVIL, "note": EVIL, "at": "2026-11-26T07:00:00Z",
                         "verdict": "PASS", "outcome": "escape"}]
    item = {"timestamp": records[0]["timestamp"], "serial": EVIL, "source": EVIL, "reason": EVIL, "file": EVIL}
    meta = {"title": EVIL, "lot": EVIL, "not_inspected": {"count": 1, "items": [item]},
            "refused_on_arrival": {"count": 1, "kinds": {EVIL: 1}, "items": [item]}}
    pages = [shift_html(records, meta, store_root=tmp_path),
             live_html(records, {"station": EVIL, "status": EVIL, "model": {"id": EVIL}}, None, last_fail=(records[1], None))]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page and '<a href="javascript' not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_name_of_four_byte_letters_fits_a_file_name():
    """safe_name kept 80 letters whatever their size: 320 bytes, past any file system's 255 (ENAMETOOLONG)."""
    for text in (LETTERS, "𠀀" * 30, "裂纹" * 40, "é" * 79):
        name = safe_name(text)
        assert len(name.encode("utf-8")) <= 80, (text, name)  # as an ASCII id's: two fit one file name
    assert safe_name(LETTERS) != safe_name(LETTERS[:-1])  # still distinct for distinct ids
    assert safe_name("LOT7-P1") == "LOT7-P1" and safe_name("裂纹" * 13) == "裂纹" * 13  # names that fitted stay as they were


def test_review_export_of_a_type_in_four_byte_letters_copies_it(tmp_path, capsys):
    """`review --type 𝐀𝐀...` (QA's own words) then `review --export`: 'cannot write 𝐀𝐀.../ (File name too long); choose
    a writable folder with room', and no part was exported."""
    store = tmp_path / "store"
    records = fill(store, 3)
    rc, _, err = cli(capsys, "review", "--db", store, records[0]["inspection_id"], "--truth", "defect", "--type", LETTERS)
    assert rc == 0, err
    rc, out, err = cli(capsys, "review", "--db", store, records[1]["inspection_id"], "--truth", "good")
    assert rc == 0, err
    rc, out, err = cli(capsys, "review", "--db", store, "--export", tmp_path / "out", "--json")
    assert rc == 0, err
    copied = json.loads(out)["copied"]
    assert copied.get("good") == 1 and sum(copied.values()) == 2, copied


def test_an_inspection_report_of_an_id_in_four_byte_letters_is_written(tmp_path):
    """An id given through the API: its report failed with a traceback (OSError from the temporary file's name)."""
    from reports.render import render_inspection
    from reports.sample import make_records

    record = make_records(1, root=tmp_path / "store", hours=1.0, image_size=32, seed=1)[0]
    record["inspection_id"] = LETTERS[:70]
    paths = render_inspection(record, tmp_path / "out", ("html",), store_root=tmp_path / "store")
    assert paths["html"].is_file()


def _intake(tmp_path: Path, sent: list):
    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Topics
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    return Intake(cfg, Store(tmp_path / "data"), queue.Queue(2), Metrics(), Topics("p"),
                  publish=lambda topic, payload, **k: sent.append(payload), republish=lambda r, c: None)


@pytest.mark.parametrize("topic", ["p/image/A\n2026-12-06 12:00:00,000 ERROR   inspector.daemon: forged", "p/other\x1b[31m\rERROR x"])
def test_a_topic_with_a_line_break_forges_no_log_line(tmp_path, caplog, topic):
    """A topic is the sender's to name, and a broker other than mosquitto may pass a newline in it: the rejection's log
    line came out as two, the second a forged ERROR of any logger."""
    sent: list = []
    intake = _intake(tmp_path, sent)
    with caplog.at_level(logging.INFO, logger="inspector.intake"):
        intake._message(Message(topic=topic, payload=b"\x89PNG", qos=1, mid=1))
    logged = [r.getMessage() for r in caplog.records if r.name == "inspector.intake"]
    assert logged and all(not any(c in m for c in "\n\r\x1b") for m in logged), logged
    error = json.loads(sent[-1])
    assert "\\n" in error["error"] + error["input"] or "\\x1b" in error["error"]  # escaped, still said
    assert not any(c in error["error"] + error["input"] for c in "\n\r\x1b"), error


@pytest.mark.parametrize("argv, needle", [
    (["review", "ID", "--truth", "good"], "inspection '\\udcff'"),
    (["review", "--serial", "ID", "--truth", "good"], "serial '\\udcff'"),
    (["report", "--inspection", "ID", "--format", "html"], "inspection '\\udcff'"),
    (["report", "--from", "2026-11-26", "--to", "2026-11-27", "--station", "ID", "--format", "html"], "--station '\\udcff'"),
    (["report", "--from", "2026-11-26", "--to", "2026-11-27", "--title", "ID", "--format", "html"], "--title '\\udcff'"),
    (["report", "--from", "2026-11-26", "--to", "2026-11-27", "--organisation", "ID", "--format", "html"], "organisation '\\udcff'"),
])
def test_an_argument_not_in_utf8_is_one_line(tmp_path, capsys, argv, needle):
    """A serial or title typed in a Latin-1 terminal reaches Python as lone surrogates: SQLite and the report file
    refused them with a traceback (UnicodeEncodeError)."""
    store = tmp_path / "store"
    fill(store, 2)
    argv = [a.replace("ID", "\udcff") for a in argv]
    rc, _, err = cli(capsys, *argv[:1], "--db", store, *argv[1:], *(["--out", tmp_path / "out"] if argv[0] == "report" else []))
    assert_one_line_error(rc, err, needle)


def test_a_review_note_not_in_utf8_is_refused_not_cut(tmp_path, capsys):
    """`--note $'M\\xfcller'`: the byte not UTF-8 was dropped unsaid ('Mller' kept)."""
    store = tmp_path / "store"
    ident = fill(store, 2)[0]["inspection_id"]
    rc, _, err = cli(capsys, "review", "--db", store, ident, "--truth", "good", "--by", "M\udcfcller")
    assert_one_line_error(rc, err, "--by 'M\\udcfcller': not UTF-8 text", "give it in UTF-8")
    assert reviews(store, ident) == []


@pytest.mark.parametrize("name", ["CON", "aux", "Nul", "com1", "LPT9"])
def test_a_dos_device_name_is_not_a_file_name(name):
    from reports.names import safe_name
    shown = safe_name(name)
    assert shown.upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9"}
    assert shown.startswith(name) and shown != safe_name(name + "_")


def test_names_beside_dos_device_names_stay_as_given():
    from reports.names import safe_name
    assert [safe_name(n) for n in ("CONSOLE", "AUX1", "COM10", "LPT0", "P-0042")] == ["CONSOLE", "AUX1", "COM10", "LPT0", "P-0042"]
