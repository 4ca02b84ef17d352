"""The daemon in-process against a real Mosquitto: round trips per source kind, overload, outages, bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector import pipeline
from inspector.mqtt import Reply
from model.errors import InspectorError
from model.quality import WARNINGS
from tests.inspector.conftest import png, running, wait_until, write_video
from tests.synthetic import good_image


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_an_image_unlike_the_training_images_is_flagged_and_logged_once(station, broker, listen, tiny_inspector, caplog):
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    wide = np.tile(good_image(7), (1, 3, 1))  # the camera's crop changed: 3 times wider than every training image
    with caplog.at_level("WARNING", logger="inspector.pipeline"), running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        for i in range(3):
            lst.publish("image", png(wide), user={"inspection_id": f"w{i}"})
        for i in range(3):  # and then the light failed too: two warnings on each part
            lst.publish("image", png(wide // 40), user={"inspection_id": f"wd{i}"})
        lst.publish("image", png(np.zeros((96, 96, 3), np.uint8)), user={"inspection_id": "dark"})
        results = wait_until(lambda: len(lst.json("result")) >= 7 and lst.json("result"), 30, "7 results")
        by_id = {r["inspection_id"]: r["warnings"] for r in results}
        assert all("unlike the training images" in by_id[f"w{i}"][0] for i in range(3))  # judged silently before
        assert all(by_id[f"wd{i}"] == [by_id["w0"][0], WARNINGS["dark"]] for i in range(3))
        assert by_id["dark"] == [WARNINGS["dark"]]  # FAIL, and blamed on the part alone before
        assert d.metrics.total("inspector_warnings_total") == 10
        metrics = d.metrics.render()
        assert 'inspector_warnings_total{kind="size"} 6' in metrics and 'inspector_warnings_total{kind="dark"} 4' in metrics
    logged = [r.getMessage() for r in caplog.records]
    assert sum("unlike the training images" in m for m in logged) == 1  # once per change, not per part
    assert sum("much darker" in m for m in logged) == 1  # two warnings a part alternated, and each was logged for every part


def test_each_part_is_one_line_in_the_log(station, broker, listen, tiny_inspector, good_png, defect_png, caplog):
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with caplog.at_level("INFO", logger="inspector.pipeline"), running(cfg, tiny_inspector):
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        lst.publish("image", good_png, user={"inspection_id": "g1", "serial": "S-1"})
        lst.publish("image", defect_png, user={"inspection_id": "d1"})
        wait_until(lambda: len(lst.json("result")) >= 2, 30, "2 results")
    parts = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("PASS ", "FAIL "))]
    assert len(parts) == 2, parts  # nothing a part before, at the default level
    assert parts[0].startswith("PASS S-1 (g1, mqtt:image): score ") and parts[1].startswith("FAIL - (d1, mqtt:image): score ")


def test_retained_inputs_are_refused_and_every_error_has_one_shape(station, broker, listen, tiny_inspector, good_png):
    """A retained trigger was inspected again at every start, each time a new part; errors came in four shapes (some
    without the time, the id or the serial)."""
    import re

    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    lst.publish("trigger", json.dumps({"serial": "RET", "base64": base64.b64encode(good_png).decode()}), retain=True).wait_for_publish()
    lst.publish("image/RET2", good_png, retain=True).wait_for_publish()
    try:
        with running(cfg, tiny_inspector):
            wait_until(lambda: len(lst.json("error")) >= 2, 15, "the retained inputs refused")
            lst.publish("command", json.dumps({"command": "review", "inspection_id": "nope", "truth": "good", "by": "qa"}))
            wait_until(lambda: len(lst.json("error")) >= 3, 15, "the failed review")
            time.sleep(0.5)
            assert lst.json("result") == []  # neither inspected
        errors = lst.json("error")
        assert all("a retained message, which the broker hands over again at every start" in e["error"] for e in errors[:2])
        assert {e["serial"] for e in errors[:2]} == {"RET", "RET2"} and errors[2]["command"] == "review"
        for e in errors:
            assert {"error", "input", "inspection_id", "serial", "timestamp"} <= set(e), e
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"]), e  # as the records write it
    finally:
        for topic in ("trigger", "image/RET2"):  # the broker would keep them
            lst.publish(topic, b"", retain=True).wait_for_publish()


# -- round trips, one per source kind ---------------------------------------------------------------------
def test_mqtt_source_round_trip_image_trigger_and_path(station, broker, listen, tiny_inspector, good_png, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "part.png").write_bytes(good_png)
    cfg = station(mqtt={"allowed_dirs": [str(shared)]})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        lst.publish("image/SN-1", good_png, correlation=b"c1")
        lst.publish("image", good_png, user={"inspection_id": "id-2", "serial": "SN-2"})
        wrapped = "data:image/png;base64," + base64.encodebytes(good_png).decode()  # a data URI, in lines of 76 (the base64 tool's)
        lst.publish("trigger", json.dumps({"inspection_id": "id-3", "serial": "SN-3", "base64": wrapped}))
        lst.publish("trigger", json.dumps({"inspection_id": "id-4", "path": str(shared / "part.png")}))
        results = wait_until(lambda: len(lst.json("result")) >= 4 and lst.json("result"), 15, "4 results")
        by_serial = {r["serial"]: r for r in results}
        assert set(by_serial) == {"SN-1", "SN-2", "SN-3", None}
        assert by_serial["SN-2"]["inspection_id"] == "id-2" and by_serial["SN-3"]["inspection_id"] == "id-3"
        assert {r["inspection_id"] for r in results} >= {"id-2", "id-3", "id-4"}
        assert next(c for p, c in lst.on("result") if json.loads(p)["serial"] == "SN-1") == b"c1"  # MQTT 5 correlation echoed
        for r in results:
            assert r["station"] == "st1" and r["verdict"] in ("PASS", "FAIL") and "total" in r["timings_ms"]
            assert "base64" not in json.dumps(r) and (d.store.root / r["images"]["image"]).is_file()
            stored = cv2.cvtColor(cv2.imread(str(d.store.root / r["images"]["image"])), cv2.COLOR_BGR2RGB)
            assert hashlib.sha256(np.ascontiguousarray(stored).tobytes()).hexdigest() == r["image"]["sha256"]  # as the README says
        # stored before published, and marked published once the broker acknowledged
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 5, "acks")
        assert d.store.count() == 4
        # a repeated id is answered from the store, not inspected again
        lst.publish("trigger", json.dumps({"inspection_id": "id-3", "base64": base64.b64encode(good_png).decode()}))
        wait_until(lambda: len(lst.json("result")) >= 5, 10, "repeat answered")
        assert d.store.count() == 4 and d.metrics.total("inspector_frames_total") == 4
    # graceful stop publishes offline itself; shutdown returns once the broker acknowledged it, which then forwards it
    wait_until(lambda: lst.on("status")[-1][0] == b"offline", 5, "the offline status")


def test_camera_source_round_trip(station, broker, listen, tiny_inspector, tmp_path):
    # the camera source is OpenCV's VideoCapture; a video file stands in for the device
    video = write_video(tmp_path / "cam.avi", n=50)
    cfg = station(source={"type": "camera", "device": str(video)})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        for i in range(3):
            lst.publish("trigger", json.dumps({"serial": f"CAM-{i}"}))
        results = wait_until(lambda: len(lst.json("result")) >= 3 and lst.json("result"), 15, "3 camera results")
    assert sorted(r["serial"] for r in results) == ["CAM-0", "CAM-1", "CAM-2"]
    assert all(r["source"] == f"camera:{video}" for r in results) and not lst.on("error")


def test_stream_source_round_trip(station, broker, listen, tiny_inspector, mjpeg):
    cfg = station(source={"type": "stream", "url": mjpeg.url, "capture_timeout_s": 10.0})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        lst.publish("trigger", json.dumps({"serial": "S1", "inspection_id": "s-1"}))
        r = wait_until(lambda: lst.json("result"), 20, "stream result")[0]
    assert r["inspection_id"] == "s-1" and r["source"].startswith("stream:http://127.0.0.1") and r["image"]["width"] == 96


def test_video_source_trigger_and_continuous(station, broker, listen, tiny_inspector, tmp_path):
    video = write_video(tmp_path / "v.avi", n=12)
    cfg = station(source={"type": "video", "path": str(video), "fps": "max", "mode": "trigger"})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        for i in range(3):
            lst.publish("trigger", json.dumps({"inspection_id": f"v-{i}"}))
        wait_until(lambda: len(lst.json("result")) >= 3, 15, "video trigger results")
    assert {r["inspection_id"] for r in lst.json("result")} == {"v-0", "v-1", "v-2"}
    # continuous, as fast as possible, no loop: every frame of the file is inspected, none skipped
    cfg2 = station(source={"type": "video", "path": str(video), "fps": "max", "mode": "continuous", "loop": False},
                   model={"queue_size": 2, "batch_size": 2}, store={"data_dir": str(tmp_path / "data2")})
    lst2 = listen(broker.port, cfg2.mqtt.prefix)
    with running(cfg2, tiny_inspector) as d:
        wait_until(lambda: len(lst2.json("result")) >= 12, 20, "12 frames")
        time.sleep(0.2)
        assert d.metrics.total("inspector_frames_dropped_total") == 0
    assert len(lst2.json("result")) == 12 and not lst2.on("error")


def test_folder_source_round_trip(station, broker, listen, tiny_inspector, tmp_path, good_png, caplog, monkeypatch):
    from inspector import sources

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(sources, "INCOMPLETE_WAIT_S", 0.5)  # broken.png stays cut short: rejected after 0.5 s, not 5 s
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    cfg = station(source={"type": "folder", "path": str(incoming), "poll_s": 0.05, "settle_s": 0.05})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        for i in range(3):
            (incoming / f"PART-{i}.png").write_bytes(good_png)
        (incoming / "broken.png").write_bytes(good_png[:100])
        (tmp_path / "elsewhere.png").write_bytes(good_png)
        (incoming / "LINK-1.png").symlink_to(tmp_path / "elsewhere.png")
        wait_until(lambda: len(lst.json("result")) >= 3 and len(lst.on("error")) >= 2, 15, "folder results")
        wait_until(lambda: not list(incoming.glob("*.png")), 5, "files moved")
    assert sorted(r["serial"] for r in lst.json("result")) == ["PART-0", "PART-1", "PART-2"]
    assert sorted(p.name for p in (incoming / "done").iterdir()) == ["PART-0.png", "PART-1.png", "PART-2.png"]
    assert sorted(p.name for p in (incoming / "rejected").iterdir()) == ["LINK-1.png", "broken.png"]
    errors = {e["serial"]: e for e in lst.json("error")}  # each with its serial (null before)
    assert "broken.png" in errors["broken"]["error"]
    assert (errors["broken"]["input"], errors["LINK-1"]["input"]) == ("folder:broken.png", "folder:LINK-1.png")  # as a result names its file
    assert errors["LINK-1"]["error"].startswith("LINK-1.png is a link, which a watched folder does not follow")  # only logged before
    assert len([r for r in caplog.records if "LINK-1.png is a link" in r.getMessage()]) == 1  # the source and the daemon each logged it
    from inspector.store import Store

    store = Store(cfg.store.data_dir, readonly=True)
    kinds, first = store.refused_on_arrival(None, None)  # both kept for the shift report, each by its cause
    store.close()
    assert kinds == {"invalid": 1, "set_aside": 1}
    assert sorted((e["serial"], e["source"]) for e in first) == [("LINK-1", "folder:LINK-1.png"), ("broken", "folder:broken.png")]




def test_results_held_for_another_store_try_are_bounded_by_count_and_bytes(monkeypatch):
    """Each holds its frame and map: 32 frames of 50 MP would have held 4.8 GB."""
    from types import SimpleNamespace

    monkeypatch.setattr(pipeline, "UNSTORED_KEPT", 4)
    monkeypatch.setattr(pipeline, "UNSTORED_BYTES", 3000)
    sink = pipeline.Sink.__new__(pipeline.Sink)  # only its holding is tested here
    sink._unstored = {}
    hold = lambda ident, n: sink._hold(SimpleNamespace(inspection_id=ident, rgb=np.zeros(n, np.uint8)),  # noqa: E731
                                       SimpleNamespace(anomaly_map=np.zeros(0, np.float32)))
    for i in range(6):
        hold(f"s{i}", 500)
    assert list(sink._unstored) == ["s2", "s3", "s4", "s5"]  # the newest 4
    hold("big", 2000)
    assert list(sink._unstored) == ["s4", "s5", "big"]  # 3000 bytes
    hold("huge", 10_000)
    assert list(sink._unstored) == ["huge"]  # the newest is always held

def test_a_watched_file_the_journal_refuses_waits_in_its_folder_unanswered(station, broker, listen, tiny_inspector, tmp_path,
                                                                          good_png, monkeypatch):
    """It was answered 'send it again' on the error topic, every 5 s, while its folder already sent it again by itself."""
    import sqlite3

    import inspector.sources

    monkeypatch.setattr(inspector.sources, "STORE_RETRY_S", 0.2)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    cfg = station(source={"type": "folder", "path": str(incoming), "poll_s": 0.05, "settle_s": 0.05})
    lst = listen(broker.port, cfg.mqtt.prefix)
    tries: list[str] = []

    def full(ident, *args, **kwargs):
        tries.append(ident)
        raise sqlite3.OperationalError("database or disk is full")

    with running(cfg, tiny_inspector) as d:
        real_accept = d.store.accept
        monkeypatch.setattr(d.store, "accept", full)
        (incoming / "PART-7.png").write_bytes(good_png)
        wait_until(lambda: len(tries) >= 3, 10, "three tries of the file")
        health = json.loads(http_get(d.http.port, "/health")[1])
        assert health["status"] == "degraded" and "stays in the folder" in health["store"]["error"]
        assert (incoming / "PART-7.png").exists() and not lst.on("error")
        monkeypatch.setattr(d.store, "accept", real_accept)
        wait_until(lambda: lst.result_ids(), 10, "its result once the journal takes it")
        wait_until(lambda: (incoming / "done" / "PART-7.png").exists(), 5, "moved to done/")
        health = json.loads(http_get(d.http.port, "/health")[1])
        assert sum(health["verdicts"].values()) == 1 and all(type(n) is int for n in (*health["verdicts"].values(), health["rejected"]))  # 1.0
    assert [r["serial"] for r in lst.json("result")] == ["PART-7"] and not lst.on("error")

# -- load, outages --------------------------------------------------------------------------------------------
def test_full_queue_rejects_with_a_message(station, broker, listen, tiny_inspector, good_png):
    cfg = station(model={"queue_size": 2, "batch_size": 1, "queue_wait_s": 0})
    lst = listen(broker.port, cfg.mqtt.prefix)
    b64 = base64.b64encode(good_png).decode()
    with running(cfg, tiny_inspector) as d:
        for i in range(40):
            lst.publish("trigger", json.dumps({"inspection_id": f"q-{i}", "base64": b64}))
        answered = lambda: lst.result_ids() | {e["inspection_id"] for e in lst.json("error")}  # noqa: E731
        wait_until(lambda: len(answered()) == 40, 30, "every trigger answered")
        errors = lst.json("error")
    assert errors and all("queue is full" in e["error"] for e in errors)  # rejected, not dropped
    assert lst.result_ids().isdisjoint(e["inspection_id"] for e in errors) and len(lst.result_ids()) >= 2
    assert d.metrics.value("inspector_rejected_total", {"reason": "queue_full"}) == len(errors)


def test_a_store_that_fails_writes_is_answered_and_shown(station, broker, listen, tiny_inspector, good_png, monkeypatch):
    import sqlite3

    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    b64 = base64.b64encode(good_png).decode()
    trigger = lambda ident: lst.publish("trigger", json.dumps({"inspection_id": ident, "base64": b64}))  # noqa: E731
    errors_for = lambda ident: [e["error"] for e in lst.json("error") if e["inspection_id"] == ident]  # noqa: E731
    health = lambda d: json.loads(http_get(d.http.port, "/health")[1])  # noqa: E731

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(pipeline, "STORE_RETRY_S", 0.5)
    with running(cfg, tiny_inspector) as d:
        real_add, real_accept = d.store.add, d.store.accept
        monkeypatch.setattr(d.store, "add", full)
        trigger("u-1")
        wait_until(lambda: errors_for("u-1"), 10, "u-1's store error")
        assert "could not be stored (database or disk is full)" in errors_for("u-1")[0]
        h = health(d)
        assert h["status"] == "degraded" and h["store"]["unstored"] == 1 and "disk is full" in h["store"]["error"]  # "ok" before
        # the retained status says so too (it stayed `online`), for a line that does not poll /health
        wait_until(lambda: lst.on("status")[-1][0] == b"degraded", 5, "status degraded")
        trigger("u-1")  # the line asks again: answered with why (before: acknowledged, and nothing came)
        wait_until(lambda: len(errors_for("u-1")) == 2, 10, "the repeat answered")
        assert errors_for("u-1")[1] == errors_for("u-1")[0] and d.store.is_pending("u-1")  # still journaled
        monkeypatch.setattr(d.store, "accept", full)  # the journal cannot take the input either
        trigger("u-2")
        wait_until(lambda: errors_for("u-2"), 10, "u-2's journal error")
        assert "could not be journaled" in errors_for("u-2")[0] and not d.store.is_pending("u-2")  # before: no answer at all
        time.sleep(1.2)  # two more tries of u-1 while the store still refuses: no more errors for it
        assert len(errors_for("u-1")) == 2 and d.store.is_pending("u-1") and "u-1" not in lst.result_ids()
        monkeypatch.setattr(d.store, "add", real_add)
        monkeypatch.setattr(d.store, "accept", real_accept)
        trigger("u-2")  # sent again, as told
        wait_until(lambda: "u-2" in lst.result_ids(), 10, "u-2's result")
        # u-1 is stored and published while the daemon runs (before: only at the next start, degraded until then)
        wait_until(lambda: "u-1" in lst.result_ids(), 10, "u-1's result, once the store takes writes")
        assert not d.store.is_pending("u-1") and d.store.get("u-1")["verdict"] in ("PASS", "FAIL")
        # the sink clears the trouble after handle() published the result (u-2's in step, u-1's in _store_again)
        wait_until(lambda: health(d)["store"] == {"error": None, "unstored": 0}, 5, "the store's trouble cleared")
        wait_until(lambda: lst.on("status")[-1][0] == b"online", 5, "status online again")
        assert d.metrics.total("inspector_store_failures_total") == 2 and len(errors_for("u-1")) == 2


def test_a_result_the_broker_refuses_is_offered_again_and_shown(make_broker, station, listen, tiny_inspector, good_png, tmp_path,
                                                               monkeypatch):
    """A refused result was held as handed over for good: never offered again, and /health said ok."""
    import signal

    from inspector import outbox

    monkeypatch.setattr(outbox, "REFUSED_RETRY_S", 1.0)
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny test/+/result\n")
    broker = make_broker(extra=f"acl_file {acl}")
    cfg = station(mqtt={"port": broker.port})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        lst.publish("image/R1", good_png)
        wait_until(lambda: d.metrics.total("inspector_publish_refused_total") >= 2, 15, "refused, and refused again when offered again")
        # shown for REFUSED_RETRY_S (1 s here) after each refusal, and refused again every ~2 s: a stalled test thread
        # could read it between two refusals
        health = wait_until(lambda: (h := d.health()).get("publish_refused") and h, 15, "the refusal on /health")
        assert health["status"] == "degraded" and "authori" in health["publish_refused"].lower(), health
        assert d.store.counts()["unpublished"] == 1 and not lst.on("result")
        acl.write_text("topic readwrite #\n")
        broker.proc.send_signal(signal.SIGHUP)  # mosquitto reloads its ACL
        wait_until(lambda: d.store.counts()["unpublished"] == 0 and lst.on("result"), 15, "published once the broker allows it")
        wait_until(lambda: d.health()["status"] == "ok", 5, "healthy again")
    assert [r["serial"] for r in lst.json("result")] == ["R1"]


def test_a_nearly_full_disk_keeps_results_without_their_images(station, broker, listen, tiny_inspector, defect_png, monkeypatch):
    """A full disk would refuse the results themselves: below store.min_free_mb their images give way."""
    from inspector import pipeline

    usage, free = pipeline.shutil.disk_usage, {"mb": 100}
    monkeypatch.setattr(pipeline.shutil, "disk_usage", lambda p: usage(p)._replace(free=free["mb"] * 2**20))
    cfg = station(store={"min_free_mb": 500})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: d.health()["status"] == "degraded" and d.health()["disk"]["free_mb"] == 100, 10, "seen before any part came")
        lst.publish("image/D1", defect_png)
        wait_until(lambda: len(lst.json("result")) == 1, 15, "a result")
        assert lst.json("result")[0]["verdict"] == "FAIL" and lst.json("result")[0]["images"] == {}
        health = d.health()
        assert health["status"] == "degraded" and health["disk"] == {"free_mb": 100, "images": "not saved (free space below store.min_free_mb, 500 MB)"}
        assert d.metrics.total("inspector_images_skipped_total") == 1 and d.store.count() == 1
        free["mb"] = 10_000
        d.sink._next_disk_check = 0.0
        lst.publish("image/D2", defect_png)
        wait_until(lambda: len(lst.json("result")) == 2, 15, "a second result")
        assert set(lst.json("result")[1]["images"]) == {"image", "overlay"} and d.health()["status"] == "ok"


def test_a_fail_report_that_cannot_be_written_is_on_health_in_one_line(station, broker, listen, tiny_inspector, defect_png, caplog,
                                                                      monkeypatch):
    """A full reports folder logged a traceback per FAIL while /health read ok, and no report was written."""
    import errno

    calls = []

    def on_fail(record):
        calls.append(record["inspection_id"])
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", "reports/2026-12-03/x.pdf")

    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector, on_fail=on_fail) as d:
        lst.publish("image/D1", defect_png)
        wait_until(lambda: d.hooks.failed == 1, 15, "the failed report")
        health = d.health()
        assert health["status"] == "degraded" and health["reports"]["failed"] == 1
        assert health["reports"]["error"].startswith(f"fail report of {calls[0]} failed ([Errno 28] No space left on device")
        assert [r.exc_info for r in caplog.records if r.name == "inspector.hooks"] == [None]  # one line, no traceback
        monkeypatch.setattr("inspector.hooks.FAILED_SHOWN_S", 0.0)  # an hour on, with no FAIL since: degraded for ever before
        assert d.health()["status"] == "ok" and d.health()["reports"]["error"].startswith("fail report of")
        monkeypatch.setattr("inspector.hooks.FAILED_SHOWN_S", 3600.0)
        lst.publish("image/D2", defect_png)
        wait_until(lambda: len(calls) == 2 and d.health()["status"] == "ok", 15, "a later report written: healthy again")
        assert d.health()["reports"] == {"failed": 1, "error": None}


def test_retention_deletes_old_report_files(tmp_path):
    import os

    from inspector.pipeline import prune_files

    old, new = tmp_path / "reports" / "2026-01-01" / "a.html", tmp_path / "reports" / "shifts" / "b.pdf"
    for p in (old, new):
        p.parent.mkdir(parents=True)
        p.write_text("x")
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    assert prune_files(tmp_path / "reports", 2) == 1
    assert not old.parent.exists() and new.exists() and (tmp_path / "reports").is_dir()


def test_broker_killed_mid_burst_all_500_results_arrive(make_broker, station, listen, tiny_inspector, good_png, tmp_path):
    """SIGKILL the broker with 250 triggers accepted and most of their results not yet made; 250 more after it is back.

    A broker killed with SIGKILL loses what it acknowledged but had not yet written to subscribers; no publisher can
    recover that. So the kill happens while inference is held (every result made so far delivered), after the broker
    saved its sessions, so the consumer's subscription survives the kill, as with persistence on a real line.
    """
    broker = make_broker(extra=f"persistence true\npersistence_location {tmp_path}/\nautosave_interval 1\n")
    cfg = station(mqtt={"protocol": "3.1.1", "port": broker.port})
    b64 = base64.b64encode(good_png).decode()
    lst = listen(broker.port, cfg.mqtt.prefix, client_id="results-consumer")
    ids = [f"b-{i:03d}" for i in range(500)]

    def send(batch):
        infos = [lst.publish("trigger", json.dumps({"inspection_id": i, "serial": i, "base64": b64})) for i in batch]
        for info in infos:
            info.wait_for_publish(10)

    with running(cfg, tiny_inspector) as d:
        gate = threading.Event()
        gate.set()
        inspect = d.inference.inspector.inspect_batch
        d.inference.inspector.inspect_batch = lambda *a, **k: gate.wait() and inspect(*a, **k)
        send(ids[:50])
        wait_until(lambda: len(lst.result_ids()) == 50, 30, "first 50 results")
        gate.clear()  # hold inference: what follows is accepted but not yet inspected
        send(ids[50:250])
        wait_until(lambda: d.metrics.total("inspector_frames_total") == 250, 30, "250 accepted")
        wait_until(lambda: d.store.counts()["unpublished"] == 0 and len(lst.result_ids()) == d.store.count(), 10, "quiet broker")
        quiet, db = time.time(), tmp_path / "mosquitto.db"
        wait_until(lambda: db.exists() and db.stat().st_mtime > quiet, 10, "a broker autosave of the quiet state")
        broker.kill()  # SIGKILL
        wait_until(lambda: not d.mqtt.connected, 5, "daemon to notice")
        gate.set()
        wait_until(lambda: d.store.count() == 250, 30, "inspection goes on while the broker is down")
        assert d.store.counts()["unpublished"] > 0 and len(lst.result_ids()) < 250
        broker.start()
        wait_until(lambda: d.mqtt.connected and lst.client.is_connected(), 30, "reconnects")
        send(ids[250:])
        wait_until(lambda: lst.result_ids() >= set(ids), 90, "all 500 results")
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 10, "outbox empty")
    assert lst.result_ids() == set(ids) and not lst.on("error")
    assert d.metrics.value("inspector_batch_size") < 500  # batched: fewer forward passes than frames


# -- bad input ------------------------------------------------------------------------------------------------
def malformed_inputs(good_png: bytes, tmp_path: Path) -> list[tuple[str, bytes, dict | None]]:
    """200 bad inputs: (topic, payload, user properties)."""
    rng = np.random.default_rng(0)
    jpg = cv2.imencode(".jpg", cv2.cvtColor(good_image(3), cv2.COLOR_RGB2BGR))[1].tobytes()
    b64 = base64.b64encode(good_png).decode()
    T = lambda d: json.dumps(d).encode()  # noqa: E731
    bad: list[tuple[str, bytes, dict | None]] = []
    bad += [("image", b"\xff\xd8\xff\xe0" + rng.bytes(int(rng.integers(10, 3000))), None) for _ in range(25)]  # corrupt JPEG
    bad += [("image", jpg[: int(n)], None) for n in rng.integers(2, len(jpg) - 10, 25)]  # truncated JPEG
    bad += [("trigger", T({"base64": base64.b64encode(jpg[: int(n)]).decode()}), None) for n in rng.integers(2, len(jpg) - 10, 10)]
    bad += [("image", b"", None)] * 5 + [("trigger", b"", None)] * 5  # empty
    bad += [("image", rng.bytes(120_000), None)] * 5 + [("trigger", T({"base64": "A" * 120_000}), None)] * 5  # oversized
    bad += [("trigger", p, None) for p in (b"{", b"[1,2]", b"null", b'"text"', b"42", b"\xff\xfe\x00", b"{'single': 1}", b"trigger please",
                                            b'{"serial": }', b"{}}", b"[]", b"true", b'{"a":1', b"\x00" * 10, b"<xml/>")] * 2  # bad JSON
    evil = ["../../etc/passwd", "..", "a/b", "/abs", "C:\\windows\\system32", "$(rm -rf /)", "x" * 200, "with space", "nul\x00byte", "+", "#",
            "new\nline", "../" * 20, "%2e%2e%2f", ".hidden"]
    bad += [("trigger", T({"serial": s, "base64": b64}), None) for s in evil]  # unsafe serials
    bad += [("trigger", T({"inspection_id": s, "base64": b64}), None) for s in evil[:10]]  # unsafe ids
    bad += [("image/..", good_png, None), ("image", good_png, {"serial": "../../etc/passwd"}), ("image", good_png, {"inspection_id": "../x"})] * 2
    bad += [("trigger", T({"serial": "OK1", "base64": b64, f"extra{i}": 1}), None) for i in range(10)]  # unknown fields
    bad += [("trigger", T(d), None) for d in ({"serial": 123}, {"capture": "yes"}, {"base64": 5}, {"inspection_id": ["a"]}, {"path": None, "url": 3})] * 2
    bad += [("trigger", T({"path": p}), None) for p in ("/etc/passwd", "../../etc/shadow", str(tmp_path / "nope.png"), "/proc/self/environ", "~/.ssh/id_rsa")]
    bad += [("trigger", T({"url": u}), None) for u in ("file:///etc/passwd", "http://127.0.0.1:1/x.png", "gopher://x", "ftp://x/y.png", "javascript:alert(1)")]
    bad += [("trigger", T({"base64": s}), None) for s in ("!!!", "abc", "====", "not base64 at all", "\u00e9\u00e9")]
    bad += [("trigger", T({"base64": b64, "path": "/x.png"}), None), ("trigger", T({"capture": True, "base64": b64}), None)] * 3
    bad += [("trigger", T({"capture": True}), None)] * 2  # an MQTT-only station cannot capture
    bad += [("command", T({"command": "format_disk"}), None), ("command", b"{", None), ("command", T({"command": "shift_report", "x": 1}), None)]
    bad += [("image", b"GIF89a" + rng.bytes(50), None), ("image", b"%PDF-1.4 " + rng.bytes(100), None)]
    bad += [("image", good_png[: int(n)], None) for n in rng.integers(10, len(good_png) - 20, 11)]  # truncated PNG
    return bad


def test_inputs_no_handler_foresaw_are_answered_and_acknowledged(station, broker, listen, tiny_inspector, good_png, tmp_path, caplog):
    """Deep JSON (RecursionError), a path with NUL (ValueError) or too long a name (OSError) went unanswered and
    unacknowledged: 100 of them filled the broker's window, and the persistent session replayed them at every start."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    cfg = station(mqtt={"allowed_dirs": [str(allowed)]}, model={"max_image_pixels": 1_000_000})
    lst = listen(broker.port, cfg.mqtt.prefix)
    poison = [("trigger", b"[" * 50_000), ("command", b'{"a":' * 20_000), ("trigger", json.dumps({"path": str(allowed / "a\x00b.png")}).encode()),
              ("trigger", json.dumps({"path": str(allowed / ("x" * 300 + ".png"))}).encode())]
    big = cv2.imencode(".png", np.zeros((1100, 1000), np.uint8))[1].tobytes()  # over this station's limit: refused undecoded
    poison.append(("image", big))
    with running(cfg, tiny_inspector):
        for i, (topic, payload) in enumerate(poison):
            lst.publish(topic, payload, correlation=f"p-{i}".encode())
        wait_until(lambda: len(lst.on("error")) >= len(poison), 15, "every input answered")
        assert sorted(c for _, c in lst.on("error")) == [f"p-{i}".encode() for i in range(len(poison))]
        assert all("\n" not in json.loads(body)["error"] for body, _ in lst.on("error"))
        said = {c: json.loads(body)["error"] for body, c in lst.on("error")}
        assert "1000 x 1100 px is over the 1 million pixels" in said[b"p-4"]
        assert said[b"p-2"].endswith("a\\x00b.png' is not a valid file name"), said[b"p-2"]
        assert said[b"p-3"].endswith("cannot be read (File name too long)"), said[b"p-3"]
        lst.publish("trigger", json.dumps({"path": str(allowed)}), correlation=b"dir")
        wait_until(lambda: b"dir" in {c for _, c in lst.on("error")}, 5, "a folder answered")
        assert json.loads(next(b for b, c in lst.on("error") if c == b"dir"))["error"].endswith("is a folder; name an image file in it")
        lst.publish("image/GOOD-2", good_png)
        assert wait_until(lambda: lst.json("result"), 10, "served after them")[0]["serial"] == "GOOD-2"


def test_200_malformed_inputs_each_answered_on_the_error_topic(station, broker, listen, tiny_inspector, good_png, tmp_path):
    cfg = station(mqtt={"max_payload_bytes": 100_000}, store={"save_overlays": "all"})
    bad = malformed_inputs(good_png, tmp_path)
    assert len(bad) == 200
    before = {p for p in tmp_path.rglob("*") if "broker" not in p.parts[len(tmp_path.parts)]}
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        for i, (topic, payload, user) in enumerate(bad):
            lst.publish(topic, payload, correlation=f"bad-{i}".encode(), user=user)
        wait_until(lambda: len(lst.on("error")) >= 200, 30, "200 errors")
        time.sleep(0.3)
        errors = lst.on("error")
        assert len(errors) == 200 and not lst.on("result")
        assert sorted(c for _, c in errors) == sorted(f"bad-{i}".encode() for i in range(200))  # one answer per input
        for payload, corr in errors:
            msg = json.loads(payload)["error"]
            assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, (corr, msg)
        # still serving
        lst.publish("image/GOOD-1", good_png)
        r = wait_until(lambda: lst.json("result"), 10, "a result after the bad inputs")[0]
        assert r["serial"] == "GOOD-1" and d.health()["status"] == "ok"
        assert d.workers["intake"].restarts == 0 and d.store.counts()["pending"] == 0
        # the parts among them are in no record: kept for the shift report, which counts them (the 3 commands are no parts)
        kinds, first = d.store.refused_on_arrival(None, None, limit=500)
        assert kinds == {"invalid": 187, "too_large": 10} and {e["source"] for e in first} == {"trigger", "image", "image/.."}
        assert sum(e["serial"] == "../../etc/passwd" for e in first) == 0 and sum(e["source"] == "image/.." for e in first) == 2
        lst.publish("command", json.dumps({"command": "shift_report", "start": "2000-01-01T00:00:00Z", "formats": ["html"]}), correlation=b"rep")
        reply = wait_until(lambda: lst.json("report"), 15, "the shift report")[0]
        assert (reply["records"], reply["refused_on_arrival"], reply["not_inspected"]) == (1, 197, 0)
        assert "197 inputs were refused on arrival" in Path(reply["files"]["html"]).read_text(encoding="utf-8")
    created = {p for p in tmp_path.rglob("*") if "broker" not in p.parts[len(tmp_path.parts)]} - before
    data = Path(cfg.store.data_dir)
    assert created and all(p == data or data in p.parents for p in created), sorted(map(str, created - {data}))[:5]
    assert sorted(p.name for p in data.rglob("*.png")) == [f"{r['inspection_id']}_image.png", f"{r['inspection_id']}_overlay.png"]


# -- health, metrics, hooks, watchdog, retention ---------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the worker killed on purpose
def test_the_live_view_shows_the_latest_part_its_overlay_and_the_counts(station, broker, listen, tiny_inspector, good_png, defect_png):
    """A page at / for the people at the line (a smart camera's web view): held in memory, so it shows the overlay
    even where the store keeps no images."""
    cfg = station(store={"save_images": "none", "save_overlays": "none"}, reports={"lang": "zh", "timezone": "UTC"})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        code, body = http_get(d.http.port, "/")
        assert code == 200 and 'id="no-part"' in body.decode()
        assert [http_get(d.http.port, p, "HEAD") for p in ("/", "/health", "/nope")] == [(200, b""), (200, b""), (404, b"")]  # not 501
        for serial, payload in (("P-GOOD", good_png), ("P-BAD", defect_png)):
            lst.publish(f"image/{serial}", payload)
            wait_until(lambda s=serial: s in {r["serial"] for r in lst.json("result")}, 15, f"{serial}'s result")
        wait_until(lambda: "P-BAD" in http_get(d.http.port, "/")[1].decode(), 5, "the page shows the latest part")
        page = http_get(d.http.port, "/")[1].decode()
    assert '<span class="verdict FAIL">不合格</span>' in page and '<td id="serial">P-BAD</td>' in page  # in the station's language
    uri = re.search(r'<img src="data:image/jpeg;base64,([^"]+)"', page).group(1)
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(uri), np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape[:2] == cv2.imdecode(np.frombuffer(defect_png, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    assert len(re.findall(r"<tr><td>2\d{3}-", page)) == 2  # both parts in the table, newest first
    assert page.index("P-BAD</td><td>不合格") < page.index("P-GOOD</td><td>合格")
    assert '<div class="v" id="inspected">2</div>' in page and '<meta http-equiv="refresh" content="2">' in page
    with running(station(http={"port": 0, "live": False}), tiny_inspector) as d:
        assert http_get(d.http.port, "/")[0] == 404 and http_get(d.http.port, "/health")[0] == 200


def test_a_review_sent_over_mqtt_is_recorded_and_answered(station, broker, listen, tiny_inspector, defect_png, caplog):
    """A rework station's terminal tells the line what a FAILed part really was, without a shell on the box."""
    from inspector.store import Store

    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        lst.publish("image/RW-1", defect_png, user={"inspection_id": "rw-1"})
        assert wait_until(lambda: lst.json("result"), 15, "a result")[0]["verdict"] == "FAIL"
        ask = {"command": "review", "inspection_id": "rw-1", "truth": "good", "by": "QA 2", "note": "dust\non the lens"}
        lst.publish("command", json.dumps(ask), correlation=b"v1")
        (body, corr), = wait_until(lambda: lst.on("report"), 15, "the review's reply")
        reply = json.loads(body)
        assert corr == b"v1" and (reply["command"], reply["inspection_id"], reply["outcome"], reply["note"]) == \
            ("review", "rw-1", "false_alarm", "dust on the lens")
        for bad, needle in (({**ask, "inspection_id": "nope"}, "inspection 'nope': not in store"),
                            ({**ask, "type": "crack"}, "type names a defect's type: give it with truth defect"),
                            ({k: v for k, v in ask.items() if k != "by"}, "command: by: Field required"),
                            ({**ask, "by": " \u0000"}, "command: by: is empty; name who reviewed the part"),
                            ({**ask, "truth": "maybe"}, "truth"),
                            ({"command": ["review"]}, "command: command: Input should be a valid string"),  # not a handler's crash
                            ({"command": "explode"}, "command: unknown command 'explode'; known: "),
                            ({**ask, "serial": "RW-1"}, "command: give the part's inspection_id or its serial (one of them)"),
                            ({**ask, "inspection_id": None, "serial": "RW-9"}, "serial 'RW-9': no inspection of it in store")):
            n = len(lst.on("error"))
            lst.publish("command", json.dumps(bad))
            wait_until(lambda n=n: len(lst.on("error")) > n, 15, f"the reply to {bad}")
            said = lst.json("error")[-1]["error"]
            assert needle in said and "command: command: unknown" not in said, said  # the topic named once
            if needle == "command: by: Field required":  # the part named, as a refused review's reply (null before)
                assert lst.json("error")[-1]["inspection_id"] == "rw-1"
        assert said.startswith("command: review not recorded: serial")
        by_serial = {k: v for k, v in ask.items() if k != "inspection_id"} | {"serial": "RW-1", "truth": "defect"}
        lst.publish("command", json.dumps(by_serial), correlation=b"v2")  # the rework station scanned the part's serial
        wait_until(lambda: len(lst.on("report")) > 1, 15, "the serial's review")
        assert (lst.json("report")[-1]["inspection_id"], lst.json("report")[-1]["outcome"]) == ("rw-1", "confirmed")
    assert "input not handled" not in caplog.text
    store = Store(cfg.store.data_dir, readonly=True)
    assert [r["by"] for r in store.get("rw-1")["reviews"]] == ["QA 2", "QA 2"]  # the refused ones wrote nothing
    store.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the worker killed on purpose
def test_health_metrics_hooks_watchdog_retention(station, broker, listen, tiny_inspector, good_png, defect_png):
    fails, shifts = [], []
    # stall_s well over a worker's idle beat (half a second): at 1 s a worker starved on CI's loaded cores was `silent`,
    # and the restart below read `failing`, not `degraded`
    cfg = station(watchdog={"interval_s": 0.2, "stall_s": 6.0}, store={"retention": {"max_rows": 2}})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector, on_fail=fails.append, on_shift_report=lambda recs, meta: shifts.append((recs, meta)) or {}) as d:
        port = d.http.port
        for i, payload in enumerate([good_png, defect_png, good_png]):
            lst.publish(f"image/P{i}", payload)
        results = wait_until(lambda: len(lst.json("result")) >= 3 and lst.json("result"), 15, "3 results")
        verdicts = {r["serial"]: r["verdict"] for r in results}
        assert verdicts["P1"] == "FAIL" and verdicts["P0"] == "PASS"
        wait_until(lambda: [f["serial"] for f in fails] == ["P1"], 5, "on_fail hook")
        code, body = http_get(port, "/health")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok" and health["broker"] == "connected" and health["records"] == 3
        # a batch's inference time is observed after its results went to the sink, which may publish them all first
        wait_until(lambda: 'inspector_stage_seconds_count{stage="inference"}' in d.render_metrics(), 5, "the inference stage timed")
        code, text = http_get(port, "/metrics")
        text = text.decode()
        for line in ('inspector_frames_total{source="mqtt"} 3', 'inspector_verdicts_total{verdict="FAIL"} 1', "inspector_broker_connected 1",
                     "inspector_queue_depth 0", 'inspector_stage_seconds_count{stage="inference"}', 'inspector_stage_seconds_bucket{stage="total",le="+Inf"} 3',
                     'inspector_score_margin_count{verdict="PASS"} 2', 'inspector_score_margin_bucket{verdict="FAIL",le="-8.0"} 0'):
            assert line in text, line
        fail = next(r for r in results if r["verdict"] == "FAIL")  # the margin it was judged with, for drift dashboards
        margin_sum = re.search(r'inspector_score_margin_sum\{verdict="FAIL"\} (\S+)', text).group(1)
        assert float(margin_sum) == pytest.approx(fail["score"] - fail["threshold"], abs=1e-5) and fail["score"] > fail["threshold"]
        # shift report on command
        lst.publish("command", json.dumps({"command": "shift_report", "start": "2000-01-01T00:00:00Z"}), correlation=b"rep")
        wait_until(lambda: shifts and lst.on("report"), 5, "shift report")
        assert len(shifts[0][0]) == 3 and shifts[0][1]["station"] == "st1" and lst.on("report")[0][1] == b"rep"
        from reports.render import shift_name  # a report "so far" ends now, and is named so (not "shift", each overwriting the last)

        assert shift_name(shifts[0][1]).startswith("shift-st1-20000101T0000Z-")
        lst.publish("command", json.dumps({"command": "shift_report"}))  # everything so far: named by its end, not "shift"
        wait_until(lambda: len(shifts) > 1, 5, "a second shift report")
        assert re.fullmatch(r"shift-st1-until-\d{8}T\d{6}Z", shift_name(shifts[1][1])), shift_name(shifts[1][1])
        # retention keeps the newest 2 published records
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 5, "acks")
        assert d.sink.prune() == 1 and d.store.count() == 2
        # watchdog: a dead worker is restarted, a silent one makes /health fail
        worker = d.workers["inference"]
        worker.step = lambda: (_ for _ in ()).throw(SystemExit)  # kills its thread
        wait_until(lambda: worker.restarts >= 1 and worker.restarted_at is not None, 5, "restart")  # set one after the other
        time.sleep(2 * cfg.watchdog.interval_s)  # it read ok one interval later: a monitor polling slowly never saw it
        h = json.loads(http_get(port, "/health")[1])
        assert h["status"] == "degraded" and "died and was restarted" in h["restarted"]["inference"]
        worker.step = lambda: worker.stop.wait(120)  # stuck until the daemon stops it: silent past stall_s for good
        # the same answer: the first request that sees it failing (a step that beat now and then made it come and go)
        _, body = wait_until(lambda: (r := http_get(port, "/health"))[0] == 503 and r, 6, "failing health")
        assert "inference silent" in json.loads(body)["problems"][0]


def test_reports_package_missing_is_tolerated(station, broker, listen, tiny_inspector, defect_png, monkeypatch, caplog):
    import importlib
    import pkgutil
    import sys

    import reports

    cfg = station(reports={"on_fail": True})
    # the station itself reads reports' modules (its clock, records) at start: loaded, as any test before this one in its
    # process had loaded them; only `import reports`, which the automatic reports make, fails from here
    for module in pkgutil.iter_modules(reports.__path__):
        importlib.import_module(f"reports.{module.name}")
    monkeypatch.setitem(sys.modules, "reports", None)  # import reports -> ImportError
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        lst.publish("image/D1", defect_png)
        lst.publish("image/D2", defect_png)
        wait_until(lambda: len(lst.json("result")) == 2, 10, "results")
        time.sleep(0.3)
    assert [r["verdict"] for r in lst.json("result")] == ["FAIL", "FAIL"]
    assert sum("reports package is not usable" in r.message for r in caplog.records) == 1  # logged once


def test_journal_recovery_gives_up_on_a_poison_job(tmp_path):
    import queue as q

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import MAX_ATTEMPTS, Intake
    from inspector.mqtt import Topics
    from inspector.store import Store

    store = Store(tmp_path / "data")
    store.accept("ok-1", {"serial": "A"}, png(good_image(1)))
    store.accept("bad-1", {"serial": "B"}, b"not an image")
    store.accept("poison-1", {"serial": "C"}, png(good_image(2)))
    for _ in range(MAX_ATTEMPTS):
        store.count_attempts(["poison-1"])
    sent = []
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    jobs: q.Queue = q.Queue(10)
    intake = Intake(cfg, store, jobs, Metrics(), Topics("p"), publish=lambda topic, body, reply=None: sent.append((topic, json.loads(body))),
                    republish=lambda r, c: None)
    assert intake.recover() == 1
    assert jobs.get_nowait().inspection_id == "ok-1"
    assert sorted(b["inspection_id"] for _, b in sent) == ["bad-1", "poison-1"] and all(t == "p/error" for t, _ in sent)
    assert [(i, job["serial"], a) for i, job, a in store.pending()] == [("ok-1", "A", 0)]  # counted when its batch starts
    # neither is lost with its journal entry: both wait in refused/, as they came, and their errors say where
    kept = {b["inspection_id"]: b["error"].rsplit("its image is kept at ", 1)[1] for _, b in sent}
    assert (store.root / kept["poison-1"]).read_bytes() == png(good_image(2)) and kept["poison-1"].endswith(".png")
    assert (store.root / kept["bad-1"]).read_bytes() == b"not an image" and kept["bad-1"].endswith(".bin")
    assert json.loads((store.root / kept["bad-1"]).with_suffix(".json").read_text())["serial"] == "B"


def test_a_full_disk_neither_kills_recovery_nor_uses_up_a_recovered_parts_attempts(tmp_path, station, tiny_inspector, good_png,
                                                                                 monkeypatch):
    """The intake died at every start on a full disk (its recovery could not count an attempt), answering nothing while
    /health read ok; and each start whose result could not be stored counted one, so the third gave the part up."""
    import queue as q
    import sqlite3

    from inspector.health import Metrics, StoreTrouble
    from inspector.intake import MAX_ATTEMPTS, Intake
    from inspector.mqtt import Topics
    from inspector.pipeline import Inference
    from inspector.store import Store

    cfg = station()
    store = Store(cfg.store.data_dir)
    store.accept("kept-1", {"serial": "K"}, good_png)

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "count_attempts", full)
    jobs: q.Queue = q.Queue(10)
    trouble = StoreTrouble()
    intake = Intake(cfg, store, jobs, Metrics(), Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None, trouble=trouble)
    assert intake.recover() == 1
    results: q.Queue = q.Queue(10)
    Inference(tiny_inspector, jobs, results, 4, Metrics(), store).step()
    job, outcome = results.get_nowait()  # inspected uncounted
    assert job.inspection_id == "kept-1" and not isinstance(outcome, str)
    monkeypatch.undo()
    store.close()
    for _ in range(MAX_ATTEMPTS + 1):  # starts whose result cannot be stored: the part waits, it is not given up
        monkeypatch.setattr(Store, "add", full)
        with running(cfg, tiny_inspector) as d:
            wait_until(lambda: d.metrics.total("inspector_store_failures_total") == 1 and [a for _, _, a in d.store.pending()] == [0],
                       15, "the store failure, its attempt taken back")
            assert d.health()["status"] == "degraded"
        monkeypatch.undo()
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: d.store.get("kept-1") is not None, 15, "stored once the disk has room")
        assert d.store.get("kept-1")["serial"] == "K" and not d.store.pending()


def test_images_that_cannot_be_written_leave_the_result_stored_without_them(station, broker, listen, tiny_inspector, defect_png,
                                                                            monkeypatch, caplog):
    """An image folder on a full disk (maybe not the store's) failed the whole result: it waited for a restart."""
    from model.errors import InspectorError

    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        real = d.store.save_image

        def full(record, kind, rgb):
            raise InspectorError(f"store {d.store.root}: cannot write {kind}.png; is the disk full?")

        monkeypatch.setattr(d.store, "save_image", full)
        lst.publish("image/D1", defect_png)
        wait_until(lambda: len(lst.json("result")) == 1, 15, "a result")
        assert lst.json("result")[0]["images"] == {} and not lst.json("error") and d.store.count() == 1
        assert d.metrics.total("inspector_images_skipped_total") == 1 and "cannot write image.png" in d.health()["disk"]["images"]
        d.sink._next_disk_check = d.sink._next_image_try = 0.0  # the free-space check finds room: it said "saved again", wrongly
        lst.publish("image/D2", defect_png)
        wait_until(lambda: len(lst.json("result")) == 2, 15, "a second result")
        assert lst.json("result")[1]["images"] == {} and d.health()["status"] == "degraded"
        assert "saved again" not in caplog.text and caplog.text.count("until they can be written") == 1  # said once
        monkeypatch.setattr(d.store, "save_image", real)
        d.sink._next_image_try = 0.0
        lst.publish("image/D3", defect_png)
        wait_until(lambda: len(lst.json("result")) == 3, 15, "a third result")
        assert set(lst.json("result")[2]["images"]) == {"image", "overlay"} and d.health()["disk"]["images"] == "saved"


def test_a_part_keeps_the_time_it_arrived_through_the_journal_and_into_its_record(tmp_path, station, tiny_inspector):
    """Records were stamped when inferred: a queue's seconds late, and jobs recovered after a crash at the restart
    (half a minute later in the audit, so across a shift's end they fell into the next shift's report)."""
    import queue as q
    from datetime import datetime, timezone

    from inspector.health import Metrics
    from inspector.intake import Intake, Job
    from inspector.mqtt import Topics
    from inspector.store import Store

    cfg = station()
    store = Store(cfg.store.data_dir)
    jobs: q.Queue = q.Queue(10)
    intake = Intake(cfg, store, jobs, Metrics(), Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None)
    intake.accept(good_image(1), png(good_image(1)), "arrived-5s-ago", "S1", "mqtt:image", time.monotonic() - 5.0)
    intake.accept(good_image(2), None, "captured", "S2", "camera:0", time.monotonic(), captured=1_700_000_000.25)
    first, second = jobs.get_nowait(), jobs.get_nowait()
    arrived = datetime.fromisoformat(first.timestamp.replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - arrived).total_seconds() - 5.0) < 1.0
    assert second.timestamp == "2023-11-14T22:13:20.250Z"  # a camera frame: its capture time
    again: q.Queue = q.Queue(10)  # a crash, then the next start recovers both from the journal
    assert Intake(cfg, store, again, Metrics(), Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None).recover() == 2
    assert [again.get_nowait().timestamp for _ in range(2)] == [first.timestamp, second.timestamp]
    store.close()
    with running(cfg, tiny_inspector) as d:
        job = Job("late", good_image(3), "S3", "mqtt:image", time.monotonic(), timestamp="2026-12-03T05:59:59.900Z")
        assert d.sink.handle(job, tiny_inspector.inspect(good_image(3)))["timestamp"] == "2026-12-03T05:59:59.900Z"


def test_a_graceful_stop_before_a_recovered_job_ran_is_no_attempt(tmp_path):
    """Jobs a stop leaves unstarted (queued, or still waiting to be) must not use up their recovery attempts."""
    import queue as q

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Topics
    from inspector.store import Store

    store = Store(tmp_path / "data")
    for i in range(3):
        store.accept(f"job-{i}", {"serial": str(i)}, png(good_image(i)))
    store.count_attempts(["job-2"])  # one earlier run crashed on it
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    jobs: q.Queue = q.Queue(1)
    intake = Intake(cfg, store, jobs, Metrics(), Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None)
    calls = iter([False, False, False, True, True])  # job-0 checks twice and is queued; the stop comes while job-1 waits for room
    intake.stopping = lambda: next(calls)
    assert intake.recover() == 1
    assert [a for _, _, a in store.pending()] == [0, 0, 1]  # job-0 queued, job-1 never: no batch ran either
    assert intake.release_unstarted() == 1 and jobs.empty() and jobs.unfinished_tasks == 0
    assert [a for _, _, a in store.pending()] == [0, 0, 1]  # the crash's attempt is kept


@pytest.mark.parametrize("name, message", [("nowhere.onnx", "no such file"), ("notes.txt", "unknown model kind")])
def test_a_bad_model_path_is_reported_before_connecting(station, tmp_path, name, message):
    from inspector.daemon import Daemon
    from model.errors import InspectorError

    (tmp_path / "notes.txt").write_text("not a model")
    d = Daemon(station(model={"path": str(tmp_path / name)}))
    with pytest.raises(InspectorError, match=f"{name}: {message}"):
        d.start()
    assert d.mqtt is None  # it never reached the broker


def test_a_device_the_machine_lacks_is_named_by_its_config_key(station):
    from inspector.daemon import Daemon
    from model.errors import InspectorError

    d = Daemon(station(model={"device": "cuda:63"}))
    with pytest.raises(InspectorError) as err:
        d.start()
    assert "model.device cuda:63: this torch sees" in str(err.value) and "use model.device cpu" in str(err.value)
    assert "--device" not in str(err.value)


def test_shift_report_command_times_are_the_stores_utc_form():
    """The store compares its UTC timestamps as text, so a command's times must be turned into that form first."""
    from zoneinfo import ZoneInfo

    from pydantic import ValidationError

    from inspector.intake import ShiftReportCommand

    cmd = ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-12-03T04:00+01:00", "end": "2026-12-03T05:00Z"})
    assert (cmd.start, cmd.end) == ("2026-12-03T03:00:00.000Z", "2026-12-03T05:00:00.000Z")
    berlin = ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-12-03T06:00"}, context={"zone": ZoneInfo("Europe/Berlin")})
    assert berlin.start == "2026-12-03T05:00:00.000Z"  # without an offset: the station's reports.timezone
    with pytest.raises(ValidationError, match="2026-10-25T02:30 happens twice in Europe/Berlin"):
        ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-10-25T02:30"}, context={"zone": ZoneInfo("Europe/Berlin")})
    for start, end, problem in (("garbage", None, "'garbage' is not a time"), ("0001-01-01T00:00+05:00", None, "is not a time"),
                                ("2026-12-03T06:00Z", "2026-12-03T05:00Z", "is not before end")):
        with pytest.raises(ValidationError, match=problem):
            ShiftReportCommand.model_validate({"command": "shift_report", "start": start, "end": end})
    from inspector.intake import pydantic_line

    for extra, problem in (({"lang": "de"}, "command: lang: Input should be 'en', 'zh' or 'es'"),
                           ({"formats": ["docx"]}, "command: formats.0: Input should be 'html' or 'pdf'")):
        with pytest.raises(ValidationError) as err:  # a typo is this command's error, not a failed report on /health
            ShiftReportCommand.model_validate({"command": "shift_report", **extra})
        assert pydantic_line(err.value, "command") == problem


def _intake(tmp_path, **mqtt):
    import queue as q

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Topics
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p", **mqtt}, "store": {"data_dir": str(tmp_path / "data")}})
    return Intake(cfg, Store(tmp_path / "data"), q.Queue(2), Metrics(), Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None)


def test_source_frames_take_few_inbox_slots(tmp_path):
    from inspector.intake import FRAME_SLOTS
    from inspector.sources import Frame

    intake, rgb = _intake(tmp_path), good_image(1)
    assert all(intake.submit(Frame("video:v", rgb=rgb, wait=True)) for _ in range(FRAME_SLOTS))
    assert not intake.submit(Frame("video:v", rgb=rgb, wait=True))  # a fast replay waits (the source offers it again)
    assert not intake.submit(Frame("camera:0", rgb=rgb))  # a live frame is skipped and counted
    assert intake.inbox.qsize() == FRAME_SLOTS  # before: up to 10,000 frames, and MQTT inputs then found no room
    assert intake.metrics.value("inspector_frames_dropped_total", {"reason": "busy"}) == 1
    intake.step(timeout=0.1)  # one taken: a slot is free again
    assert intake.submit(Frame("video:v", rgb=rgb, wait=True))


def test_a_url_that_trickles_is_given_up_at_the_timeout(tmp_path):
    import http.server

    sent_all = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(600):  # a byte every 0.1 s: each read is quick, the whole takes a minute
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                return  # the station hung up
            sent_all.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    intake = _intake(tmp_path, allow_urls=True, url_timeout_s=0.5)
    try:
        with pytest.raises(InspectorError, match=r"took longer than mqtt.url_timeout_s \(0.5 s\)"):
            intake._fetch(f"http://127.0.0.1:{server.server_address[1]}/part.png")
        assert not sent_all.is_set()  # given up while it trickled; before: read whole (here a minute), then "cannot be decoded"
    finally:
        server.shutdown()


def test_a_trigger_with_capture_false_and_no_image_is_refused():
    from pydantic import ValidationError

    from inspector.intake import TriggerCommand

    with pytest.raises(ValidationError, match="capture: false and no image"):  # before: it captured anyway
        TriggerCommand.model_validate({"serial": "K1", "capture": False})
    assert TriggerCommand.model_validate({"capture": False, "path": "/x.png"}).path == "/x.png"


def test_an_overloaded_station_echoes_the_ids_it_refuses(tmp_path):
    from inspector.mqtt import Message

    intake = _intake(tmp_path)
    msg = lambda topic, payload=b"", **user: Message(topic, payload, 1, 0, user=user)  # noqa: E731
    assert intake.ids_of(msg("p/trigger", b'{"inspection_id": "T-1", "serial": "S 1"}')) == ("T-1", None)  # unsafe: not echoed
    assert intake.ids_of(msg("p/image/SN-9", b"\x89PNG", inspection_id="I-2")) == ("I-2", "SN-9")
    assert intake.ids_of(msg("p/image", b"\x89PNG", serial="SN-3")) == (None, "SN-3")
    assert intake.ids_of(msg("p/trigger", b"not json")) == intake.ids_of(msg("p/command", b"{}")) == (None, None)


def test_the_built_in_shift_report_renders_the_stores_records(station, tmp_path):
    """The daemon's own renderer gets the records normalised one by one (a 144,000-part shift's decoded records took 0.9 GB)."""
    from inspector.hooks import ReportHooks
    from inspector.intake import ShiftReportCommand
    from inspector.store import Store

    cfg = station(reports={"timezone": "UTC"})
    store = Store(cfg.store.data_dir)
    for i, verdict in enumerate(["PASS", "FAIL", "PASS"]):
        store.add({"inspection_id": f"h{i}", "timestamp": f"2026-12-03T06:0{i}:00.000Z", "verdict": verdict, "score": float(i),
                   "threshold": 1.5, "station": cfg.station.name})
    store.accept("no-region", {"serial": "NR-1", "timestamp": "2026-12-03T06:30:00.000Z"}, b"\x89PNG")
    store.set_aside("no-region", "does not contain the model's region of interest")
    sent = []
    hooks = ReportHooks(cfg, store, lambda topic, body, **kw: sent.append((topic, json.loads(body))), "rep", "err")
    cmd = ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-12-03T06:00:00Z", "end": "2026-12-03T07:00:00Z"})
    hooks._shift_report(cmd, None)
    topic, body = sent[0]
    assert topic == "rep" and body["records"] == 3 and set(body["files"]) == {"html"}
    html = Path(body["files"]["html"]).read_text(encoding="utf-8")
    assert '<div class="v">1</div>' in html and "2026-12-03 06:01:00 UTC" in html  # one FAIL, listed
    assert "1 input was accepted but could not be inspected" in html and "<td>NR-1</td>" in html  # and the part nobody judged


def test_fail_reports_are_filed_under_the_day_on_the_reports_clock(station, tmp_path):
    """23:30Z on 3 December is the morning of the 4th in Tokyo: the FAIL's report goes in that day's folder, its time in JST,
    under the station's letterhead."""
    from inspector.hooks import ReportHooks
    from inspector.store import Store

    cfg = station(reports={"timezone": "Asia/Tokyo", "on_fail": True, "organisation": "ACME Plant 2", "document": "QF-8"})
    hooks = ReportHooks(cfg, Store(cfg.store.data_dir), lambda *a, **kw: None, "rep", "err")
    out = hooks.on_fail({"inspection_id": "late", "timestamp": "2026-12-03T23:30:00.000Z", "verdict": "FAIL", "score": 2.0, "threshold": 1.0})
    assert out["html"].parent.name == "2026-12-04"
    html = out["html"].read_text(encoding="utf-8")
    assert "2026-12-04 08:30:00 JST" in html and '<div class="org">ACME Plant 2</div>' in html and "QF-8" in html  # and its letterhead


def test_a_second_daemon_on_the_same_store_is_refused_and_the_store_is_free_after_the_first_stops(station, tiny_inspector):
    """It started, shared the journal and re-sent the first station's results under its own prefix."""
    from inspector.daemon import Daemon
    from model.folders import folder_lock

    cfg = station()
    with running(cfg, tiny_inspector):
        other = station(station={"name": "st2"}, mqtt={"prefix": "test/other"})
        with pytest.raises(InspectorError, match=r"store .*data: another inspector serve is using it; stop that one, or give this "
                                                 r"station its own store.data_dir"):
            Daemon(other, inspector=tiny_inspector).start()
        with folder_lock(Path(cfg.store.data_dir)):  # `inspector threshold` of an export kept there waited for ever
            pass
    with running(cfg, tiny_inspector) as d:  # released at shutdown
        assert d.store._held is not None


def test_a_second_station_on_a_watched_folder_is_refused_before_it_makes_a_store(station, tiny_inspector, tmp_path):
    """Both took the files the other had not moved yet (38 results for 20 parts), and both said ok."""
    from inspector.daemon import Daemon

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    source = {"type": "folder", "path": str(incoming), "poll_s": 0.05}
    cfg = station(source=source)
    with running(cfg, tiny_inspector):
        other = station(source=source, station={"name": "st2"}, mqtt={"prefix": "test/other"}, store={"data_dir": str(tmp_path / "other")})
        with pytest.raises(InspectorError, match=r"source.path .*incoming: another inspector serve watches this folder"):
            Daemon(other, inspector=tiny_inspector).start()
        assert not (tmp_path / "other").exists()
    with running(cfg, tiny_inspector):  # free again once the first stopped
        pass


def test_health_names_the_model_and_thresholds_in_use_and_a_change_on_disk_awaiting_a_restart(station, tiny_ckpt, tmp_path, capsys):
    """`inspector threshold` on a served checkpoint took effect at the next start, and nothing said so."""
    import shutil

    from inspector.api import Inspector
    from inspector.cli import main

    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "served.ckpt")
    cfg = station(model={"path": str(ckpt)})
    with running(cfg, Inspector.load(ckpt)) as d:
        model = d.health()["model"]
        assert model["image_threshold"] == d.inspector.image_threshold and model["id"] == d.inspector.engine.meta.model_id
        assert "changed_on_disk" not in model
        assert main(["threshold", str(ckpt), "--set", "123.5"]) == 0
        health = d.health()
        assert health["model"]["image_threshold"] != 123.5  # still the loaded one, until a restart
        assert "restart to use them" in health["model"]["changed_on_disk"] and health["status"] == "degraded"
        assert health["degraded"] == ["the model's files changed since it was loaded"]  # the reason, beside the status
    capsys.readouterr()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_fail_result_links_to_its_report(station, broker, listen, tiny_inspector, defect_png, good_png, lang):
    """The contract's "links to stored images and reports": the record was published before its report was rendered, and
    named none. In another language the report's name says it (`-zh`), and the link with it."""
    cfg = station(reports={"on_fail": True, "lang": lang})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        lst.publish("image/D1", defect_png, user={"inspection_id": "d1"})
        lst.publish("image/G1", good_png, user={"inspection_id": "g1"})
        results = {r["inspection_id"]: r for r in wait_until(lambda: len(lst.json("result")) == 2 and lst.json("result"), 15, "results")}
        link = results["d1"]["reports"]["html"]
        assert link.startswith("reports/") and link.endswith(f"/inspection-d1{'' if lang == 'en' else '-zh'}.html") and "reports" not in results["g1"]
        wait_until(lambda: (Path(cfg.store.data_dir) / link).is_file(), 15, "the report where its link says")
        assert d.store.get("d1")["reports"] == {"html": link}  # stored as published


def test_a_station_without_weasyprint_is_told_at_start_that_its_pdf_reports_will_fail(station, monkeypatch, caplog):
    import sys

    from inspector.hooks import ReportHooks
    from inspector.store import Store

    monkeypatch.setitem(sys.modules, "weasyprint", None)
    for formats, warned in ((["html"], False), (["html", "pdf"], True)):
        caplog.clear()
        cfg = station(reports={"on_fail": True, "formats": formats})
        ReportHooks(cfg, Store(cfg.store.data_dir), lambda *a, **kw: None, "rep", "err")
        assert ("PDF reports need WeasyPrint" in caplog.text and "those reports will fail" in caplog.text) == warned, caplog.text


def test_a_failing_retention_step_waits_for_its_interval(station):
    """A chunked pass retried a failing prune on every step: a traceback three times a second."""
    import queue
    import sqlite3
    from types import SimpleNamespace

    from inspector.health import Metrics
    from inspector.pipeline import Sink
    from inspector.store import Store

    cfg = station(store={"retention": {"max_rows": 1, "every_s": 3600}})
    store, calls = Store(cfg.store.data_dir), []

    def locked(*args, **kwargs):
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    store.prune = locked
    idle = SimpleNamespace(drain_acks=lambda: 0, resend=lambda: 0, mqtt=SimpleNamespace(connected=False))
    sink = Sink(cfg, store, queue.Queue(), idle, Metrics(), None, lambda *a, **k: None, "err")
    sink._next_prune = 0.0
    with pytest.raises(sqlite3.OperationalError):
        sink.step(timeout=0.01)
    sink.step(timeout=0.01)
    sink.step(timeout=0.01)
    assert len(calls) == 1


def test_retention_deletes_old_refused_inputs(station, tmp_path):
    import os
    import queue
    from types import SimpleNamespace

    from inspector.health import Metrics
    from inspector.pipeline import Sink
    from inspector.store import Store

    cfg = station(store={"retention": {"max_age_days": 2}})
    store = Store(cfg.store.data_dir)
    for ident in ("old", "new"):
        store.accept(ident, {"timestamp": "2026-12-01T00:00:00.000Z"}, b"BMx")
        store.set_aside(ident, "test")
    week_ago = time.time() - 7 * 86400
    for name in ("old.bmp", "old.json"):
        os.utime(store.root / "refused/2026-12-01" / name, (week_ago, week_ago))
    hooks = SimpleNamespace(out_dir=tmp_path / "reports")
    sink = Sink(cfg, store, queue.Queue(), SimpleNamespace(), Metrics(), hooks, lambda *a, **k: None, "err")
    assert sink.prune() == 0  # no records
    assert sorted(p.name for p in (store.root / "refused/2026-12-01").iterdir()) == ["new.bmp", "new.json"]


def test_a_burst_of_shift_report_commands_is_answered_not_queued_behind_the_parts(station, tmp_path):
    """400 commands filled a 256-deep queue with a blocking put on the intake's thread: no part was answered for minutes."""
    from inspector.hooks import ReportHooks
    from inspector.intake import ShiftReportCommand
    from inspector.store import Store

    cfg = station()
    sent = []
    hooks = ReportHooks(cfg, Store(cfg.store.data_dir), lambda topic, body, **kw: sent.append((topic, json.loads(body), kw)), "rep", "err",
                        on_shift_report=lambda recs, meta: {})
    cmd = ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-12-03T06:00Z"})
    burst = threading.Thread(target=lambda: [hooks.shift(cmd, Reply(f"c{i}".encode())) for i in range(400)], daemon=True)
    burst.start()  # not started: the first waits, every other one is answered at once
    burst.join(30)
    assert not burst.is_alive()  # before: blocked for good on the 257th, a full queue nobody took from
    refused = [kw["reply"].correlation for topic, body, kw in sent if topic == "err" and "already waiting" in body["error"]]
    assert len(refused) == 399 and refused[0] == b"c1"
    hooks.start()
    wait_until(lambda: any(t == "rep" for t, _, _ in sent), 5, "the waiting one rendered")
    hooks.shift(cmd, b"after")  # and once it ran, the next is taken
    wait_until(lambda: sum(t == "rep" for t, _, _ in sent) == 2, 5, "the next one")
    hooks.stop()


def test_an_idle_http_client_is_let_go(monkeypatch):
    """Half-sent requests held a thread and a descriptor each, for ever: 1,017 of them stopped /health and the store."""
    import socket

    import inspector.health as health

    monkeypatch.setattr(health, "HTTP_TIMEOUT_S", 0.5)
    server = health.HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, lambda: "")
    server.start()
    try:
        idle = socket.create_connection(("127.0.0.1", server.port))
        idle.sendall(b"GET /health HTTP/1.1\r\n")  # and nothing more
        idle.settimeout(5)
        assert idle.recv(100) == b""  # closed by the server after its timeout (recv raises after 5 s otherwise)
        assert http_get(server.port, "/health")[0] == 200
    finally:
        server.stop()
