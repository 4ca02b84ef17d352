"""The MQTT client against a real Mosquitto: topics, last will, credentials, TLS, an absent broker."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from inspector.config import MqttSection
from inspector.mqtt import OFFLINE, MqttClient, Topics, Will
from model.errors import InspectorError
from tests.inspector.conftest import Broker, station_dict, wait_until


def mqtt_cfg(port: int, **kw) -> MqttSection:
    return MqttSection.model_validate({"port": port, "prefix": "t/s", "connect_timeout_s": 5.0, **kw})


def test_topics_are_built_in_one_place():
    t = Topics("factory/line1/station3")
    assert t.subscriptions() == ["factory/line1/station3/trigger", "factory/line1/station3/image", "factory/line1/station3/image/+",
                                 "factory/line1/station3/image/+/+/#", "factory/line1/station3/command"]
    assert t.publications() == ["factory/line1/station3/result", "factory/line1/station3/status", "factory/line1/station3/error",
                                "factory/line1/station3/report"]


def test_last_will_offline_when_the_process_dies(broker, listen):
    lst = listen(broker.port, "t/s")
    script = ("import sys, time\nfrom inspector.config import MqttSection\nfrom inspector.mqtt import MqttClient, Will, OFFLINE, ONLINE\n"
              f"c = MqttClient(MqttSection(port={broker.port}, prefix='t/s'), 'dying', will=Will('t/s/status', OFFLINE))\n"
              "c.start(); c.publish('t/s/status', ONLINE, retain=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_until(lambda: [p for p, _ in lst.on("status")] == [b"online"], 30, "online")
        proc.kill()
        wait_until(lambda: [p for p, _ in lst.on("status")] == [b"online", b"offline"], 10, "last will")
    finally:
        proc.kill()
        proc.wait()
    late = listen(broker.port, "t/s")  # retained: a newcomer learns the station is offline
    wait_until(lambda: late.on("status") == [(b"offline", None)], 5, "retained offline")


@pytest.fixture
def secured(make_broker, tmp_path):
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "station", "right-password"], check=True, capture_output=True)
    pw.chmod(0o644)
    return make_broker(anonymous=False, extra=f"password_file {pw}")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_wrong_password_is_one_clear_error(secured, monkeypatch, protocol):
    monkeypatch.setenv("TEST_MQTT_PW", "wrong")
    cfg = mqtt_cfg(secured.port, username="station", password_env="TEST_MQTT_PW", protocol=protocol)
    with pytest.raises(InspectorError, match=r"refused the connection \(.*(password|[Nn]ot authori[sz]ed).*\); check mqtt.username"):
        MqttClient(cfg, "c1").start()
    monkeypatch.setenv("TEST_MQTT_PW", "right-password")
    ok = MqttClient(cfg, "c2")
    ok.start()
    assert ok.connected and ok.state == "connected"
    ok.stop()


def test_serve_with_a_wrong_password_exits_2_without_a_traceback(secured, tmp_path, tiny_ckpt, monkeypatch, capsys, caplog):
    from inspector.cli import main

    monkeypatch.setenv("TEST_MQTT_PW", "wrong")
    # the model path must exist (serve checks it first) but is never loaded: the broker refuses before that
    raw = station_dict(tmp_path, secured, tiny_ckpt, mqtt={"username": "station", "password_env": "TEST_MQTT_PW"})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["serve", "--config", str(tmp_path / "s.yaml")]) == 2  # systemd: RestartPreventExitStatus=2, no restart loop
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: mqtt 127.0.0.1:") and "refused" in err[-1] and "Traceback" not in "\n".join(err)
    monkeypatch.delenv("TEST_MQTT_PW")
    assert main(["serve", "--config", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert "environment variable TEST_MQTT_PW is not set" in err and not [r for r in caplog.records if r.name == "inspector.serve"]
    # a threshold that would fail every good part is said in the log as the station starts (only by `fit` before)
    raw["model"]["image_threshold"] = -1e9
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["serve", "--config", str(tmp_path / "s.yaml")]) == 2
    said = [r for r in caplog.records if r.name == "inspector.serve"]
    assert [r.levelname for r in said] == ["WARNING"]
    assert said[0].getMessage().startswith("model.image_threshold -1e+09 (over the model's): fails 100.0% of the good calibration images")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def tls_broker(make_broker, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make test certificates)")
    d = tmp_path / "pki"
    d.mkdir()
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
             "-days", "2", "-extfile", str(d / "ext"), "-out", str(d / "server.crt"))
    for f in d.iterdir():
        f.chmod(0o644)
    b = make_broker(listener_extra=f"certfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}")
    b.pki = d
    return b


def test_tls_right_ca_connects_wrong_ca_and_plain_port_fail_clearly(tls_broker, broker):
    pki = tls_broker.pki
    good = MqttClient(mqtt_cfg(tls_broker.port, tls={"ca_file": str(pki / "ca.crt")}), "tls-ok")
    good.start()
    assert good.connected
    good.stop()
    with pytest.raises(InspectorError, match=r"TLS certificate rejected \(.*\); check mqtt.tls.ca_file"):
        MqttClient(mqtt_cfg(tls_broker.port, tls={"ca_file": str(pki / "other-ca.crt")}), "tls-bad").start()
    with pytest.raises(InspectorError, match=r"TLS handshake failed"):
        MqttClient(mqtt_cfg(broker.port, tls={"ca_file": str(pki / "ca.crt")}), "tls-plain").start()
    with pytest.raises(InspectorError, match=r"cannot load the TLS files"):
        MqttClient(mqtt_cfg(broker.port, tls={"ca_file": str(pki / "missing.crt")}), "tls-missing")


def test_absent_broker_is_not_fatal_and_is_reached_when_it_comes(tmp_path, mosquitto_bin):
    b = Broker(tmp_path / "late")
    c = MqttClient(mqtt_cfg(b.port), "patient", will=Will("t/s/status", OFFLINE))
    c.start()  # nothing listens yet: no exception, retries in the background
    assert not c.connected and c.state.startswith("unreachable")
    time.sleep(0.3)
    b.start()
    try:
        wait_until(lambda: c.connected, 15, "connection once the broker is up")
    finally:
        c.stop()
        b.kill()



def test_through_a_long_outage_results_wait_in_the_store_not_in_paho(make_broker, tmp_path, monkeypatch):
    """paho's queue of unsent messages had no bound: a days-long outage held every result in memory."""
    from inspector import mqtt, outbox
    from inspector.health import Metrics
    from inspector.outbox import Outbox
    from inspector.store import Store

    monkeypatch.setattr(outbox, "MAX_HANDED", 3)
    monkeypatch.setattr(mqtt, "MAX_QUEUED", 4)
    broker = make_broker()
    broker.kill()
    client = MqttClient(mqtt_cfg(broker.port), "queued")
    store = Store(tmp_path / "data")
    box = Outbox(store, client, "t/s/result", Metrics())
    for i in range(5):
        record = {"inspection_id": f"q{i}", "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "PASS", "score": 0.1, "threshold": 1.0}
        assert store.add(record)
        box.publish(record)
    assert box.in_flight == 3  # paho holds 3; the others wait in the store only
    assert client.publish("t/s/status", "online") is not None  # room is left for status and replies: `online` was lost
    assert client.publish("t/s/error", "x") is None  # paho's own limit
    broker.start()
    client.start()
    try:
        wait_until(lambda: (box.drain_acks(), box.resend(), store.counts()["unpublished"] == 0)[-1], 20, "all five published")
    finally:
        client.stop()


@pytest.mark.parametrize("limit, said", [("max_packet_size", "over the 600 the broker takes: raise its max_packet_size"),
                                         ("message_size_limit", "(Packet too large); it takes no message this big: raise its message_size_limit")])
def test_a_result_over_the_brokers_max_packet_size_is_kept_and_said_once_not_sent_in_a_reconnect_loop(make_broker, tmp_path,
                                                                                                      monkeypatch, caplog, limit, said):
    """A broker with max_packet_size below a result's size (MQTT 5 tells it in CONNACK) dropped the station at each send: it
    reconnected each second for ever, re-sending the result, status flapping online/offline, /health blaming a client id.
    mosquitto's message_size_limit answers PUBACK 0x95, which paho took for a malformed packet: the same loop."""
    from inspector import outbox
    from inspector.health import Metrics
    from inspector.outbox import Outbox
    from inspector.store import Store

    monkeypatch.setattr(outbox, "REFUSED_RETRY_S", 0.0)  # offered again at each resend: still said once
    broker = make_broker(extra=f"{limit} 600")
    client = MqttClient(mqtt_cfg(broker.port), "small-packets")
    store = Store(tmp_path / "data")
    box = Outbox(store, client, "t/s/result", Metrics())
    record = {"inspection_id": "big", "timestamp": "2026-01-02T03:04:05.000Z", "verdict": "FAIL", "score": 9.0, "threshold": 1.0,
              "note": "x" * 700}
    assert store.add(record)
    client.start()
    try:
        assert client.max_packet == (600 if limit == "max_packet_size" else None)
        box.publish(record)
        wait_until(lambda: (box.drain_acks(), box.refusal)[-1], 20, "the result refused as too big")
        for _ in range(3):
            box.resend()
            box.drain_acks()
        small, acked = client.publish("t/s/status", "online"), []

        def small_acked() -> bool:
            while not client.acks.empty():
                acked.append(client.acks.get())
            return small in acked

        wait_until(small_acked, 20, "a small message acknowledged after it, on the same connection")
        assert client.state == "connected" and store.counts()["unpublished"] == 1
        assert sum(said in r.message for r in caplog.records) == 1, [r.message for r in caplog.records]
    finally:
        client.stop()
    broker.kill()
    broker.conf.write_text(broker.conf.read_text().replace(f"{limit} 600", f"{limit} 4000"))
    broker.start()
    client = MqttClient(mqtt_cfg(broker.port), "small-packets")
    box = Outbox(store, client, "t/s/result", Metrics())
    client.start()
    try:
        wait_until(lambda: (box.drain_acks(), box.resend(), store.counts()["unpublished"] == 0)[-1], 20, "published once it fits")
    finally:
        client.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_clients_with_one_client_id_are_named_not_left_to_reconnect_for_ever(broker, protocol, caplog):
    """Two stations with one name took the client id from each other about once a second, and said only
    'disconnected (Unspecified error); reconnecting'."""
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    a, b = MqttClient(mqtt_cfg(broker.port, protocol=protocol), "dup-id"), MqttClient(mqtt_cfg(broker.port, protocol=protocol), "dup-id")
    a.start()
    b.start()
    try:
        named = lambda: [c.state for c in (a, b) if c.state.startswith("client id dup-id is")]  # noqa: E731
        # the state as seen: a reconnect sets it back to "connected" until the next drop names the clash again
        seen = wait_until(named, 30, "the clash named")
        assert "in use by another client" in seen[0] and "give each station its own station.name or mqtt.client_id" in seen[0]
        assert sum("client id dup-id is" in r.message for r in caplog.records) <= 2  # once per client, not per drop
        # and the reconnects after it are not each logged: 'connected as dup-id' came once a second for as long as it lasted
        wait_until(lambda: len(a._quick_drops) + len(b._quick_drops) >= 12, 60, "a dozen drops")
        assert sum("connected as dup-id" in r.message for r in caplog.records if r.levelno >= logging.INFO) <= 8
    finally:
        a.stop()
        b.stop()
    lone = MqttClient(mqtt_cfg(broker.port, protocol=protocol), "lone-id")
    lone.start()
    try:
        wait_until(lambda: lone.state == "connected", 15, "the lone client connected")
        time.sleep(1.5)  # and it stays so: no clash to name
        assert lone.state == "connected"
    finally:
        lone.stop()


def test_drops_of_a_flaky_link_long_ago_are_not_a_client_id_clash(monkeypatch):
    """Once three quick drops had been seen, every later drop, even hours later, was called a clash."""
    import inspector.mqtt as m

    c = MqttClient(mqtt_cfg(1883), "flaky")
    clock = [1000.0]
    monkeypatch.setattr(m.time, "monotonic", lambda: clock[0])
    for _ in range(3):  # three drops within a second of connecting: named
        c._connected(None, None, None, type("R", (), {"is_failure": False})(), None)
        clock[0] += 0.5
        c._disconnected(None, None, None, "Unspecified error", None)
    assert c.state.startswith("client id flaky is probably in use")
    c._connected(None, None, None, type("R", (), {"is_failure": False})(), None)
    clock[0] += 7200.0  # two hours connected, then an ordinary drop
    c._disconnected(None, None, None, "Keep alive timeout", None)
    assert c.state == "disconnected (Keep alive timeout)"


@pytest.mark.parametrize("protocol, flagged", [("5", True), ("3.1.1", False)])
def test_a_live_retained_message_keeps_its_retain_flag_on_mqtt_5(broker, listen, protocol, flagged):
    """The broker clears the retain flag of a message it hands to a live subscriber unless the subscription asks
    for Retain As Published (MQTT 5 only): a retained trigger sent while the station ran was inspected as a part."""
    c = MqttClient(mqtt_cfg(broker.port, protocol=protocol), f"rap-{protocol}", subscriptions=["t/s/trigger"])
    c.start()
    try:
        lst = listen(broker.port, "t/s")
        # subscribed once a live message comes through: a retained one sent before would come flagged on subscribing
        wait_until(lambda: (lst.publish("trigger", b"ping").wait_for_publish(), time.sleep(0.05), not c.inbox.empty())[-1], 10, "subscribed")
        def arrived():  # the next message but the pings (some may still be on their way)
            while not c.inbox.empty():
                if (m := c.inbox.get_nowait()).payload != b"ping":
                    return m
            return None

        lst.publish("trigger", b"{}", retain=True).wait_for_publish()
        got = wait_until(arrived, 10, "the trigger")
        assert (got.topic, got.payload, got.retain) == ("t/s/trigger", b"{}", flagged)
        lst.publish("trigger", b"", retain=True).wait_for_publish()  # cleared, and handed over as it was published
        assert wait_until(arrived, 10, "the clearing").retain is flagged
    finally:
        c.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_station_upgraded_from_image_plus_gets_each_image_once_and_a_retained_one_once(broker, listen, protocol):
    """Its persistent session kept the old `image` and `image/+` filters beside `image/#`, and the broker sent each
    image once per matching filter (one part inspected twice); a retained trigger came again at every reconnect."""
    topics = Topics("t/up")
    cfg = mqtt_cfg(broker.port, protocol=protocol, prefix="t/up")
    old = MqttClient(cfg, f"up-{protocol}", subscriptions=[topics.trigger, topics.image, f"{topics.image}/+"])  # as before image/#
    old.start()
    wait_until(lambda: old.connected, 5, "the old station connected")
    assert old.wait_subscribed(30), "its SUBACKs"  # the old filters in its session (a sleep, on a loaded machine, was no promise)
    old.stop()
    lst = listen(broker.port, "t/up")
    lst.publish("trigger", b'{"serial": "R1"}', retain=True).wait_for_publish()  # left at the broker
    new = MqttClient(cfg, f"up-{protocol}", subscriptions=topics.subscriptions(), retired=topics.retired())
    try:
        for run in range(2):  # a start, then a reconnect on the same session
            new.start()
            wait_until(lambda: new.connected, 5, "connected")
            wait_until(lambda run=run: (lst.publish("image/SN1", f"ping{run}".encode()).wait_for_publish(), time.sleep(0.2), not new.inbox.empty())[-1],
                       10, "subscribed")
            time.sleep(0.5)  # a second copy of the ping, or of the retained trigger, would have come by now
            got = [new.inbox.get_nowait() for _ in range(new.inbox.qsize())]
            pings = [m for m in got if m.topic == "t/up/image/SN1"]
            assert len({m.payload for m in pings}) == len(pings), [(m.topic, m.payload) for m in got]  # each image once
            retained = [m for m in got if m.topic == "t/up/trigger"]
            if protocol == "5":  # sent when the subscription is new only (Retain Handling 1)
                assert len(retained) == (1 if run == 0 else 0), run
            new.stop()
    finally:
        lst.publish("trigger", b"", retain=True).wait_for_publish()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_station_rolled_back_or_upgraded_over_this_session_gets_each_image_once(broker, listen, protocol):
    """Versions of 2026-12-05 to 12-07 subscribed to `image/#`: a station rolled back from them to an older one (`image`,
    `image/+`, no `retired`) kept `image/#` in its persistent session, and each image/<serial> was inspected twice."""
    topics = Topics("t/rb")
    cfg = mqtt_cfg(broker.port, protocol=protocol, prefix="t/rb")
    older = [topics.trigger, topics.image, f"{topics.image}/+", topics.command]  # a version before 2026-12-05
    steps = [([topics.trigger, f"{topics.image}/#", topics.command], []),  # 2026-12-05 to 12-07
             (topics.subscriptions(), topics.retired()), (older, []), (topics.subscriptions(), topics.retired())]
    lst = listen(broker.port, "t/rb")
    for n, (subs, retired) in enumerate(steps):
        c = MqttClient(cfg, f"rb-{protocol}", subscriptions=subs, retired=retired)
        c.start()
        try:
            wait_until(lambda c=c: c.connected, 5, "connected")
            assert c.wait_subscribed(30), "its SUBACKs"
            for topic in ("image/SN1", "image", "image/LOT7/SN9"):
                lst.publish(topic, f"{n}".encode(), qos=1).wait_for_publish()
            wait_until(lambda c=c: c.inbox.qsize() >= 3, 10, "the images")
            time.sleep(0.5)  # a second copy would have come by now
            got = sorted(m.topic for m in (c.inbox.get_nowait() for _ in range(c.inbox.qsize())))
            assert got == ["t/rb/image", "t/rb/image/LOT7/SN9", "t/rb/image/SN1"], (n, got)  # the older one refuses LOT7/SN9
        finally:
            c.stop()


def test_a_station_rolled_back_from_this_one_is_not_sent_its_own_status(broker, listen):
    """This version watches its own status (two stations on one prefix); its persistent session kept that filter, and a
    station rolled back to a version before 2026-12-06 took its own `online` for an input, answered on <prefix>/error."""
    topics = Topics("t/rs")
    cfg = mqtt_cfg(broker.port, protocol="5", prefix="t/rs")
    new = MqttClient(cfg, "rs", subscriptions=topics.subscriptions(), watch=topics.status, on_watched=lambda m: None)
    new.start()
    wait_until(lambda: new.connected, 5, "connected")
    assert new.wait_subscribed(30), "its SUBACKs"
    new.stop()
    older = MqttClient(cfg, "rs", subscriptions=[topics.trigger, topics.image, f"{topics.image}/+", topics.command])
    older.start()
    try:
        wait_until(lambda: older.connected, 5, "connected")
        assert older.wait_subscribed(30), "its SUBACKs"
        lst = listen(broker.port, "t/rs")
        lst.publish("status", b"online", retain=True).wait_for_publish()  # as the older station says it
        lst.publish("image/SN1", b"x").wait_for_publish()  # after the status: once it is here, the status would be too
        wait_until(lambda: not older.inbox.empty(), 10, "the image")
        time.sleep(0.3)
        got = [older.inbox.get_nowait().topic for _ in range(older.inbox.qsize())]
        assert got == ["t/rs/image/SN1"], got
    finally:
        older.stop()
        listen(broker.port, "t/rs").publish("status", b"", retain=True).wait_for_publish()


def test_the_shipped_acl_keeps_each_station_to_its_own_topics(make_broker, tmp_path, tiny_ckpt, tiny_inspector, good_png, listen, monkeypatch):
    """Without an ACL any broker user could pose as a station (its results, its status) or command and feed it parts."""
    import base64
    import json
    from pathlib import Path

    from inspector.config import StationConfig
    from tests.inspector.conftest import running, station_dict, wait_until

    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    pw = tmp_path / "passwd"
    for i, user in enumerate(("st1", "st2", "mes")):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(pw), user, f"{user}-pw"], check=True, capture_output=True)
    pw.chmod(0o644)
    acl = Path(__file__).parents[2] / "configs" / "mosquitto.acl"
    broker = make_broker(anonymous=False, extra=f"password_file {pw}\nacl_file {acl}")
    monkeypatch.setenv("TEST_MQTT_PW", "st1-pw")
    cfg = StationConfig.model_validate(station_dict(tmp_path, broker, tiny_ckpt, mqtt={"prefix": "plant/st1", "username": "st1",
                                                                                      "password_env": "TEST_MQTT_PW"}))
    mes = listen(broker.port, "plant/st1", login=("mes", "mes-pw"))
    other = listen(broker.port, "plant/st1", login=("st2", "st2-pw"))  # another station's user
    part = json.dumps({"inspection_id": "p-1", "base64": base64.b64encode(good_png).decode()})
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: mes.on("status") and mes.on("status")[-1][0] == b"online", 30, "the station online")
        wait_until(lambda: d._status_heard, 30, "its own status read back (a second station on its prefix would show there)")
        mes.publish("trigger", part).wait_for_publish(10)
        wait_until(lambda: "p-1" in mes.result_ids(), 60, "the MES's part judged")
        other.publish("trigger", part.replace("p-1", "p-2")).wait_for_publish(10)
        other.publish("command", json.dumps({"command": "reload"})).wait_for_publish(10)
        other.publish("result", json.dumps({"inspection_id": "forged", "verdict": "PASS"})).wait_for_publish(10)
        other.publish("status", "offline", retain=True).wait_for_publish(10)
        mes.publish("trigger", part.replace("p-1", "p-3")).wait_for_publish(10)  # after st2's, on the same broker
        wait_until(lambda: "p-3" in mes.result_ids(), 60, "the MES's second part judged")
        time.sleep(0.5)
    assert mes.result_ids() == {"p-1", "p-3"} and not mes.on("report") and not other.on("result")  # st2 reads nothing of st1's
    assert b"offline" != mes.on("status")[0][0]
