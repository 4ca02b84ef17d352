"""Station configs and inputs that passed validation though wrong, and errors that were split over lines."""

from __future__ import annotations

import pytest

from inspector.config import config_errors
from tests.inspector.test_daemon_hostile_inputs import STATION, _write

# -- 1. http.host and mqtt.host share one check -------------------------------------------------------------------

@pytest.mark.parametrize("host", [" broker", "broker ", "\tbroker"])
def test_an_mqtt_host_with_spaces_around_it_is_refused(tmp_path, host):
    """`_host` checked v.strip() but kept v: ' broker' passed, and the name looked up was not the broker's."""
    cfg, errors = config_errors(_write(tmp_path, "mqtt.host", host))
    assert cfg is None and len(errors) == 1 and "mqtt.host: has spaces around it; give 'broker' without them" in errors[0], errors


def test_an_mqtt_url_names_mqtt_port_and_tls(tmp_path):
    cfg, errors = config_errors(_write(tmp_path, "mqtt.host", "mqtts://b.local:8883"))
    assert cfg is None and errors[0].endswith(
        "mqtt.host: is a URL; give the host alone (b.local) and the port as mqtt.port: 8883; TLS goes in mqtt.tls "
        "(got 'mqtts://b.local:8883')"), errors


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "fe80::1%eth0"])
def test_an_http_host_alone_is_taken(tmp_path, host):
    cfg, errors = config_errors(_write(tmp_path, "http.host", host))
    assert cfg is not None and cfg.http.host == host, errors


# -- 2. a path holding a newline splits no problem over two lines -------------------------------------------------

def _two_problems_in_a_folder_named_with_a_newline(tmp_path):
    folder = tmp_path / "bad\nname"
    folder.mkdir()
    config = folder / "station.yaml"
    # two problems, each named with its file and line, so with the folder's newline
    config.write_text(STATION.replace("store: {data_dir: data}", "store: {data_dir: data, nope: 1}")
                      .replace("model: {path: m.ckpt}", "model: {path: m.ckpt, batch_size: many}"))
    return config


def test_serve_with_several_problems_keeps_each_on_its_line_when_a_path_holds_a_newline(tmp_path, capsys):
    from tests.cli import cli

    config = _two_problems_in_a_folder_named_with_a_newline(tmp_path)
    rc, out, err = cli(capsys, "serve", "--config", config)
    lines = err.splitlines()
    shown = str(config).replace("\n", "\\n")
    assert rc == 2 and lines[0] == f"error: config {shown}: 2 problems:" and len(lines) == 3, err
    assert all(line.startswith(f"  {shown}:") for line in lines[1:]), err
    assert "model.batch_size" in lines[1] + lines[2] and "store.nope" in lines[1] + lines[2], err


def test_config_validate_keeps_each_problem_on_its_line_when_a_path_holds_a_newline(tmp_path, capsys):
    from tests.cli import cli

    config = _two_problems_in_a_folder_named_with_a_newline(tmp_path)
    rc, out, err = cli(capsys, "config", "validate", config)
    lines = err.splitlines()
    shown = str(config).replace("\n", "\\n")
    assert rc == 1 and len(lines) == 3 and all(line.startswith(f"{shown}:") for line in lines), err
    assert lines[2] == f"{shown}: 2 problem(s)", err


def test_one_problem_in_a_folder_named_with_a_newline_is_one_line(tmp_path, capsys):
    from tests.cli import assert_one_line_error, cli

    config = _two_problems_in_a_folder_named_with_a_newline(tmp_path)
    config.write_text(config.read_text().replace(", nope: 1", ""))
    rc, out, err = cli(capsys, "serve", "--config", config)
    assert_one_line_error(rc, err, str(config).replace("\n", "\\n"), "model.batch_size")


# -- 3. an MQTT 5 user property given twice ------------------------------------------------------------------------

def _publish(lst, topic: str, payload: bytes, pairs: list[tuple[str, str]]):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = pairs
    return lst.client.publish(f"{lst.prefix}/{topic}", payload, qos=1, properties=props)


def test_a_user_property_given_twice_on_an_image_is_refused_not_the_last_taken(station, broker, listen, tiny_inspector, good_png):
    """serial=A7 and serial=B2 on one image message: the part was filed as B2, with no word (likewise inspection_id and
    captured_at); a JSON key given twice in a trigger was already refused."""
    from tests.inspector.conftest import running, wait_until

    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        _publish(lst, "image", good_png, [("inspection_id", "u1"), ("serial", "A7"), ("serial", "B2")])
        _publish(lst, "image", good_png, [("inspection_id", "u2"), ("inspection_id", "u3")])
        _publish(lst, "image/S3", good_png, [("captured_at", "2026-12-05T04:59:59Z"), ("captured_at", "2026-12-05T05:59:59Z")])
        # other names may come twice (MQTT 5 allows it; the station reads none of them), and each name once is taken
        _publish(lst, "image", good_png, [("inspection_id", "u4"), ("serial", "C9"), ("trace", "a"), ("trace", "b")])
        wait_until(lambda: len(lst.json("error")) >= 3 and len(lst.json("result")) >= 1, 30, "three errors and a result")
        stored = {i: d.store.get(i) is not None for i in ("u1", "u2", "u3", "u4")}
    errors = sorted((e["error"], e["inspection_id"], e["serial"]) for e in lst.json("error"))
    assert errors == [
        ("image/S3: user property 'captured_at' is given twice; give it once", None, "S3"),
        ("image: user property 'inspection_id' is given twice; give it once", None, None),
        ("image: user property 'serial' is given twice; give it once", "u1", None),
    ], errors
    assert [(r["inspection_id"], r["serial"]) for r in lst.json("result")] == [("u4", "C9")]
    assert stored == {"u1": False, "u2": False, "u3": False, "u4": True}


def test_a_command_given_twice_is_refused_naming_no_command(tmp_path):
    """The refusal of {"command": "reload", "command": "review"} said "command": "review" (plain json.loads let the last
    win), of a command refused for naming two."""
    import json
    import queue

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Message, Topics
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(tmp_path / "data")}})
    sent: list[dict] = []
    intake = Intake(cfg, Store(tmp_path / "data"), queue.Queue(8), Metrics(), Topics("p"),
                    publish=lambda topic, body, reply=None: sent.append(json.loads(body)), republish=lambda r, c: None,
                    on_command=lambda cmd, reply: None)
    intake._message(Message("p/command", b'{"command": "reload", "command": "review"}', 1, 1))
    assert [(e["error"], e["command"]) for e in sent] == [("command: 'command' is given twice; give it once", None)]
    # a trigger given a serial twice: neither serial echoed on an error that reads no further (a full inbox, retained)
    assert intake.ids_of(Message("p/trigger", b'{"serial": "A7", "inspection_id": "i1", "serial": "B2"}', 1, 2)) == (None, None)
    assert intake.ids_of(Message("p/trigger", b'{"serial": "A7", "inspection_id": "i1"}', 1, 3)) == ("i1", "A7")


# -- 4. a stall limit or capture timeout too short to be meant -----------------------------------------------------

@pytest.mark.parametrize("key, value, said", [
    ("watchdog.stall_s", 1e-300, "greater than or equal to 1"),  # the source was replaced at every check
    ("watchdog.stall_s", 0.5, "greater than or equal to 1"),
    ("source.capture_timeout_s", 1e-300, "greater than or equal to 0.05"),  # every trigger timed out
])
def test_a_stall_limit_or_capture_timeout_too_short_to_be_meant_is_refused(tmp_path, key, value, said):
    path = _write(tmp_path, key, value)
    if key.startswith("source."):
        path.write_text(path.read_text().replace("type: mqtt", "type: stream\n  url: rtsp://cam/s"))
    cfg, errors = config_errors(path)
    assert cfg is None and len(errors) == 1 and f"{key}: " in errors[0] and said in errors[0], errors


@pytest.mark.parametrize("stall, interval", [(5, 5), (5, 10)])
def test_a_stall_limit_not_above_the_check_interval_is_refused(tmp_path, stall, interval):
    path = _write(tmp_path, "watchdog", {"stall_s": stall, "interval_s": interval})
    cfg, errors = config_errors(path)
    assert cfg is None and len(errors) == 1, errors
    assert f"watchdog: stall_s {stall} is not above interval_s {interval}; give stall_s several times interval_s (e.g. " \
           f"{10 * interval}), or a shorter interval_s" in errors[0], errors


def test_the_stall_limits_and_capture_timeouts_in_use_are_taken(tmp_path):
    cfg, errors = config_errors(_write(tmp_path, "watchdog", {"stall_s": 1.0, "interval_s": 0.2}))
    assert cfg is not None and cfg.watchdog.stall_s == 1.0, errors
    path = _write(tmp_path, "source", {"type": "stream", "url": "rtsp://cam/s", "capture_timeout_s": 0.5})
    cfg, errors = config_errors(path)
    assert cfg is not None and cfg.source.capture_timeout_s == 0.5, errors


# -- 5. a config path too long -------------------------------------------------------------------------------------

def test_a_config_path_too_long_is_told_to_be_shorter_not_sent_to_permissions(tmp_path, capsys):
    """`config validate LONGPATH` said 'give the path of a station config this user (root) may read'."""
    from tests.cli import assert_one_line_error, cli

    long = tmp_path / ("x" * 300 + ".yaml")
    for argv in (("config", "validate", long), ("serve", "--config", long)):
        rc, out, err = cli(capsys, *argv)
        assert_one_line_error(rc, err, "x" * 300, "cannot be read (File name too long); give a shorter path")
        assert "may read" not in err


def test_a_config_this_user_may_not_read_keeps_the_permission_wording(tmp_path, capsys, monkeypatch):
    import errno
    import os
    import pathlib

    from model.errors import user_name
    from tests.cli import assert_one_line_error, cli

    config = tmp_path / "station.yaml"
    config.write_text(STATION)
    opened = pathlib.Path.open

    def denied(self, *args, **kwargs):  # as chmod 0 does (the tests may run as root, who reads any file)
        if self == config:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", denied)
    rc, out, err = cli(capsys, "config", "validate", config)
    assert_one_line_error(rc, err, f"cannot be read (Permission denied); give the path of a station config this user "
                                   f"({user_name()}) may read")
