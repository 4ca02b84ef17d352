"""Two stations on one MQTT prefix (a copied config): each notices the other on its retained status (MQTT 5 user
properties), says so in the log, on `error` and on /health, and clears it when the other goes offline."""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.inspector.conftest import running, wait_until

SHARED = "mqtt.prefix shared"


def shared(d) -> list[str]:
    return [c for c in d.health().get("degraded", []) if c.startswith(SHARED)]


def said(caplog, name: str) -> list[str]:
    """What station `name` logged about another on its prefix."""
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and f"mqtt.prefix too (station {name} " in r.getMessage()]


class StatusWatcher:
    """A test client that keeps every status on a prefix with its user properties."""

    def __init__(self, port: int, prefix: str) -> None:
        self.topic, self.seen, self.lock, self.ready = f"{prefix}/status", [], threading.Lock(), threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.ready.wait(30)  # a bound, not a timing: loopback on a loaded CI machine

    def _message(self, client, userdata, msg) -> None:
        with self.lock:
            self.seen.append((bytes(msg.payload), dict(getattr(msg.properties, "UserProperty", None) or [])))

    def publish(self, payload: bytes, user: dict[str, str]) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = list(user.items())
        self.client.publish(self.topic, payload, qos=1, retain=True, properties=props).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_two_stations_on_one_prefix_notice_each_other_and_a_third_elsewhere_nothing(station, broker, listen, tiny_inspector,
                                                                                      tmp_path, caplog):
    caplog.set_level(logging.INFO)
    a_cfg = station(station={"name": "st-a"}, store={"data_dir": str(tmp_path / "a")})
    prefix = a_cfg.mqtt.prefix
    b_cfg = station(station={"name": "st-b"}, mqtt={"prefix": prefix}, store={"data_dir": str(tmp_path / "b")})
    c_cfg = station(station={"name": "st-c"}, store={"data_dir": str(tmp_path / "c")})
    lst, elsewhere = listen(broker.port, prefix), listen(broker.port, c_cfg.mqtt.prefix)
    with running(a_cfg, tiny_inspector) as a, running(c_cfg, tiny_inspector) as c:
        wait_until(lambda: [p for p, _ in lst.on("status")][-1:] == [b"online"], 30, "st-a online")
        with running(b_cfg, tiny_inspector) as b:
            wait_until(lambda: shared(a) and shared(b), 30, "both stations to notice the other")
            assert "st-b" in shared(a)[0] and "st-a" in shared(b)[0] and a.health()["status"] == "degraded"
            wait_until(lambda: len(lst.on("error")) >= 2, 10, "an error from each")
            wait_until(lambda: said(caplog, "st-b") and said(caplog, "st-a"), 10, "the log")
            assert "st-b on host" in said(caplog, "st-a")[0] and "give each station its own mqtt.prefix" in said(caplog, "st-a")[0]
            wait_until(lambda: a.metrics.value("inspector_prefix_shared") == 1, 10, "the gauge")
            b_status_seen = len(lst.on("status"))
        # st-b stopped (`offline`): st-a's concern goes, and its own `online` is the retained status again
        wait_until(lambda: not shared(a), 10, "st-a's concern cleared")
        wait_until(lambda: [p for p, _ in lst.on("status")[b_status_seen:]][-1:] == [b"online"], 10, "st-a's online again")
        late = listen(broker.port, prefix)
        wait_until(lambda: late.on("status"), 10, "the retained status")
        assert late.on("status")[-1][0] == b"online"
        assert not shared(c) and "degraded" not in c.health()
    errors = lst.json("error")
    assert len(errors) == 2, errors  # one from each, none repeated for a status re-sent, no status taken as an input
    assert {e["input"] for e in errors} == {"status"} and all("give each station its own mqtt.prefix" in e["error"] for e in errors)
    assert not elsewhere.on("error") and not said(caplog, "st-c")
    assert len(said(caplog, "st-a")) == 1 and len(said(caplog, "st-b")) == 1


def test_a_station_restarted_over_its_own_retained_status_notices_nothing(station, broker, listen, tiny_inspector, caplog):
    cfg = station(station={"name": "st-a"})
    prefix, client_id = cfg.mqtt.prefix, cfg.mqtt.client_id
    watcher = StatusWatcher(broker.port, prefix)
    lst = listen(broker.port, prefix)
    try:
        # an earlier run of this station, killed before the broker fired its last will: its `online` is still retained
        watcher.publish(b"online", {"client_id": client_id, "station": "st-a", "host": "h", "instance": "earlier"})
        with running(cfg, tiny_inspector) as d:
            wait_until(lambda: [s for s in watcher.seen if s[1].get("instance") not in (None, "earlier")], 30, "the station's status")
            payload, user = watcher.seen[-1]
            assert payload == b"online" and user["client_id"] == client_id and user["station"] == "st-a" and user["instance"] != "earlier"
            assert not shared(d) and not lst.on("error")
            # a station of another client id is noticed, by the same station (the control: the watch is live)
            watcher.publish(b"degraded", {"client_id": "insp-other", "station": "st-z", "host": "elsewhere", "instance": "x"})
            wait_until(lambda: shared(d), 10, "st-z noticed")
            assert "st-z" in shared(d)[0] and "elsewhere" in shared(d)[0]
            watcher.publish(b"", {})  # its retained status cleared: gone
            wait_until(lambda: not shared(d), 10, "cleared")
        assert [json.loads(p)["input"] for p, _ in lst.on("error")] == ["status"]
        last = wait_until(lambda: watcher.seen[-1] if watcher.seen[-1][0] == b"offline" else None, 10, "its offline")
        assert last[1]["client_id"] == client_id
    finally:
        watcher.close()


def test_the_last_will_names_the_station(station, broker, tiny_inspector):
    """The broker's `offline` for a station whose connection died (its will) clears the other's concern only if it names it."""
    cfg = station(station={"name": "st-a"})
    watcher = StatusWatcher(broker.port, cfg.mqtt.prefix)
    try:
        with running(cfg, tiny_inspector) as d:
            wait_until(lambda: watcher.seen and watcher.seen[-1][0] == b"online", 30, "online")
            d.mqtt._client.socket().shutdown(socket.SHUT_RDWR)  # the connection drops without a DISCONNECT: the broker sends the will
            wait_until(lambda: any(p == b"offline" for p, _ in watcher.seen), 30, "the will")
            user = next(u for p, u in watcher.seen if p == b"offline")
            assert user["client_id"] == cfg.mqtt.client_id and user["station"] == "st-a"
    finally:
        watcher.close()


def test_a_broker_that_hides_the_status_from_the_station_is_said(station, make_broker, tiny_inspector, tmp_path, caplog):
    """An ACL that lets a station write its status but not read it (as configs/mosquitto.acl did): mosquitto grants the
    subscription and delivers nothing, so a second station on the prefix would go unnoticed without a word."""
    caplog.set_level(logging.WARNING)
    acl = tmp_path / "acl"
    acl.write_text("".join(f"topic read acl57/st/{t}\n" for t in ("trigger", "image/#", "command"))
                   + "".join(f"topic write acl57/st/{t}\n" for t in ("result", "status", "error", "report")))
    broker = make_broker(extra=f"acl_file {acl}")
    cfg = station(mqtt={"port": broker.port, "prefix": "acl57/st"})
    with running(cfg, tiny_inspector):
        warned = wait_until(lambda: [r.getMessage() for r in caplog.records if "does not let this station read its own status" in r.getMessage()],
                            60, "the warning")
    assert len(warned) == 1 and "grant the station read on acl57/st/status" in warned[0]


def test_a_station_that_reads_its_own_status_says_nothing_of_it(station, broker, tiny_inspector, caplog, monkeypatch):
    import inspector.daemon

    caplog.set_level(logging.WARNING)
    with running(station(), tiny_inspector) as d:
        wait_until(lambda: d._status_heard, 30, "its own status heard back")
        # no time to hear it back only from here: set before, the watchdog's own check (every 0.5 s) said it unheard
        # whenever the status took longer than that to come back
        monkeypatch.setattr(inspector.daemon, "STATUS_HEARD_S", 0.0)
        d.check()
    assert not [r for r in caplog.records if "read its own status" in r.getMessage()]


def test_on_mqtt_311_two_stations_on_one_prefix_run_as_before(station, broker, listen, tiny_inspector, tmp_path, caplog):
    """3.1.1 carries no user properties: nothing can be told apart, so nothing is watched and nothing is said (README)."""
    caplog.set_level(logging.WARNING)
    a_cfg = station(station={"name": "st-a"}, mqtt={"protocol": "3.1.1"}, store={"data_dir": str(tmp_path / "a")})
    b_cfg = station(station={"name": "st-b"}, mqtt={"protocol": "3.1.1", "prefix": a_cfg.mqtt.prefix}, store={"data_dir": str(tmp_path / "b")})
    lst = listen(broker.port, a_cfg.mqtt.prefix)
    with running(a_cfg, tiny_inspector) as a, running(b_cfg, tiny_inspector) as b:
        wait_until(lambda: len([p for p, _ in lst.on("status") if p == b"online"]) >= 2, 30, "both online")
        assert a.mqtt.watch is None and not shared(a) and not shared(b)
    assert not lst.on("error") and not [r for r in caplog.records if "status" in r.getMessage()]
