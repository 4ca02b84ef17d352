"""MQTT 5 request/response: an input that names a Response Topic under `mqtt.response_topics` gets its answer there too
(with its correlation data), besides the contract topic every answer goes to; any other Response Topic is ignored
(against a real Mosquitto, with the tiny model)."""

from __future__ import annotations

import base64
import json
import logging
import queue

from inspector.config import StationConfig
from inspector.health import Metrics
from inspector.intake import Intake
from inspector.mqtt import Reply, Topics
from inspector.store import Store
from tests.inspector.conftest import running, wait_until
from tests.inspector.test_outbox_edges import outbox_on, record


def test_results_errors_and_command_replies_also_go_to_the_response_topic(station, broker, listen, tiny_inspector, good_png):
    cfg = station(mqtt={"response_topics": ["hmi/#"]})
    lst = listen(broker.port, cfg.mqtt.prefix, extra_topics=("hmi/#",))
    with running(cfg, tiny_inspector):
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        b64 = base64.b64encode(good_png).decode()
        lst.publish("trigger", json.dumps({"inspection_id": "rt-1", "base64": b64}), correlation=b"t1", response_topic="hmi/answers")
        lst.publish("image/SN-7", good_png, response_topic="hmi/no-correlation")
        lst.publish("trigger", "{not json", correlation=b"bad", response_topic="hmi/answers")
        lst.publish("command", json.dumps({"command": "shift_report", "start": "2000-01-01T00:00:00Z", "formats": ["html"]}),
                    correlation=b"rep", response_topic="hmi/answers")
        wait_until(lambda: len(lst.on("hmi/answers")) == 3 and lst.on("hmi/no-correlation"), 20, "the answers on the response topics")
        answers = {c: json.loads(p) for p, c in lst.on("hmi/answers")}
        assert answers[b"t1"]["inspection_id"] == "rt-1" and answers[b"t1"]["verdict"] == "PASS"
        assert "trigger" in answers[b"bad"]["error"] and answers[b"rep"]["command"] == "shift_report"
        [(payload, corr)] = lst.on("hmi/no-correlation")
        assert corr is None and json.loads(payload)["serial"] == "SN-7"
        # the contract topics still carry every answer, with the same correlation data
        assert sorted(c or b"" for _, c in lst.on("result")) == [b"", b"t1"] and lst.on("error")[0][1] == b"bad"
        assert lst.on("report")[0][1] == b"rep"
        # a repeat of a stored id is answered from the store on its own response topic
        lst.publish("trigger", json.dumps({"inspection_id": "rt-1", "base64": b64}), correlation=b"t2", response_topic="hmi/again")
        [(again, corr)] = wait_until(lambda: lst.on("hmi/again"), 10, "the repeat's answer")
        assert corr == b"t2" and json.loads(again)["inspection_id"] == "rt-1"


def test_a_response_topic_the_answer_may_not_go_to_is_ignored(station, broker, listen, tiny_inspector, good_png, caplog):
    """A filter (publishing to it raised in paho, on the thread that answers), the station's own topics (an input topic
    took the answer as an input; an error landed on the result topic, a result on the status topic PLCs gate on), a
    system topic, and any topic outside mqtt.response_topics (a broker whose ACL refuses it may drop the station)."""
    cfg = station(mqtt={"response_topics": ["hmi/#", "$SYS/#"]})
    p = cfg.mqtt.prefix
    lst = listen(broker.port, p, extra_topics=("other/#",))
    b64 = base64.b64encode(good_png).decode()
    topics = ("hmi/#", "hmi/+/x", f"{p}/trigger", f"{p}/image/SN", f"{p}/command", f"{p}/status", f"{p}/error", "$SYS/x", "other/x")
    with caplog.at_level(logging.WARNING, logger="inspector.mqtt"), running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        for i, topic in enumerate(topics):
            lst.publish("trigger", json.dumps({"inspection_id": f"ig-{i}", "base64": b64}), correlation=f"c{i}".encode(), response_topic=topic)
        wait_until(lambda: len(lst.on("result")) == len(topics), 20, "every result")
        wait_until(lambda: d.store.counts()["unpublished"] == 0, 10, "acknowledged")
        assert sorted(c for _, c in lst.on("result")) == [f"c{i}".encode() for i in range(len(topics))]
        assert not lst.on("error") and not lst.on("image/SN") and not lst.on("command") and not lst.on("other/x")
        assert [s for s, _ in lst.on("status")] == [b"online"]
        assert [json.loads(m)["inspection_id"] for m, _ in lst.on("trigger")] == [f"ig-{i}" for i in range(len(topics))]  # only those sent
        assert d.health()["status"] == "ok" and all(w.restarts == 0 for w in d.workers.values())
    said = [r.getMessage() for r in caplog.records if "asks for its answer on" in r.getMessage()]
    assert [w.split("which ")[1].split(";")[0] for w in said] == [
        "is a filter (it has + or #)"] * 2 + ["is under the station's prefix, where its own topics are"] * 5 + [
        "is a system topic", "matches no filter in mqtt.response_topics"]


def test_a_result_resent_after_a_restart_still_goes_to_its_response_topic(tmp_path, broker, listen):
    lst = listen(broker.port, "t/s", extra_topics=("hmi/#",))
    with outbox_on(broker.port, tmp_path / "data", "outbox-rt") as (_, store, box):
        store.add(record("r1"), reply=Reply(b"k1", "hmi/r"))  # stored, not handed over: the broker was down
        store.add(record("r2"), reply=Reply(None, "hmi/r"))
    with outbox_on(broker.port, tmp_path / "data", "outbox-rt-again") as (_, store, box):
        assert box.resend() == 2
        wait_until(lambda: len(lst.on("hmi/r")) == 2 and len(lst.on("result")) == 2, 10, "both results, twice each")
    assert sorted((json.loads(p)["inspection_id"], c) for p, c in lst.on("hmi/r")) == [("r1", b"k1"), ("r2", None)]


def test_a_journaled_job_keeps_its_response_topic_through_a_restart(tmp_path):
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    store = Store(tmp_path / "data")
    jobs: queue.Queue = queue.Queue(4)
    intake = Intake(cfg, store, jobs, Metrics(), Topics("p"), publish=lambda *a, **k: None, republish=lambda r, c: None)
    from tests.inspector.conftest import png
    from tests.synthetic import good_image

    for ident, reply in (("a", Reply(b"\x00x", "hmi/a")), ("b", Reply(None, "hmi/b")), ("c", None)):
        message = None
        if reply is not None:
            from inspector.mqtt import Message

            message = Message("p/trigger", b"{}", 0, 1, correlation=reply.correlation, response_topic=reply.topic)
        intake.accept(good_image(1), png(good_image(1)), ident, None, "trigger", 0.0, message=message)
    assert [jobs.get_nowait().reply for _ in range(3)] == [Reply(b"\x00x", "hmi/a"), Reply(None, "hmi/b"), None]
    store.close()
    again: queue.Queue = queue.Queue(4)
    Intake(cfg, Store(tmp_path / "data"), again, Metrics(), Topics("p"), publish=lambda *a, **k: None,
           republish=lambda r, c: None).recover()
    assert {j.inspection_id: j.reply for j in (again.get_nowait() for _ in range(3))} == {
        "a": Reply(b"\x00x", "hmi/a"), "b": Reply(None, "hmi/b"), "c": None}


def test_a_repeat_of_a_job_under_way_is_journaled_and_answered_after_a_crash(tmp_path):
    """Held in memory only, a repeat that came while its part was inspected went unanswered when the station stopped
    first (it had been acknowledged); journaled beside the job, it is remembered again when the job is recovered, and
    answered with it, also when the job is given up."""
    from inspector.intake import MAX_ATTEMPTS
    from inspector.mqtt import Message
    from tests.inspector.conftest import png
    from tests.synthetic import good_image

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})

    def intake(sent: list) -> Intake:
        return Intake(cfg, Store(tmp_path / "data"), queue.Queue(4), Metrics(), Topics("p"), republish=lambda r, c: None,
                      publish=lambda topic, body, reply=None: sent.append((json.loads(body)["inspection_id"], reply)))

    first = intake([])
    for ident in ("j1", "j2"):
        first.accept(good_image(1), png(good_image(1)), ident, None, "trigger", 0.0,
                     message=Message("p/trigger", b"{}", 0, 1, correlation=f"{ident}-a".encode()))
        assert first._answered(ident, Message("p/trigger", b"{}", 0, 2, correlation=f"{ident}-b".encode(), response_topic="hmi/b"))
    assert first._answered("j1", Message("p/trigger", b"{}", 0, 3))  # nothing to answer it by: acknowledged only
    first.store.close()
    for _ in range(MAX_ATTEMPTS):  # j2 stopped the station at every start
        Store(tmp_path / "data").count_attempts(["j2"])
    sent: list = []
    after = intake(sent)
    assert after.recover() == 1
    job = after.jobs.get_nowait()
    assert (job.inspection_id, job.reply) == ("j1", Reply(b"j1-a"))
    assert after.repeats.take("j1") == [Reply(b"j1-b", "hmi/b")]
    assert sent == [("j2", Reply(b"j2-a")), ("j2", Reply(b"j2-b", "hmi/b"))]  # given up: the error goes to both
