"""A record whose stored text is not JSON (edited by hand in the database): every reader of the store failed on it
with a traceback, and the outbox on it stopped publishing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from inspector.store import DAMAGED, DB_NAME, Store
from tests.cli import cli
from tests.inspector.test_review_access import fill


def garble(root, ident: str, text: str = '{"inspection_id": "cut sh') -> None:
    db = sqlite3.connect(root / DB_NAME)
    with db:
        db.execute("UPDATE inspections SET record = ? WHERE inspection_id = ?", (text, ident))
    db.close()


@pytest.mark.parametrize("text", ['{"inspection_id": "cut sh', '["a list"]'])
def test_its_columns_stand_in_for_it_and_it_is_counted_published_and_pruned(tmp_path, text):
    root = tmp_path / "data"
    records = fill(root)
    bad = records[1]
    garble(root, bad["inspection_id"], text)
    store = Store(root)
    try:
        got = store.get(bad["inspection_id"])
        assert got["damaged"] is True and got["warnings"] == [DAMAGED] and got["verdict"] == bad["verdict"] and got["serial"] == bad["serial"]
        assert got["score"] == pytest.approx(bad["score"]) and got["model"]["id"] == bad["model"]["id"]
        assert [r["inspection_id"] for r in store.records()] == [r["inspection_id"] for r in records]
        assert bad["inspection_id"] in {r["inspection_id"] for r, _ in store.unpublished()}
        assert store.add_review(bad["inspection_id"], {"truth": "good"})["reviews"] == [{"truth": "good"}]
        for r in records:
            store.mark_published(r["inspection_id"])
        assert store.prune(max_rows=0) == len(records)
    finally:
        store.close()


@pytest.mark.parametrize("argv", [
    ["report", "--db", "{root}", "--from", "2026-11-26", "--to", "2026-11-28", "--out", "{out}", "--format", "html", "--json"],
    ["report", "--db", "{root}", "--inspection", "{ident}", "--out", "{out}", "--format", "html", "--json"],
    ["review", "--db", "{root}", "--export", "{out}/reviews.csv"],  # picks records whose text names "reviews"
])
def test_reports_and_exports_take_it(tmp_path, capsys, argv):
    root = tmp_path / "data"
    records = fill(root)
    ident = records[0]["inspection_id"]
    garble(root, ident, '{"reviews": [{"truth": "go')
    rc, out, err = cli(capsys, *[a.format(root=root, out=tmp_path / "out", ident=ident) for a in argv])
    assert rc == 0, err
    if argv[-1] == "--json" and "--from" in argv:
        assert json.loads(out)["inspections"] == len(records)


@pytest.mark.parametrize("lang, said", [("en", "The stored record of this part could not be read"), ("zh", "无法读取该零件的存储记录"),
                                        ("es", "No se pudo leer el registro almacenado")])
def test_the_reports_say_it_in_their_language(tmp_path, capsys, lang, said):
    """QA signs what the reports show: a part whose record was changed by hand is named, not shown as any other."""
    root = tmp_path / "data"
    ident = fill(root)[2]["inspection_id"]
    garble(root, ident)
    for argv in (["--inspection", ident], ["--from", "2026-11-26", "--to", "2026-11-28"]):
        rc, out, err = cli(capsys, "report", "--db", root, *argv, "--lang", lang, "--format", "html", "--out", tmp_path / "r", "--json")
        assert rc == 0, err
        assert said in Path(json.loads(out)["reports"][0]["html"]).read_text(encoding="utf-8")


def test_a_json_object_that_is_no_record_stands_in_too_and_the_outbox_resends_it(tmp_path):
    """'{"verdict": "PASS"}' parsed, and the outbox's resend failed on it with a KeyError at every pass."""
    root = tmp_path / "data"
    bad = fill(root)[0]
    garble(root, bad["inspection_id"], '{"verdict": "PASS"}')
    store = Store(root)
    try:
        record = next(r for r, _ in store.unpublished() if r["inspection_id"] == bad["inspection_id"])
        assert record["damaged"] is True and record["verdict"] == bad["verdict"] and record["timestamp"]
    finally:
        store.close()


def test_a_review_of_a_damaged_record_keeps_the_text_that_could_not_be_read(tmp_path, capsys):
    """The review wrote the stand-in over the row, and the hand-edited text was gone."""
    root = tmp_path / "data"
    ident = fill(root)[0]["inspection_id"]
    garble(root, ident, '{"inspection_id": "cut sh')
    rc, _, err = cli(capsys, "review", "--db", root, ident, "--truth", "good")
    assert rc == 0, err
    store = Store(root, readonly=True)
    try:
        record = store.get(ident)
    finally:
        store.close()
    assert record["damaged_text"] == '{"inspection_id": "cut sh' and record["reviews"][-1]["truth"] == "good"


def test_a_journaled_job_edited_by_hand_is_still_recovered_from_its_image(tmp_path):
    """The journal's readers parsed the job raw: recovery ended in a traceback at every start, and its image with it."""
    from inspector.result import Reply

    store = Store(tmp_path / "data")
    try:
        store.accept("j1", {"serial": "S1", "source": "folder:x.png", "timestamp": "2026-12-05T07:00:00.000Z"}, b"\x89PNG-bytes")
        store._db.execute("UPDATE pending SET job = ? WHERE inspection_id = ?", ("not json", "j1"))
        store._db.commit()
        [(ident, job, attempts)] = store.pending()
        assert ident == "j1" and attempts == 0 and job["timestamp"]  # its arrival time
        assert store.keep_repeat("j1", Reply.of(b"c", "answers/here"))
        assert store.set_aside("j1", "gave up").startswith("refused/")
        assert store.pending() == []
    finally:
        store.close()


def test_an_image_write_that_fails_leaves_no_half_file(tmp_path, monkeypatch):
    """A full disk mid-write left <id>_overlay.tmp.png, named by no record, which retention never removed."""
    import errno

    import numpy as np

    import inspector.store as store_module

    def full(path, data):
        path.write_bytes(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    store = Store(tmp_path / "data")
    monkeypatch.setattr(store_module, "write_new", full)
    try:
        with pytest.raises(OSError):
            store.save_image({"inspection_id": "abc", "timestamp": "2026-11-26T06:00:00.000Z"}, "overlay", np.zeros((8, 8, 3), np.uint8))
        assert not [p for p in (tmp_path / "data").rglob("*.png")]
    finally:
        store.close()
