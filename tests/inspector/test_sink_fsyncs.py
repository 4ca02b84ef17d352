"""A part's time from its inference to its publish: the image and overlay a result stores are on the disk before its row is
written, as before, but their fsyncs run together (their folder once) instead of four in a row."""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from inspector.config import StationConfig
from inspector.decision import Region
from inspector.health import Metrics
from inspector.intake import Job
from inspector.pipeline import Sink
from inspector.result import InspectionResult
from inspector.store import Store
from tests.conftest import fail_file_fsyncs

RECORD = {"inspection_id": "p1", "timestamp": "2026-12-06T10:00:00.000Z"}


@pytest.fixture
def fsyncs(monkeypatch) -> list[tuple[Path, str]]:
    """The paths os.fsync was called on, each with the name of the thread that called it."""
    done, real = [], os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        done.append((Path(os.readlink(f"/proc/self/fd/{fd}")), threading.current_thread().name))

    monkeypatch.setattr(os, "fsync", fsync)
    return done


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_images_saved_together_are_synced_at_once_their_folder_once_and_stay_lossless(tmp_path, fsyncs):
    store = Store(tmp_path / "data")
    try:
        (store.root / "images" / "2026-12-06").mkdir(parents=True)  # the day's folder exists: only the part's files are synced
        pixels = {"image": _pixels(1), "overlay": _pixels(2)}
        with store.images_together():
            paths = {kind: store.root / store.save_image(RECORD, kind, rgb) for kind, rgb in pixels.items()}
        synced = [path for path, _ in fsyncs]
        # both files and their folder on the disk when the block ends; the folder once for both (it was synced per file)
        assert sorted(synced) == sorted([paths["image"], paths["overlay"], paths["image"].parent])
        assert all(thread != threading.current_thread().name for _, thread in fsyncs)  # beside the caller, not in turn
        for kind, rgb in pixels.items():  # PNG still: the very pixels
            assert np.array_equal(cv2.cvtColor(cv2.imread(str(paths[kind]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB), rgb)
        fsyncs.clear()
        store.save_image({**RECORD, "inspection_id": "p2"}, "image", pixels["image"])  # outside a block: synced as it returns
        assert [p.name for p, _ in fsyncs] == ["p2_image.png", "2026-12-06"]
    finally:
        store.close()


def test_an_image_of_the_block_that_cannot_be_synced_removes_them_all_and_raises(tmp_path, monkeypatch):
    store = Store(tmp_path / "data")
    try:
        store.save_image({**RECORD, "inspection_id": "p0"}, "image", _pixels(0))  # an earlier part's: left alone
        fail_file_fsyncs(monkeypatch)
        with pytest.raises(OSError, match="Input/output error"), store.images_together():
            store.save_image(RECORD, "image", _pixels(1))
            store.save_image(RECORD, "overlay", _pixels(2))
        assert [p.name for p in (store.root / "images").rglob("*.png")] == ["p0_image.png"]
    finally:
        store.close()


def _sink(tmp_path: Path, published: list) -> Sink:
    cfg = StationConfig.model_validate({"station": {"name": "st1"}, "model": {"path": str(tmp_path / "m.ckpt")}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "t/latency"}, "store": {"data_dir": str(tmp_path / "data")}})
    outbox = SimpleNamespace(publish=lambda record, reply=None: published.append(record), drain_acks=lambda: 0,
                             mqtt=SimpleNamespace(connected=False), repeats=SimpleNamespace(take=lambda ident: []))
    hooks = SimpleNamespace(report_links=lambda record: {}, fail=lambda record: None)
    return Sink(cfg, Store(cfg.store.data_dir), queue.Queue(), outbox, Metrics(), hooks, lambda *a, **k: None, "err")


def _failed_part(ident: str) -> tuple[Job, InspectionResult]:
    rgb, amap = _pixels(3), np.zeros((48, 64), np.float32)
    amap[10:20, 10:30] = 5.0
    now = time.monotonic()
    job = Job(ident, rgb, "S1", "mqtt:image", now, accepted=now, started=now, timestamp=RECORD["timestamp"])
    result = InspectionResult(ident, "FAIL", 5.0, 1.0, 1.0, [Region((10, 10, 20, 10), 200, 5.0, 5.0, "high")], amap, (48, 64),
                              "0" * 64, {"id": "m"}, {"infer": 1.0})
    return job, result


def test_a_failed_part_has_its_image_and_overlay_on_the_disk_before_its_row_in_three_fsyncs_not_four(tmp_path, fsyncs):
    published: list = []
    sink = _sink(tmp_path, published)
    real_add, synced_at_add = sink.store.add, []

    def add(record, *args, **kwargs):
        synced_at_add.append(sorted(p.name for p, _ in fsyncs))
        return real_add(record, *args, **kwargs)

    sink.store.add = add
    try:
        (sink.store.root / "images" / "2026-12-06").mkdir(parents=True)
        sink.handle(*_failed_part("p1"))
        assert synced_at_add == [["2026-12-06", "p1_image.png", "p1_overlay.png"]]  # the folder once, all before the row
        record = sink.store.get("p1")
        assert set(record["images"]) == {"image", "overlay"} and published[0]["images"] == record["images"]
        assert all((sink.store.root / rel).is_file() for rel in record["images"].values())
    finally:
        sink.store.close()


def test_images_that_cannot_be_synced_leave_the_result_stored_and_published_without_them(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "inspector.pipeline")
    published: list = []
    sink = _sink(tmp_path, published)
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # the folder's, after both files were written: neither is known on the disk
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    try:
        (sink.store.root / "images" / "2026-12-06").mkdir(parents=True)
        monkeypatch.setattr(os, "fsync", fsync)
        sink.handle(*_failed_part("p1"))
        assert sink.store.get("p1")["images"] == {} and published[0]["images"] == {}
        assert not list((sink.store.root / "images").rglob("*.png")) and "Input/output error" in sink.images_off
        assert sink.metrics.total("inspector_images_skipped_total") == 1
        monkeypatch.setattr(os, "fsync", real)
        sink._next_image_try = 0.0
        sink.handle(*_failed_part("p2"))  # the disk takes them again: saved, and said so
        assert set(sink.store.get("p2")["images"]) == {"image", "overlay"} and sink.images_off is None
        assert "saved again" in caplog.text
    finally:
        sink.store.close()


# -- an overlay that cannot be written --------------------------------------------------------------------------------
def test_an_overlay_that_cannot_be_written_after_its_image_was_keeps_the_images_failure_said(tmp_path, monkeypatch, caplog):
    """The image is saved, the overlay's write fails (the disk filled between them): the sink says so once and keeps
    saying images are not saved (images_off), as before the images were synced together; it said "saved again" at once
    and forgot the failure, so every later part logged the error anew and the live view and health showed no problem."""
    caplog.set_level(logging.INFO, "inspector.pipeline")
    published: list = []
    sink = _sink(tmp_path, published)
    real = sink.store.save_image

    def save_image(record, kind, rgb):
        if kind == "overlay":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(record, kind, rgb)

    monkeypatch.setattr(sink.store, "save_image", save_image)
    try:
        sink.handle(*_failed_part("p1"))
        assert set(sink.store.get("p1")["images"]) == {"image"}  # the image is kept: it is on the disk
        assert sink.images_off is not None and "No space left" in sink.images_off
        assert "saved again" not in caplog.text
    finally:
        sink.store.close()
