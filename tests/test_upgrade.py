"""Artefacts made by earlier versions, read by this one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from exporters.manifest import FORMAT, export_source


def _old_export(folder: Path, checkpoint: str, weights: str) -> Path:
    """An export as versions before 2026-12-03 wrote it: its checkpoint recorded as given to `export` (relative)."""
    folder.mkdir(parents=True)
    model = folder / "model.onnx"
    model.write_bytes(b"graph")
    side = {"format": FORMAT, "kind": "onnx", "input": {}, "net": {"input_size": [64, 64]}, "thresholds": {"image": 0.0, "pixel": 0.0},
            "source": {"checkpoint": checkpoint, "weights_sha256": weights}, "file": model.name,
            "file_sha256": hashlib.sha256(b"graph").hexdigest()}
    (folder / "model.onnx.json").write_text(json.dumps(side))
    return model


def test_old_export_relative_checkpoint_is_found_beside_it(tiny_ckpt, tmp_path, monkeypatch):
    """`inspector export ckpt --out exports` run in /station by an older version recorded "ckpt"; `bench` run from
    elsewhere said the checkpoint was "not on this machine" and timed no torch baseline."""
    from inspector.commands.bench_model import _source_checkpoint
    from model.checkpoint import read_manifest

    station = tmp_path / "station"
    shutil.copytree(tiny_ckpt, station / "ckpt")
    weights = read_manifest(station / "ckpt")["files"]["model.safetensors"]
    model = _old_export(station / "exports", "ckpt", weights)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert export_source(model)["checkpoint"] == str((station / "ckpt").resolve())
    found, note = _source_checkpoint(model)
    assert found == (station / "ckpt").resolve() and note is None, note


def test_old_export_relative_checkpoint_of_other_weights_is_not_taken(tmp_path, monkeypatch):
    """A folder of that name holding another model is not its checkpoint: the path stays as recorded."""
    ckpt = tmp_path / "station" / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "manifest.json").write_text(json.dumps({"files": {"model.safetensors": "other"}}))
    model = _old_export(tmp_path / "station" / "exports", "ckpt", "these")
    monkeypatch.chdir(tmp_path)
    assert export_source(model)["checkpoint"] == "ckpt"
    (ckpt / "manifest.json").write_text("not json")  # nor does an unreadable one stop the search
    assert export_source(model)["checkpoint"] == "ckpt"


def test_a_store_upgraded_from_an_older_schema_says_so(tmp_path, caplog):
    """A version-1 store (the first day's inspector) is migrated on open, after which that inspector refuses it
    ("schema version 2 is newer"): the upgrade is said once, naming the store; a new store says nothing."""
    import logging
    import sqlite3

    from inspector.store import DB_NAME, MIGRATIONS, Store

    root = tmp_path / "data"
    root.mkdir()
    db = sqlite3.connect(root / DB_NAME, isolation_level=None)
    db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    db.close()
    with caplog.at_level(logging.WARNING, logger="inspector.store"):
        Store(root).close()
        said = [r.getMessage() for r in caplog.records if r.name == "inspector.store"]
        assert len(said) == 1 and str(root / DB_NAME) in said[0] and f"from version 1 to {len(MIGRATIONS)}" in said[0], said
        caplog.clear()
        Store(root).close()  # already upgraded
        Store(tmp_path / "new").close()
        assert not [r for r in caplog.records if r.name == "inspector.store"]


def test_review_of_an_older_store_says_its_upgrade_as_a_warning_in_its_own_process(tmp_path):
    """`inspector review` upgrades the store it writes to; the upgrade's log line, with no log set up outside `serve`,
    was printed bare by Python's last resort in a process of its own (and caught by pytest in a test's)."""
    import sqlite3
    import subprocess
    import sys

    from inspector.store import DB_NAME, MIGRATIONS, Store
    from reports.sample import make_records

    store = Store(tmp_path / "data")
    record = make_records(1, seed=2)[0]
    store.add(record)
    store.close()
    db = sqlite3.connect(tmp_path / "data" / DB_NAME, isolation_level=None)
    db.executescript("BEGIN;\nDROP TABLE pending;\nPRAGMA user_version = 1;\nCOMMIT;")  # as the first day's inspector left it
    db.close()
    run = subprocess.run([sys.executable, "-m", "inspector", "review", "--db", str(tmp_path / "data"), record["inspection_id"],
                          "--truth", "good", "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and json.loads(run.stdout), run.stderr
    assert run.stderr.splitlines() == [f"warning: store {tmp_path / 'data' / DB_NAME}: schema upgraded from version 1 to "
                                       f"{len(MIGRATIONS)}; an inspector older than this schema no longer opens it"]


def test_an_old_exports_far_hint_names_its_checkpoint_where_it_is(tiny_ckpt, tmp_path, monkeypatch, capsys):
    """`threshold --far` on an export without calibration scores told the user to run `inspector threshold ckpt ...`,
    the path as an older `export` recorded it, relative to a folder the user is not in."""
    from model.checkpoint import read_manifest
    from tests.cli import cli

    station = tmp_path / "station"
    shutil.copytree(tiny_ckpt, station / "ckpt")
    model = _old_export(station / "exports", "ckpt", read_manifest(station / "ckpt")["files"]["model.safetensors"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    rc, _, err = cli(capsys, "threshold", model, "--far", "0.01")
    assert rc == 2 and f"`inspector threshold {(station / 'ckpt').resolve()} --far 0.01`" in err, err
