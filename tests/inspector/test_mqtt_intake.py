"""The MQTT side: malformed NCMDs, payloads as integrators' tools write them, and results and replies
at the broker's edges."""

from __future__ import annotations

import pytest

from inspector.config import MqttSection
from inspector.sparkplug import BOOLEAN, _field, _varint, decode_payload, encode_payload
from tests.inspector.conftest import born_node, wait_until

# NCMD payloads a SCADA host, a test tool or a typo may send: a metric that is a number, a double cut short, a name
# that is a number. Each raised something other than ValueError in decode_payload.
MALFORMED_NCMD = [_field(2, 0, _varint(5)), _field(2, 2, _varint(3) + _field(13, 1, b"\x00")),
                  _field(2, 2, _varint(2) + _field(1, 0, _varint(3))), _field(1, 1, b"\x01\x02")]


@pytest.mark.parametrize("payload", MALFORMED_NCMD)
def test_a_malformed_sparkplug_payload_is_a_value_error(payload):
    with pytest.raises(ValueError, match="not a Sparkplug B payload|truncated|wire type"):
        decode_payload(payload)


def test_a_malformed_ncmd_leaves_rebirth_working(broker, listen):
    """The NCMD thread died on the first malformed NCMD (TypeError, struct.error, AttributeError escaped its
    `except ValueError`): every later Rebirth request went unanswered, and SCADA hosts showed the node stale."""
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    with born_node(broker.port, lst, "spb-a50") as node:
        for bad in MALFORMED_NCMD:
            lst.client.publish("spBv1.0/G/NCMD/N", bad, qos=1)
        lst.client.publish("spBv1.0/G/NCMD/N", encode_payload([("Node Control/Rebirth", BOOLEAN, True)], seq=0), qos=1)
        wait_until(lambda: len(lst.on("spBv1.0/G/DBIRTH/N/D")) == 2, 10, "a rebirth after malformed NCMDs")
        assert node._thread.is_alive()


# -- inputs the broker sends again after a reconnect ------------------------------------------------------------

def _client(port: int, client_id: str = "a50-station", protocol: str = "5"):
    import threading

    from inspector.mqtt import MqttClient

    c = MqttClient(MqttSection(port=port, prefix="p", protocol=protocol), client_id, subscriptions=["p/trigger"], manual_ack=True)
    subscribed = threading.Event()
    c._client.on_subscribe = lambda *a: (c._subscribed(*a), subscribed.set())
    c.subscribed = subscribed
    return c


def _publisher(port: int):
    import paho.mqtt.client as paho

    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="a50-pub", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    return pub


def _drain(inbox) -> list:
    out = []
    while not inbox.empty():
        out.append(inbox.get_nowait())
    return out


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_inputs_held_through_a_broker_restart_come_once(make_broker, tmp_path, protocol, caplog):
    """A broker restart (or a network drop) while inputs waited unacknowledged in the inbox brought each of them
    again (DUP, the same packet id): the station inspected both copies, and a part sent without an inspection_id got
    two results under two generated ids."""
    import logging
    import signal

    caplog.set_level(logging.INFO, "inspector.mqtt")
    store = tmp_path / "persist"
    store.mkdir()
    broker = make_broker(extra=f"persistence true\npersistence_location {store}/\n")
    c = _client(broker.port, protocol=protocol)
    c.start()
    pub = _publisher(broker.port)
    try:
        wait_until(c.subscribed.is_set, 10, "the subscription")
        for i in range(3):
            pub.publish("p/trigger", f'{{"serial": "S{i}"}}', qos=1).wait_for_publish(5)
        wait_until(lambda: c.inbox.qsize() == 3, 10, "three inputs")
        first = c.inbox.get()
        c.ack(first)  # one answered before the restart
        broker.kill(signal.SIGTERM)  # saves its sessions: the two unacknowledged inputs are sent again
        c.subscribed.clear()
        broker.start()
        wait_until(lambda: c.connected and c.subscribed.is_set(), 20, "the reconnect")
        pub.publish("p/trigger", '{"serial": "S3"}', qos=1).wait_for_publish(10)  # after the copies, in order
        wait_until(lambda: any(m.payload == b'{"serial": "S3"}' for m in list(c.inbox.queue)), 10, "the next input")
        assert [m.payload for m in _drain(c.inbox)] == [b'{"serial": "S1"}', b'{"serial": "S2"}', b'{"serial": "S3"}']
        assert caplog.text.count("this copy is dropped") == 2  # the broker did send them again
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.stop(timeout=0)


def test_a_copy_of_an_input_already_answered_is_acknowledged_again_not_handed_on(tmp_path):
    """The acknowledgement of an input can be lost with the connection; the broker then sends the input again,
    marked DUP: it was answered, so the copy is acknowledged and dropped."""
    import paho.mqtt.client as paho

    c = _client(1)
    acks = []
    c._client.ack = lambda mid, qos: acks.append(mid)

    def arrive(payload: bytes, mid: int, dup: bool) -> None:
        msg = paho.MQTTMessage(mid, b"p/trigger")
        msg.payload, msg.qos, msg.dup = payload, 1, dup
        c._message(c._client, None, msg)

    arrive(b"{}", 7, False)
    c.ack(c.inbox.get_nowait())
    arrive(b"{}", 7, True)  # the broker did not hear the acknowledgement
    assert c.inbox.empty() and acks == [7, 7]
    arrive(b'{"serial": "new"}', 7, False)  # the packet id used again for a new input: handed on
    arrive(b'{"serial": "other"}', 8, True)  # a DUP the station never saw (it restarted): handed on
    assert [m.payload for m in _drain(c.inbox)] == [b'{"serial": "new"}', b'{"serial": "other"}']


def test_an_input_of_a_session_the_broker_forgot_is_not_acknowledged_in_the_new_one(make_broker):
    """A broker restarted without persistence starts the station's session over, packet ids from 1: acknowledging
    an input that came before the restart took a new input with its id from the broker before it was journaled,
    and a stop then lost that one."""
    broker = make_broker()  # no persistence
    c = _client(broker.port)
    c.start()
    pub = _publisher(broker.port)
    try:
        wait_until(c.subscribed.is_set, 10, "the subscription")
        pub.publish("p/trigger", b'{"serial": "old"}', qos=1).wait_for_publish(5)
        old = wait_until(lambda: _drain(c.inbox), 10, "the first input")[0]
        broker.kill()
        c.subscribed.clear()
        broker.start()
        wait_until(lambda: c.connected and c.subscribed.is_set(), 20, "the reconnect")
        pub.publish("p/trigger", b'{"serial": "new"}', qos=1).wait_for_publish(10)
        new = wait_until(lambda: _drain(c.inbox), 10, "the next input")[0]
        assert new.mid == old.mid  # the new session numbers its packets from 1 again
        c.ack(old)  # the old one handled after the restart
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.stop(timeout=1)  # stopped before the new input was journaled: the broker must keep it
    again = _client(broker.port)
    again.start()
    try:
        wait_until(lambda: any(m.payload == b'{"serial": "new"}' for m in list(again.inbox.queue)), 10,
                   "the unacknowledged input, sent again")
    finally:
        again.stop(timeout=0)


# -- payloads as integrators' tools write them ---------------------------------------------------------------------

def _intake(tmp_path, **mqtt):
    import json
    import queue

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Topics
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p", **mqtt}, "store": {"data_dir": str(tmp_path / "data")}})
    sent: list[tuple[str, dict]] = []
    intake = Intake(cfg, Store(tmp_path / "data"), queue.Queue(8), Metrics(), Topics("p"),
                    publish=lambda topic, body, reply=None: sent.append((topic, json.loads(body))), republish=lambda r, c: None)
    intake.sent = sent
    return intake


def _feed(intake, topic: str, payload: bytes, **kw) -> str | None:
    """What the intake made of one message: None when it was accepted as a part, else its error line."""
    from inspector.mqtt import Message

    intake.sent.clear()
    queued = intake.jobs.qsize()
    intake._message(Message(f"p/{topic}", payload, 1, 1, **kw))
    if intake.jobs.qsize() > queued:
        return None
    assert len(intake.sent) == 1, intake.sent
    return intake.sent[0][1]["error"]


def test_json_with_a_byte_order_mark_is_read(tmp_path, good_png):
    """A trigger saved by a Windows tool (Notepad, PowerShell 5's UTF8) begins with a byte order mark, which RFC 8259
    lets a reader skip: it was refused as 'not valid JSON ... decode using utf-8-sig', advice the sender cannot take."""
    import base64

    intake = _intake(tmp_path)
    bom = b"\xef\xbb\xbf"
    trigger = b'{"serial": "S1", "base64": "' + base64.b64encode(good_png) + b'"}'
    assert _feed(intake, "trigger", bom + trigger) is None
    assert intake.jobs.get_nowait().serial == "S1"
    # a command too: answered as the command it is (a shift report asked for backwards), not as bad JSON
    line = _feed(intake, "command", bom + b'{"command": "shift_report", "start": "2026-12-02T00:00Z", "end": "2026-12-01T00:00Z"}')
    assert line.startswith("command: start 2026-12-02") and intake.sent[0][1]["command"] == "shift_report"


def test_base64_without_padding_or_in_the_url_safe_alphabet_is_read(tmp_path, good_png):
    """RFC 4648's URL-safe alphabet (JavaScript's base64url, Python's urlsafe_b64encode) and base64 without its
    padding were refused as 'not valid base64 ... (RFC 4648)', though both are RFC 4648."""
    import base64

    intake = _intake(tmp_path)
    good_png += b"\0" * ((1 - len(good_png) % 3) % 3)  # a byte after its end, which decoders skip: base64 then pads with "=="
    for encoded in (base64.urlsafe_b64encode(good_png), base64.b64encode(good_png).rstrip(b"="),
                    base64.urlsafe_b64encode(good_png).rstrip(b"=")):
        assert b"-" in encoded or b"_" in encoded or len(encoded) % 4  # each is one of the forms refused before
        assert _feed(intake, "trigger", b'{"base64": "' + encoded + b'"}') is None
    # what is no base64 still is refused, naming the first character out of place
    assert _feed(intake, "trigger", b'{"base64": "iVBOR*w0KGgo"}') == (
        "trigger: base64 is not valid base64 ('*' at character 5); send the image's bytes base64-encoded (RFC 4648)")
    assert _feed(intake, "trigger", b'{"base64": "iVBORw0KG"}') == (
        "trigger: base64 is not valid base64 (its length or padding is wrong); send the image's bytes base64-encoded (RFC 4648)")


def test_an_image_sent_as_base64_text_or_a_trigger_on_the_image_topic_is_named_so(tmp_path, good_png):
    """The two common mistakes on <prefix>/image, a trigger's JSON there and the image as base64 text, were only
    'cannot be decoded (UnidentifiedImageError)': the integrator was not told what to send instead."""
    import base64

    intake = _intake(tmp_path)
    line = _feed(intake, "image/SN1", base64.b64encode(good_png))
    assert line.endswith("; this payload is base64 text: send the image's raw bytes here, or the text as a trigger's base64 on p/trigger")
    assert _feed(intake, "image", b"data:image/png;base64," + base64.b64encode(good_png)).endswith("on p/trigger")
    line = _feed(intake, "image", b'{"serial": "SN1", "base64": "iVBOR"}')
    assert line.endswith("; this payload is JSON: a trigger goes on p/trigger, the image topic takes the image's raw bytes")
    assert _feed(intake, "image", b"GIF89a-not-quite") == (
        "image p/image: cannot be decoded (UnidentifiedImageError); the GIF data is damaged or cut short; save or send it again")
    assert _feed(intake, "image", b"not-an-image") == "image p/image: cannot be decoded (UnidentifiedImageError); send JPEG or PNG bytes"
    assert _feed(intake, "image/SN2", good_png) is None


def test_a_publish_the_broker_refuses_is_logged_once_naming_its_topic(make_broker, tmp_path, caplog):
    """'broker rejected publish 532 (Not authorized)' named no topic to grant in the ACL, and came again for every
    result and every re-offer of one while the broker refused them (5 lines a second at 5 parts/s)."""
    from inspector.mqtt import MqttClient

    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny p/result\n")
    broker = make_broker(extra=f"acl_file {acl}")
    c = MqttClient(MqttSection(port=broker.port, prefix="p"), "a50-refused")
    c.start()
    try:
        for _ in range(3):
            c.publish("p/result", b"{}")
        c.publish("p/error", b"{}")
        refused = [wait_until(lambda: not c.refused.empty() and c.refused.get_nowait(), 10, "a refusal") for _ in range(3)]
        wait_until(lambda: not c.acks.empty(), 10, "the error topic's acknowledgement")
    finally:
        c.stop(timeout=0)
    assert all("authori" in reason.lower() for _, reason in refused)
    lines = [r.getMessage() for r in caplog.records if "refused a publish" in r.getMessage()]
    assert len(lines) == 1 and "refused a publish on p/result (Not authorized)" in lines[0], lines


def test_a_shift_report_refused_behind_fail_reports_says_so(tmp_path):
    """With the report queue full of FAIL reports, a shift report was refused as 'a shift report is already waiting
    ... ask again when its reply comes': none was waiting, so no reply came, and QA waited for it."""
    import json

    from inspector.config import StationConfig
    from inspector.hooks import ReportHooks
    from inspector.intake import ShiftReportCommand
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    sent = []
    hooks = ReportHooks(cfg, Store(cfg.store.data_dir), lambda topic, body, **kw: sent.append((topic, json.loads(body))), "rep", "err",
                        on_fail=lambda record: None, on_shift_report=lambda recs, meta: {})
    for i in range(hooks._queue.maxsize):  # not started: a burst of FAILs waits to be rendered
        hooks.fail({"inspection_id": f"f{i}", "verdict": "FAIL"})
    hooks.shift(ShiftReportCommand.model_validate({"command": "shift_report"}), None)
    assert [t for t, _ in sent] == ["err"] and sent[0][1]["command"] == "shift_report"
    assert sent[0][1]["error"] == ("command: the report worker is busy with 256 FAIL reports waiting to be rendered; ask again in a few "
                                   "minutes")
