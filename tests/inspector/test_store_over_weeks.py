"""The result store over weeks on a line: damaged or empty database files, reviews racing retention, exports of
large stores, reviews of parts that were never stored, and what retention leaves on disk."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from inspector.store import DB_NAME, Store
from tests.cli import assert_one_line_error, cli
from tests.inspector.test_review_access import fill


def damage(root) -> None:
    """Garble every page after the first (the schema's): SQLite opens the file, then a read of its rows fails."""
    path = root / DB_NAME
    data = bytearray(path.read_bytes())
    for i in range(4096, len(data), 97):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("argv", [
    ["review", "--db", "{root}", "--export", "{out}"],
    ["report", "--db", "{root}", "--from", "2026-11-26", "--to", "2026-11-27", "--out", "{out}", "--format", "html"],
    ["report", "--db", "{root}", "--inspection", "{ident}", "--out", "{out}", "--format", "html"],
    ["review", "--db", "{root}", "{ident}", "--truth", "good"],
])
def test_a_damaged_database_is_one_line_naming_the_store(tmp_path, capsys, argv):
    """A store on a failing disk, or a copy cut short mid-page, opens; its first read failed with a traceback."""
    root = tmp_path / "data"
    ident = fill(root)[0]["inspection_id"]
    damage(root)
    rc, _, err = cli(capsys, *[a.format(root=root, out=tmp_path / "out", ident=ident) for a in argv])
    assert_one_line_error(rc, err, f"store {root / DB_NAME}: not a usable SQLite database", "malformed", "restore it from a backup")


@pytest.mark.parametrize("argv", [
    ["review", "--db", "{root}", "some-id", "--truth", "good"],
    ["review", "--db", "{root}", "--export", "{out}"],
    ["report", "--db", "{root}", "--from", "2026-11-26", "--out", "{out}", "--format", "html"],
])
def test_an_empty_database_file_is_said_so_and_left_as_it_is(tmp_path, capsys, argv):
    """An empty inspections.sqlite (a copy cut short): `report` failed with a traceback (no such table), and `review`
    made an empty store of it and said the part was not in it."""
    root = tmp_path / "data"
    root.mkdir()
    (root / DB_NAME).write_bytes(b"")
    rc, _, err = cli(capsys, *[a.format(root=root, out=tmp_path / "out") for a in argv])
    assert_one_line_error(rc, err, f"store {root / DB_NAME}: holds no inspections (an empty or unfinished file)")
    assert (root / DB_NAME).stat().st_size == 0


def test_a_part_retention_deletes_while_it_is_reviewed_is_not_said_reviewed(tmp_path):
    """Every id is read before any review is written; a record retention deleted in between got no review, and the
    command said it was reviewed (exit 0)."""
    from inspector.review import review_parts
    from model.errors import InspectorError

    root = tmp_path / "data"
    first, second = (r["inspection_id"] for r in fill(root)[:2])
    store = Store(root)
    read = store.get

    def get_then_prune(ident):
        record = read(ident)
        if ident == second:
            store._db.execute("DELETE FROM inspections WHERE inspection_id = ?", (second,))  # as retention's chunk
        return record

    store.get = get_then_prune
    done: list = []
    with pytest.raises(InspectorError, match=rf"inspection '{second}': deleted from store .* its review was not written \(the first 1 were"):
        review_parts(store, [first, second], "good", None, "qa", None, done=done)
    assert [r["inspection_id"] for r in done] == [first] and len(read(first)["reviews"]) == 1
    store.close()


def test_export_reads_only_the_reviewed_records(tmp_path, capsys, monkeypatch):
    """`review --export` decoded every record in the period to find the few QA reviewed: on a quarter's store
    (millions of records, the period open by default) it ran for many minutes."""
    root = tmp_path / "data"
    records = fill(root, 12)
    fails = [r["inspection_id"] for r in records if r["verdict"] == "FAIL"]
    assert cli(capsys, "review", "--db", root, fails[0], "--truth", "good")[0] == 0
    assert cli(capsys, "review", "--db", root, fails[1], "--truth", "defect", "--type", "crack", "--note", "no \"reviews\" here")[0] == 0
    store = Store(root)
    store.add({**records[0], "inspection_id": "noted", "note": 'a "reviews" mention, not a review', "images": {}})
    store.close()
    decoded = []
    row = Store._row
    monkeypatch.setattr(Store, "_row", staticmethod(lambda r: decoded.append(1) or row(r)))
    rc, out, _ = cli(capsys, "review", "--db", root, "--export", tmp_path / "x")
    assert rc == 0 and "copied 2 reviewed part image(s)" in out
    assert len(decoded) == 2  # the two reviewed only (a quoted "reviews" in a value is escaped in the stored text)


def test_reviewing_a_part_that_was_never_stored_says_why(tmp_path, capsys):
    """An id from the error topic (an input set aside) or one still in the journal: "not in store; give the
    inspection_id of a stored result" sent QA looking for a typo."""
    root = tmp_path / "data"
    fill(root, 2)
    store = Store(root)
    store.accept("shot-7", {"serial": "SN7", "timestamp": "2026-11-26T06:30:00.000Z"}, b"\x89PNG\r\n\x1a\n...")
    store.set_aside("shot-7", "cannot decode the image: truncated PNG")
    store.accept("shot-8", {"serial": "SN8"}, b"\x89PNG...")
    store.close()
    rc, _, err = cli(capsys, "review", "--db", root, "shot-7", "--truth", "defect")
    assert_one_line_error(rc, err, "inspection 'shot-7': never inspected", "set aside: cannot decode the image: truncated PNG",
                          "refused/2026-11-26/shot-7.png", "(nothing was written)")
    rc, _, err = cli(capsys, "review", "--db", root, "shot-8", "--truth", "good")
    assert_one_line_error(rc, err, "inspection 'shot-8': accepted, but its result is not stored yet", "review it once stored")
    rc, _, err = cli(capsys, "review", "--db", root, "shot-9", "--truth", "good")
    assert_one_line_error(rc, err, "inspection 'shot-9': not in store")


def test_retention_removes_the_day_folders_it_empties(tmp_path):
    """Retention deleted a day's images but kept its folder: a year of a station left 275 empty day folders under
    images/ beside the 90 days kept, which read as days whose images were lost."""
    import numpy as np

    from inspector.result import iso_utc

    store = Store(tmp_path / "data")
    now = datetime.now(timezone.utc)
    for age in (200, 100, 1):  # days
        rec = {"inspection_id": f"d{age}", "timestamp": iso_utc(now - timedelta(days=age)), "verdict": "PASS"}
        assert store.add(rec, images={"image": np.zeros((8, 8, 3), np.uint8), "overlay": np.zeros((8, 8, 3), np.uint8)})
        store.mark_published(rec["inspection_id"])
    (tmp_path / "data" / "images" / "notes.txt").write_text("kept")  # not a day folder of a record: left alone
    kept = {k: tmp_path / "data" / v for k, v in store.get("d1")["images"].items()}
    while store.prune(max_age_days=90):
        pass
    assert sorted(p.name for p in (tmp_path / "data" / "images").iterdir()) == sorted(["notes.txt", kept["image"].parent.name])
    assert all(p.is_file() for p in kept.values())
    old = {"inspection_id": "d300", "timestamp": iso_utc(now - timedelta(days=300)), "verdict": "PASS"}
    assert store.add(old, images={"image": np.zeros((8, 8, 3), np.uint8)})  # a day retention emptied gets its folder again
    assert (tmp_path / "data" / store.get("d300")["images"]["image"]).is_file()
    store.close()


def test_images_on_another_disk_through_a_link_are_reported_and_deleted(tmp_path):
    """A store whose images/ is a link to a bigger disk: the daemon wrote through it, but reports showed no image (a
    path that resolved outside the store was refused) and retention deleted the records, never their images."""
    import numpy as np

    from inspector.result import iso_utc
    from reports.images import data_uri

    root, disk = tmp_path / "data", tmp_path / "big-disk" / "images"
    disk.mkdir(parents=True)
    root.mkdir()
    (root / "images").symlink_to(disk, target_is_directory=True)
    store = Store(root)
    old = {"inspection_id": "old", "timestamp": iso_utc(datetime.now(timezone.utc) - timedelta(days=100)), "verdict": "FAIL"}
    assert store.add(old, images={"image": np.full((8, 8, 3), 90, np.uint8)})
    store.mark_published("old")
    rel = store.get("old")["images"]["image"]
    assert (disk / rel.split("/", 1)[1]).is_file()
    assert data_uri(rel, root) is not None
    while store.prune(max_age_days=90):
        pass
    assert list(disk.iterdir()) == []  # the image and its emptied day folder, on the other disk
    assert (root / "images").is_symlink()  # the link itself stays
    store.close()


class RefusingBroker:
    """A connected client whose broker refuses every result (an ACL forbidding the result topic)."""

    def __init__(self) -> None:
        import queue

        self.acks, self.refused, self.connected, self._mid = queue.Queue(), queue.Queue(), True, 0

    def publish(self, topic, payload, qos=1, reply=None):
        self._mid += 1
        self.refused.put((self._mid, "not authorized"))
        return self._mid


def test_results_a_broker_refuses_for_days_are_not_all_remembered(tmp_path, monkeypatch):
    """Through a broker refusing every result, each one's refusal was remembered for good (resend re-offers the oldest
    results only, and only a re-offer forgot one): 54 MB a day at 5 parts/s. Those older than REFUSED_RETRY_S, which
    count for nothing, are forgotten."""
    import inspector.outbox as outbox_module
    from inspector.health import Metrics
    from inspector.outbox import Outbox

    monkeypatch.setattr(outbox_module, "REFUSED_KEPT", 50, raising=False)
    clock = [1000.0]
    monkeypatch.setattr(outbox_module.time, "monotonic", lambda: clock[0])
    store = Store(tmp_path / "data")
    box = Outbox(store, RefusingBroker(), "t/s/result", Metrics())
    for i in range(400):  # a part a second, the refusal drained and the outbox offered again between parts
        rec = {"inspection_id": f"p{i:04d}", "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS"}
        store.add(rec)
        box.publish(rec)
        box.drain_acks()
        box.resend(limit=10)
        clock[0] += 1.0
    assert len(box._refused) <= 50 + outbox_module.REFUSED_RETRY_S
    assert store.counts()["unpublished"] == 400 and box.refusing() == "not authorized"  # each still waits in the store
    store.close()


@pytest.mark.parametrize("argv", [["review", "--db", "{db}", "some-id", "--truth", "good"],
                                  ["report", "--db", "{db}", "--from", "2026-11-26", "--out", "{out}", "--format", "html"]])
def test_a_database_copied_under_another_name_is_said_to_be_a_file(tmp_path, capsys, argv):
    """`--db backup.sqlite` was told "no inspections.sqlite there", as if the file were a folder."""
    fill(tmp_path / "data", 1)
    db = tmp_path / "backup.sqlite"
    db.write_bytes((tmp_path / "data" / DB_NAME).read_bytes())
    rc, _, err = cli(capsys, *[a.format(db=db, out=tmp_path / "out") for a in argv])
    assert_one_line_error(rc, err, f"store {db}: is a file", f"name a copied database {DB_NAME}")
