"""The daemon's inputs fuzzed (MQTT payloads, topics and properties; the station config): each hostile input
gets one clear line, the station keeps serving, nothing accepted is lost."""

from __future__ import annotations

import os
import threading

import pytest

from inspector.config import config_errors, load_config
from model.errors import InspectorError

STATION = ("station: {name: s1}\nmodel: {path: m.ckpt}\nsource: {type: mqtt}\nmqtt: {prefix: a/b}\n"
           "store: {data_dir: data}\n")


# -- the station config --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nested", ["[" * 2000, "{a: " * 2000])
def test_a_config_nested_too_deeply_is_one_line_not_a_traceback(tmp_path, nested):
    """A YAML file a few hundred brackets deep (a paste gone wrong, a generated file) raised RecursionError out of the
    loader: `config validate` and `serve` ended in a traceback."""
    path = tmp_path / "station.yaml"
    path.write_text(STATION + f"reports: {nested}\n")
    cfg, errors = config_errors(path)
    assert cfg is None and len(errors) == 1 and "nested too deeply" in errors[0] and "\n" not in errors[0], errors
    with pytest.raises(InspectorError, match="nested too deeply"):
        load_config(path)


def test_a_logo_that_is_a_fifo_is_refused_unread(tmp_path):
    """reports.logo naming a FIFO held `config validate` and `serve` for good (the letterhead read it whole, waiting for a
    writer), and /dev/zero was read until memory ran out: what is no regular file is refused by its key, unread."""
    fifo = tmp_path / "logo.png"
    os.mkfifo(fifo)
    path = tmp_path / "station.yaml"
    path.write_text(STATION + f"reports: {{logo: {fifo}}}\n")
    out: list = []
    t = threading.Thread(target=lambda: out.append(config_errors(path)), daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # let the blocked reader go before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(5)
    assert out, "config_errors waited on the FIFO"
    cfg, errors = out[0]
    assert cfg is None and len(errors) == 1, errors
    assert f"report logo {fifo}: not a regular file (a device, FIFO or socket); give a PNG, JPEG or SVG file" in errors[0]
    for special in ("/dev/zero", str(tmp_path)):
        path.write_text(STATION + f"reports: {{logo: {special}}}\n")
        cfg, errors = config_errors(path)
        assert cfg is None and len(errors) == 1 and f"report logo {special}: " in errors[0], errors


@pytest.mark.parametrize("key, value", [
    ("mqtt.tls.ca_file", "ca\0.pem"),  # serve: ValueError traceback
    ("mqtt.allowed_dirs", ["/srv/in\0"]),  # serve: ValueError traceback
    ("store.data_dir", "data\0"),  # serve: ValueError traceback
    ("http.host", "127.0.0.1\0"),  # serve: TypeError traceback
    ("mqtt.client_id", "st\0"),  # the broker dropped every connect: never online, nothing said but "no answer to CONNECT"
    ("mqtt.username", "u\0"),
    ("reports.logo", "logo\0.png"),  # "reports: embedded null byte", naming no key
    ("mqtt.host", ""),  # serve: paho's "Invalid host." traceback
])
def test_a_value_the_start_would_crash_on_is_refused_by_its_key(tmp_path, key, value):
    """Values that passed validation and then ended `serve` in a traceback, or left it never connected with nothing said."""
    cfg, errors = config_errors(_write(tmp_path, key, value))
    assert cfg is None and len(errors) == 1, errors
    assert f": {key}: " in errors[0] and ("NUL character" in errors[0] or "is empty; give the broker's host" in errors[0]), errors


def _write(tmp_path, key: str, value):
    """STATION with `key` (dotted: a section's, or a whole section) set to `value`, written as tmp_path/station.yaml."""
    import yaml

    data = yaml.safe_load(STATION)
    *parents, last = key.split(".")
    at = data
    for part in parents:
        at = at.setdefault(part, {})
    at[last] = value
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("key", ["mqtt.prefix", "mqtt.client_id", "mqtt.username", "sparkplug.group_id", "sparkplug.device_id"])
def test_a_name_longer_than_mqtt_takes_is_refused_by_its_key_and_not_echoed_whole(tmp_path, key):
    """A prefix, client id or user name over MQTT's 65535 bytes (a file pasted in) passed validation, and serve ended in
    paho's `struct.error: 'H' format requires 0 <= number <= 65535`; the refusal echoes a part of the value, not 70 kB."""
    cfg, errors = config_errors(_write(tmp_path, key, "p" * 70_000))
    assert cfg is None and len(errors) == 1, errors
    assert f": {key}: is 70,000 bytes long;" in errors[0] and len(errors[0]) < 600, errors[0][:700]


def test_a_password_longer_than_mqtt_takes_is_one_line_at_start(tmp_path, monkeypatch):
    from inspector.config import MqttSection

    monkeypatch.setenv("FZ53_PW", "x" * 70_000)
    with pytest.raises(InspectorError, match="mqtt.password_env: the password in FZ53_PW is 70,000 bytes long"):
        MqttSection(prefix="a", username="u", password_env="FZ53_PW").password()


# -- MQTT inputs -----------------------------------------------------------------------------------------------------

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
    commands: list = []
    intake = Intake(cfg, Store(tmp_path / "data"), queue.Queue(8), Metrics(), Topics("p"),
                    publish=lambda topic, body, reply=None: sent.append((topic, json.loads(body))), republish=lambda r, c: None,
                    on_command=lambda cmd, reply: commands.append(cmd))
    intake.sent, intake.commands = sent, commands
    return intake


def _feed(intake, topic: str, payload: bytes) -> str | None:
    """The error line the intake answered one message with, or None when it took it (a part queued, a command run)."""
    from inspector.mqtt import Message

    intake.sent.clear()
    intake._message(Message(f"p/{topic}", payload, 1, 1))
    assert len(intake.sent) <= 1, intake.sent
    return intake.sent[0][1]["error"] if intake.sent else None


def test_a_key_given_twice_in_a_trigger_or_command_is_refused_not_the_last_taken(tmp_path, good_png):
    """json.loads let the last of two keys win: a trigger naming two serials was inspected under the second with no
    word (the part filed under a serial its sender may not have meant), and {"command": "reload", "command": "review"}
    was taken as a review."""
    import base64

    intake = _intake(tmp_path)
    image = base64.b64encode(good_png)
    assert _feed(intake, "trigger", b'{"serial": "A7", "base64": "' + image + b'", "serial": "B2"}') == \
        "trigger: 'serial' is given twice; give it once"
    assert intake.jobs.empty()
    assert _feed(intake, "command", b'{"command": "shift_report", "command": "reload"}') == "command: 'command' is given twice; give it once"
    assert not intake.commands
    # each key once: taken as before
    assert _feed(intake, "trigger", b'{"serial": "A7", "base64": "' + image + b'"}') is None
    assert intake.jobs.get_nowait().serial == "A7"
    assert _feed(intake, "command", b'{"command": "reload"}') is None and len(intake.commands) == 1


def test_an_empty_command_on_mqtt_3_1_1_may_be_a_cleared_retained_one_and_is_said_so(tmp_path):
    """A retained command is refused with 'clear this one with an empty retained message'; on MQTT 3.1.1 the broker hands
    that clearing to the running station without its retain flag, and the station answered its own advice with 'command:
    empty payload; send a JSON object' (a trigger's or image's clearing is said to be one perhaps)."""
    hint = " (or, if it cleared a retained message, ignore this: MQTT 3.1.1 cannot tell the two apart)"
    assert _feed(_intake(tmp_path / "a", protocol="3.1.1"), "command", b"") == "command: empty payload; send a JSON object" + hint
    assert _feed(_intake(tmp_path / "b"), "command", b"") == "command: empty payload; send a JSON object"  # MQTT 5 tells them apart


def test_a_tls_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    """mqtt.tls.ca_file naming a FIFO held `serve` (and `config validate --here`) at open() for good, saying nothing."""
    from inspector.config import Tls

    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    out: list = []

    def check() -> None:
        try:
            Tls(ca_file=str(fifo)).check_files()
            out.append(None)
        except InspectorError as exc:
            out.append(str(exc))

    t = threading.Thread(target=check, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # let the blocked open go before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
    assert out == [f"mqtt.tls.ca_file {fifo}: not a regular file (a device, FIFO or socket); give a PEM file"]


@pytest.mark.parametrize("key, host, said", [
    ("mqtt.host", "mqtt://broker.local", "is a URL; give the host alone (broker.local)"),
    ("mqtt.host", "mqtts://broker.local:8883",
     "is a URL; give the host alone (broker.local) and the port as mqtt.port: 8883; TLS goes in mqtt.tls"),
    ("mqtt.host", "broker.local:1883", "is a host and a port; give the host alone (broker.local) and the port as mqtt.port: 1883"),
    ("mqtt.host", "[::1]:1884", "is a host and a port; give the host alone (::1) and the port as mqtt.port: 1884"),
    ("http.host", "http://0.0.0.0", "is a URL; give the host alone (0.0.0.0)"),
    ("http.host", "https://0.0.0.0:9111/", "is a URL; give the host alone (0.0.0.0) and the port as http.port: 9111"),
    ("http.host", "http://0.0.0.0:9111/metrics", "is a URL; give the host alone (0.0.0.0) and the port as http.port: 9111"),
    ("http.host", "0.0.0.0:9111", "is a host and a port; give the host alone (0.0.0.0) and the port as http.port: 9111"),
    ("http.host", "[::1]:9111", "is a host and a port; give the host alone (::1) and the port as http.port: 9111"),
    ("http.host", "[::]", "is an address in brackets; give the host alone (::)"),
    ("http.host", " 0.0.0.0", "has spaces around it; give '0.0.0.0' without them"),
    ("http.host", "", "is empty; give the address to listen on (0.0.0.0: every interface), e.g. 127.0.0.1"),
])
def test_a_url_or_host_and_port_as_a_host_is_refused_naming_its_sections_port(tmp_path, key, host, said):
    """Other tools take a URL or host:port: given as mqtt.host it passed, and the station said only "unreachable"; as
    http.host it passed `config validate`, and the station's start failed naming something else (one check serves both)."""
    cfg, errors = config_errors(_write(tmp_path, key, host))
    assert cfg is None and len(errors) == 1 and f"{key}: {said}" in errors[0], errors
    other = "mqtt" if key == "http.host" else "http"
    assert f"{other}.port" not in errors[0]


@pytest.mark.parametrize("host", ["broker.local", "10.0.0.2", "::1", "fe80::1%eth0", "h"])
def test_a_host_name_or_address_is_taken(tmp_path, host):
    cfg, errors = config_errors(_write(tmp_path, "mqtt.host", host))
    assert cfg is not None and cfg.mqtt.host == host, errors


@pytest.mark.parametrize("key", ["source.poll_s", "watchdog.interval_s", "store.retention.every_s"])
def test_a_loops_period_too_short_to_be_meant_is_refused(tmp_path, key):
    """1e-300 passed validation, and that loop spun a core for good."""
    path = _write(tmp_path, key, 1e-300)
    if key == "source.poll_s":
        path.write_text(path.read_text().replace("type: mqtt", "type: folder\n  path: /srv/in"))
    cfg, errors = config_errors(path)
    assert cfg is None and len(errors) == 1 and f"{key}: " in errors[0] and "greater than or equal to 0.01" in errors[0], errors


def test_a_verification_image_that_is_a_fifo_is_named_so(tmp_path):
    """model.verify_defect naming a FIFO (or a device) was refused as 'no such file', of a path that is there."""
    from inspector.config import ModelSection
    from inspector.daemon import check_verification_files

    fifo = tmp_path / "defect.png"
    os.mkfifo(fifo)
    with pytest.raises(InspectorError, match=f"^model.verify_defect: {fifo}: not a regular file \\(a device, FIFO or socket\\); give images"):
        check_verification_files(ModelSection.model_construct(verify_good=[], verify_defect=[str(fifo)]))


@pytest.mark.parametrize("key", ["mqtt.connect_timeout_s", "mqtt.url_timeout_s"])
def test_a_network_timeout_too_short_to_be_met_is_refused(tmp_path, key):
    """1e-300 passed validation, and every connect or download then timed out."""
    cfg, errors = config_errors(_write(tmp_path, key, 1e-300))
    assert cfg is None and len(errors) == 1 and f"{key}: " in errors[0] and "greater than or equal to 0.1" in errors[0], errors
