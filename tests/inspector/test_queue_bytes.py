"""The station's jobs queue is bounded in the bytes of the decoded frames it holds, not only in their count: a job holds
its decoded image (the encoded one is in the journal) from the intake until the sink is done with it, and 32 queued
line-scan frames of 16k x 3k held 4.6 GB, more with a batch in the engine and results on their way to the store."""

from __future__ import annotations

import base64
import json
import threading

import numpy as np
import pytest

from inspector.config import ModelSection, StationConfig
from inspector.health import Metrics
from inspector.intake import Intake, Job, JobQueue, full_because
from inspector.mqtt import Topics
from inspector.sources import Frame
from inspector.store import Store
from tests.inspector.conftest import png, running, wait_until
from tests.synthetic import good_image


def _job(ident: str, nbytes: int) -> Job:
    return Job(ident, np.zeros(nbytes, np.uint8), None, "test", 0.0)


def _intake(tmp_path, jobs: JobQueue) -> tuple[Intake, Store, Metrics]:
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    store, metrics = Store(tmp_path / "data"), Metrics()
    return Intake(cfg, store, jobs, metrics, Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None), store, metrics


def test_the_queue_is_full_at_its_bytes_and_each_job_releases_its_own_once():
    jobs = JobQueue(10, max_bytes=1000)
    assert ModelSection(path="m").max_queue_bytes == 1 << 30 and not jobs.full()
    jobs.put_nowait(_job("a", 600))
    assert not jobs.full()  # one more may go in: its size is known only once decoded (model.max_image_pixels bounds it)
    jobs.put_nowait(_job("b", 600))
    assert jobs.full() and jobs.held_bytes == 1200 and jobs.qsize() == 2  # before: room for 8 more
    assert full_because(jobs) == ("1,200 bytes of decoded images held, model.max_queue_bytes 1,000); slow the trigger rate, "
                                   "or raise model.max_queue_bytes where the station has the memory")
    a = jobs.get_nowait()
    assert jobs.full() and jobs.held_bytes == 1200  # taken by a batch, its frame is still held until the sink is done with it
    jobs.release(a)
    jobs.release(a)  # once only
    assert not jobs.full() and jobs.held_bytes == 600 and a.held == 0
    counted = JobQueue(1, max_bytes=1 << 30)
    counted.put_nowait(_job("c", 10))
    assert counted.full() and full_because(counted).startswith("1 waiting); slow the trigger rate, or raise model.queue_size")


def test_a_watched_file_waits_for_the_bytes_and_a_live_frame_is_dropped(tmp_path):
    jobs = JobQueue(10, max_bytes=20_000)
    intake, store, metrics = _intake(tmp_path, jobs)
    intake.accept(good_image(1), None, "first", None, "camera", 0.0)  # 96 x 96 x 3: 27,648 bytes, past the budget
    assert jobs.qsize() == 1 and jobs.held_bytes == 96 * 96 * 3
    intake._frame(Frame("camera:0", rgb=good_image(2)))  # a live frame: dropped, as at a full count
    assert jobs.qsize() == 1 and metrics.value("inspector_frames_dropped_total", {"reason": "queue_full"}) == 1
    waits, answers = threading.Event(), []
    intake.beat = waits.set  # beaten only while the file waits for room
    file = Frame("folder:PART-1.png", encoded=png(good_image(3)), serial="PART-1", wait=True, done=answers.append)
    worker = threading.Thread(target=intake._frame, args=(file,), daemon=True)
    worker.start()
    assert waits.wait(30) and answers == []  # left to be read later, not refused
    jobs.release(jobs.get_nowait())  # the first one's result stored
    worker.join(30)
    assert not worker.is_alive() and answers == [True]
    queued = jobs.get_nowait()
    assert queued.serial == "PART-1" and jobs.held_bytes == queued.held == 96 * 96 * 3
    store.close()


def test_recovery_waits_for_the_bytes_and_a_stop_releases_what_no_batch_started(tmp_path):
    jobs = JobQueue(10, max_bytes=20_000)
    intake, store, _ = _intake(tmp_path, jobs)
    for i in range(2):
        store.accept(f"job-{i}", {"serial": str(i)}, png(good_image(i)))
    beats = []
    intake.beat = lambda: beats.append(1)
    recovered: list[int] = []
    worker = threading.Thread(target=lambda: recovered.append(intake.recover()), daemon=True)
    worker.start()
    wait_until(lambda: len(beats) > 5, 30, "the second journaled job waiting for room")
    assert jobs.qsize() == 1 and not recovered  # accepted jobs are never refused: it waits (before: queued at once)
    jobs.release(jobs.get_nowait())
    worker.join(30)
    assert recovered == [2] and jobs.qsize() == 1 and jobs.held_bytes == 96 * 96 * 3
    assert intake.release_unstarted() == 1 and jobs.held_bytes == 0 and jobs.unfinished_tasks == 1  # the one taken above
    store.close()


def _b64(seed: int) -> str:
    return base64.b64encode(png(good_image(seed, 600))).decode()  # 600 x 600 x 3: 1,080,000 bytes decoded


@pytest.mark.parametrize("ending", ["result", "failure"])
def test_the_station_refuses_an_image_past_the_bytes_and_releases_them_as_jobs_end(station, broker, listen, tiny_inspector,  # noqa: F811
                                                                                  monkeypatch, ending):
    """End to end, on a real broker: one big frame in the engine holds the budget, so the triggers that come meanwhile are
    answered as a full queue is (before: up to queue_size of them queued); the bytes go when its job ends, by a result or
    a failed inspection, and the next image is accepted."""
    cfg = station(model={"max_queue_bytes": 1_000_000, "queue_wait_s": 0, "batch_size": 1})
    lst = listen(broker.port, cfg.mqtt.prefix)
    engine = tiny_inspector.engine
    real, entered, gate = engine.infer, threading.Event(), threading.Event()

    def held(*a, **k):
        entered.set()
        assert gate.wait(60)
        if ending == "failure":
            raise RuntimeError("the engine failed")
        return real(*a, **k)

    monkeypatch.setattr(engine, "infer", held)
    with running(cfg, tiny_inspector) as d:
        assert isinstance(d.jobs, JobQueue) and d.jobs.max_bytes == 1_000_000
        lst.publish("trigger", json.dumps({"inspection_id": "big-0", "base64": _b64(0)}))
        assert entered.wait(60)
        assert d.health()["queue_bytes"] == 1_080_000 and d.jobs.full()
        assert d.metrics.value("inspector_queue_bytes") == 1_080_000  # set by health()
        for i in range(1, 4):
            lst.publish("trigger", json.dumps({"inspection_id": f"big-{i}", "base64": _b64(i)}))
        wait_until(lambda: len(lst.json("error")) >= 3, 30, "the triggers past the bytes answered")
        errors = lst.json("error")
        assert {e["inspection_id"] for e in errors} == {"big-1", "big-2", "big-3"}
        assert all(e["error"].startswith("trigger: the inspection queue is full (1,080,000 bytes of decoded images held, "
                                         "model.max_queue_bytes 1,000,000)") for e in errors)
        assert d.metrics.value("inspector_rejected_total", {"reason": "queue_full"}) == 3
        gate.set()
        if ending == "result":
            wait_until(lambda: "big-0" in lst.result_ids(), 60, "the first one's result")
        else:
            wait_until(lambda: any(e["inspection_id"] == "big-0" for e in lst.json("error")), 60, "the first one's failure")
        wait_until(lambda: d.jobs.held_bytes == 0, 30, "its bytes released")
        monkeypatch.setattr(engine, "infer", real)
        lst.publish("trigger", json.dumps({"inspection_id": "big-4", "base64": _b64(4)}))
        wait_until(lambda: "big-4" in lst.result_ids(), 60, "the next one accepted and inspected")
        wait_until(lambda: d.jobs.held_bytes == 0, 30, "its bytes released too")


def test_a_job_dropped_unreleased_gives_its_bytes_back():
    """A counter of bytes kept those of a job a dying worker dropped: the station refused every part until a restart."""
    import gc

    jobs = JobQueue(10, max_bytes=1000)
    jobs.put_nowait(_job("a", 1200))
    taken = jobs.get_nowait()
    assert jobs.full() and jobs.held_bytes == 1200
    del taken  # never released: lost with its batch
    gc.collect()
    assert not jobs.full() and jobs.held_bytes == 0
