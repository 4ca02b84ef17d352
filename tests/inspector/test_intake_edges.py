"""The intake's parsing of triggers and commands at their edges (inspector/intake.py): which payloads are
refused, with which one-line reply (and, for a command, which name it carries), and how command times become the
store's UTC form."""

from __future__ import annotations

import json
import time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from inspector.intake import ReviewCommand, ShiftReportCommand, TriggerCommand, _echoed, pydantic_line
from reports.zones import LocalTimeError
from tests.inspector.conftest import running, wait_until


def refusal(model, data: dict, what: str, **kw) -> str:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data, **kw)
    return pydantic_line(exc.value, what)


@pytest.mark.parametrize("data", [{}, {"capture": True}, {"capture": False, "path": "/x.png"}, {"url": "http://h/x.png"},
                                  {"inspection_id": "a" * 64, "serial": "S-1:2.3", "base64": "AA=="}])
def test_triggers_that_name_at_most_one_image_are_taken(data):
    assert TriggerCommand.model_validate(data).model_dump(exclude_unset=True) == data


@pytest.mark.parametrize("data, line", [
    ({"captured_at": "2026-12-05T06:00Z"}, "trigger: captured_at dates an image the trigger gives (path, url or base64); a capture is timed by the station"),
    ({"base64": "AA==", "captured_at": "yesterday"}, "trigger: captured_at: 'yesterday' is not a time; use ISO 8601, e.g. 2026-11-26T06:00Z"),
    ({"path": "/x.png", "url": "http://h/x.png"}, "trigger: give one of path, url or base64, not path and url"),
    ({"path": "/x.png", "capture": True}, "trigger: capture: true and path contradict each other; give one"),
    ({"capture": False}, "trigger: capture: false and no image (path, url or base64): nothing to inspect; give an image or drop capture"),
    ({"inspection_id": "../etc"}, "trigger: inspection_id: '../etc' is not allowed; use 1-64 ASCII letters (A-Z, a-z), digits and . _ - : (no slashes or spaces)"),
    ({"serial": "a b"}, "trigger: serial: 'a b' is not allowed; use 1-64 ASCII letters (A-Z, a-z), digits and . _ - : (no slashes or spaces)"),
    ({"paht": "/x.png"}, "trigger: unknown field 'paht'"),
    ({"capture": "true"}, "trigger: capture: Input should be a valid boolean"),  # strict: a string is no boolean
])
def test_triggers_refused_with_one_line_naming_the_field(data, line):
    assert refusal(TriggerCommand, data, "trigger") == line


def test_only_safe_ids_are_echoed():
    assert _echoed("S-1") == "S-1"
    assert _echoed("a/b") is None and _echoed(7) is None and _echoed(None) is None


@pytest.mark.parametrize("data", [{"inspection_id": "i1"}, {"inspection_id": "i" * 128}, {"serial": "s"}, {"serial": "s" * 128}])
def test_a_review_names_one_part_and_who_reviewed_it(data):
    cmd = ReviewCommand.model_validate({"command": "review", "truth": "good", "by": "QA Anna", **data})
    assert (cmd.inspection_id, cmd.serial) == (data.get("inspection_id"), data.get("serial"))


@pytest.mark.parametrize("data, line", [
    ({"inspection_id": "i1", "serial": "s1"}, "command: give the part's inspection_id or its serial (one of them)"),
    ({}, "command: give the part's inspection_id or its serial (one of them)"),
    ({"inspection_id": "i1", "by": " \t"}, "command: by: is empty; name who reviewed the part"),
    ({"inspection_id": "i1", "by": "\x00\u200b"}, "command: by: is empty; name who reviewed the part"),  # nothing printable
    ({"inspection_id": ""}, "command: inspection_id: String should have at least 1 character"),
    ({"serial": "s" * 129}, "command: serial: String should have at most 128 characters"),
    ({"serial": ""}, "command: serial: String should have at least 1 character"),
    ({"inspection_id": "i" * 129}, "command: inspection_id: String should have at most 128 characters"),
])
def test_reviews_refused(data, line):
    assert refusal(ReviewCommand, {"command": "review", "truth": "defect", "by": "QA", **data}, "command") == line


def test_a_shift_report_time_becomes_the_stores_utc_form():
    berlin = {"zone": ZoneInfo("Europe/Berlin")}
    cmd = ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-11-26T04:00+01:00", "end": "2026-11-26T06:00"},
                                            context=berlin)
    assert (cmd.start, cmd.end) == ("2026-11-26T03:00:00.000Z", "2026-11-26T05:00:00.000Z")  # CET is UTC+1 in November
    assert ShiftReportCommand.model_validate({"command": "shift_report"}).start is None


@pytest.mark.parametrize("data, line", [
    ({"command": "shift_reprot"}, "command: unknown command 'shift_reprot'; known: shift_report, reload, review"),
    ({"command": 5}, "command: command: Input should be a valid string"),  # not the value check: the field is named
    ({"command": "shift_report", "start": "tomorrow"}, "command: start: 'tomorrow' is not a time; use ISO 8601, e.g. 2026-11-26T06:00Z"),
    ({"command": "shift_report", "start": "2026-11-26T06:00Z", "end": "2026-11-26T06:00Z"},
     "command: start 2026-11-26T06:00:00.000Z is not before end 2026-11-26T06:00:00.000Z"),
])
def test_shift_reports_refused(data, line):
    assert refusal(ShiftReportCommand, data, "command") == line


def test_a_wall_clock_time_the_clocks_skip_is_refused_not_dropped():
    # 02:30 on 2026-03-29 does not exist in Berlin: refused, never read as "no start"
    with pytest.raises(ValidationError) as exc:
        ShiftReportCommand.model_validate({"command": "shift_report", "start": "2026-03-29T02:30"}, context={"zone": ZoneInfo("Europe/Berlin")})
    assert "does not exist in Europe/Berlin" in pydantic_line(exc.value, "command")
    assert isinstance(exc.value.errors()[0]["ctx"]["error"], LocalTimeError)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_error_reply_to_a_command_names_it(station, broker, listen, tiny_inspector, protocol):
    """The README promises "command" in the error reply to a command; refusals at intake had none (only a review
    of an unknown id carried it)."""
    cfg = station(mqtt={"protocol": protocol})
    lst = listen(broker.port, cfg.mqtt.prefix)
    sent = [  # payload, the name its reply carries
        ({"command": "review", "inspection_id": "abc123", "truth": "good"}, "review"),  # no `by`
        ({"command": "review", "inspection_id": "abc123", "truth": "good", "by": "qa", "colour": "red"}, "review"),
        ({"command": "reload", "now": True}, "reload"),
        ({"command": "shift_report", "start": "tomorrow"}, "shift_report"),
        ({"command": "shift_reprot"}, None),
        ({"command": 5}, None),
        ({"command": ["review"]}, None),
        (["review"], None),
        ('{"command": "review"', None),  # bad JSON
        ("", None),
        ({"command": "review", "inspection_id": "nope", "truth": "good", "by": "qa"}, "review"),  # refused by the store, as before
    ]
    with running(cfg, tiny_inspector):
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        for payload, _ in sent:
            lst.publish("command", payload if isinstance(payload, str) else json.dumps(payload))
        errors = wait_until(lambda: len(lst.json("error")) >= len(sent) and lst.json("error"), 15, "every command answered")
    assert [e.get("command", "missing") for e in errors] == [name for _, name in sent], errors
    assert errors[0]["error"] == "command: by: Field required" and errors[0]["inspection_id"] == "abc123"  # the other keys as they were
    assert all(e["input"] == "command" and {"error", "inspection_id", "serial", "timestamp"} <= set(e) for e in errors)


def test_a_serial_with_a_slash_in_the_image_topic_is_refused_not_lost(station, broker, listen, tiny_inspector, good_png):
    """The station listened to image/+ only: image/LOT7/SN9 matched nothing and went unanswered."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        lst.publish("image/LOT7/SN9", good_png, correlation=b"slash")
        lst.publish("image", good_png, correlation=b"plain")  # the bare topic still taken (once: image/# covers it)
        wait_until(lambda: lst.on("error") and lst.on("result"), 15, "both answered")
        time.sleep(0.5)  # a second delivery of the bare topic would have arrived by now
    (body, corr), = lst.on("error")
    assert corr == b"slash" and "serial 'LOT7/SN9' is not allowed" in json.loads(body)["error"], body
    assert [c for _, c in lst.on("result")] == [b"plain"]


def test_a_part_given_its_capture_time_keeps_it(station, broker, listen, tiny_inspector, good_png):
    """Parts that waited at the broker through an outage took the time the station read them, perhaps in the next shift."""
    import base64

    from inspector.result import utc_now

    cfg = station(reports={"timezone": "Europe/Berlin"})
    lst = listen(broker.port, cfg.mqtt.prefix)
    b64 = base64.b64encode(good_png).decode()
    with running(cfg, tiny_inspector):
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        lst.publish("trigger", json.dumps({"serial": "T1", "base64": b64, "captured_at": "2026-12-05T06:00:00.250+01:00"}))
        lst.publish("trigger", json.dumps({"serial": "T2", "base64": b64, "captured_at": "2026-12-05T06:00"}))  # the station's clock
        lst.publish("image/I1", good_png, user={"captured_at": "2026-12-05T04:59:59Z"})
        lst.publish("image/I2", good_png, user={"captured_at": "soon"})
        lst.publish("image/I4", good_png, user={"captured_at": "2000-01-01T08:00Z"})  # a PLC whose clock was reset
        lst.publish("trigger", json.dumps({"serial": "T5", "base64": b64, "captured_at": "2999-01-01T08:00Z"}))
        before = utc_now()
        lst.publish("image/I3", good_png)
        wait_until(lambda: len(lst.json("result")) >= 4 and len(lst.json("error")) >= 3, 15, "four results and three errors")
    times = {r["serial"]: r["timestamp"] for r in lst.json("result")}
    assert (times["T1"], times["T2"], times["I1"]) == ("2026-12-05T05:00:00.250Z", "2026-12-05T05:00:00.000Z", "2026-12-05T04:59:59.000Z")
    assert times["I3"] >= before  # no time given: when it reached the station
    errors = {e["serial"]: e["error"] for e in lst.json("error")}
    assert errors["I2"] == "image/I2: captured_at 'soon' is not a time; use ISO 8601, e.g. 2026-11-26T06:00Z"
    # filed in no shift it belongs to: deleted at the next retention pass, or in a later shift
    assert errors["I4"].startswith("image/I4: captured_at 2000-01-01T08:00:00.000Z is older than store.retention.max_age_days (90)")
    assert errors["T5"].startswith("trigger: captured_at 2999-01-01T08:00:00.000Z is ahead of the station's clock (")
    assert sorted(times) == ["I1", "I3", "T1", "T2"]
