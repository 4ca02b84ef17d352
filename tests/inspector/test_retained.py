"""Retained triggers and images against a real Mosquitto: refused while the station runs (MQTT 5), and the empty
retained message that clears one taken silently, not refused as a part."""

from __future__ import annotations

import base64
import json

from tests.inspector.conftest import running, wait_until


def online(lst) -> bool:
    return bool(lst.on("status")) and lst.on("status")[-1][0] == b"online"


def test_a_retained_part_sent_while_running_is_refused_and_its_clearing_taken_silently(station, broker, listen, tiny_inspector, good_png):
    """MQTT 5: the broker cleared the retain flag for the running station, which inspected a retained trigger as a part
    (refused only at the next start); the empty retained message that clears it, as the refusal asks, was refused too."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: online(lst), 5, "status online")
        lst.publish("trigger", json.dumps({"serial": "RET", "inspection_id": "ret-1", "base64": base64.b64encode(good_png).decode()}),
                    retain=True)
        lst.publish("image/RET2", good_png, retain=True, user={"inspection_id": "ret-2"})
        wait_until(lambda: len(lst.json("error")) >= 2, 15, "the retained inputs refused")
        lst.publish("trigger", b"", retain=True)  # clearing them, as the refusal says
        lst.publish("image/RET2", b"", retain=True)
        lst.publish("trigger", b"")  # no clearing: an empty trigger, refused
        lst.publish("image/RET2", b"not an image")  # after the clearing on its topic, so its error says the clearing was taken
        wait_until(lambda: len(lst.json("error")) >= 4, 15, "the inputs after the clearing refused")
        errors = lst.json("error")
        assert lst.json("result") == []  # neither retained part inspected
        assert all("a retained message, which the broker hands over again at every start" in e["error"] for e in errors[:2])
        assert [(e["inspection_id"], e["serial"]) for e in errors[:2]] == [("ret-1", "RET"), ("ret-2", "RET2")]  # named, as every refusal
        assert errors[2]["error"] == "trigger: empty payload; send a JSON object"  # on MQTT 5 no clearing, so no hint
        assert errors[3]["serial"] == "RET2" and "empty" not in errors[3]["error"]
        assert len(errors) == 4
        kinds, first = d.store.refused_on_arrival(None, None)
        assert kinds == {"invalid": 4}  # the two clearings are no parts
        assert [e["source"] for e in first] == ["trigger", "image/RET2", "trigger", "image/RET2"]


def test_an_empty_part_on_mqtt_3_is_answered_but_not_counted_as_a_refused_part(station, broker, listen, tiny_inspector):
    """MQTT 3.1.1 shows no retain flag on a live message: an empty one may be a retained message's clearing, so it is
    answered (it may be a part sent empty) but not kept for the shift report as a part refused on arrival."""
    cfg = station(mqtt={"protocol": "3.1.1"})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: online(lst), 5, "status online")
        lst.publish("trigger", b"", retain=True)
        lst.publish("image/C1", b"", retain=True)
        lst.publish("trigger", json.dumps({"paht": "/x.png"}))  # a part all the same
        wait_until(lambda: len(lst.json("error")) >= 3, 15, "the three answered")
        errors = lst.json("error")
        assert errors[0]["error"].startswith("trigger: empty payload; send a JSON object (or, if it cleared a retained message, ignore this")
        assert errors[1]["serial"] == "C1" and "MQTT 3.1.1 cannot tell the two apart" in errors[1]["error"]
        assert errors[2]["error"] == "trigger: unknown field 'paht'"
        kinds, first = d.store.refused_on_arrival(None, None)
        assert kinds == {"invalid": 1} and first[0]["reason"] == "trigger: unknown field 'paht'"


def test_a_retained_command_is_refused_not_run_again_at_every_start(station, broker, listen, tiny_inspector):
    """A retained reload or review ran again at every start of the station (MQTT 5 shows the flag on live messages)."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: online(lst), 5, "status online")
        lst.publish("command", json.dumps({"command": "reload"}), retain=True)
        wait_until(lambda: lst.json("error"), 15, "the retained command refused")
        lst.publish("command", b"", retain=True)  # cleared silently
        lst.publish("command", json.dumps({"command": "nope"}))
        wait_until(lambda: len(lst.json("error")) >= 2, 15, "the next command answered")
        errors = lst.json("error")
        assert errors[0]["error"].startswith("command: a retained message, which the broker hands over again at every start; publish")
        assert errors[0]["command"] == "reload" and "unknown command 'nope'" in errors[1]["error"] and len(errors) == 2
        assert lst.on("report") == [] and d.store.refused_on_arrival(None, None) == ({}, [])  # not run; no part
