"""A record whose stored text is not JSON (edited by hand in the database): every reader of the store failed on it
with a traceback, and the outbox on it stopped publishing."""

from __future__ import annotations

import json
import sqlite3

import pytest

from inspector.store import DB_NAME, Store
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
        assert got["damaged"] and got["verdict"] == bad["verdict"] and got["serial"] == bad["serial"]
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
