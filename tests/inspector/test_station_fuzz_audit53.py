"""Audit 53: the daemon's inputs fuzzed (MQTT payloads, topics and properties; the station config): each hostile input
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
    assert "reports.logo: not a regular file (a device, FIFO or socket); give a PNG, JPEG or SVG file" in errors[0]
    for special in ("/dev/zero", str(tmp_path)):
        path.write_text(STATION + f"reports: {{logo: {special}}}\n")
        cfg, errors = config_errors(path)
        assert cfg is None and len(errors) == 1 and "reports.logo:" in errors[0], errors


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
    import yaml

    data = yaml.safe_load(STATION)
    section, *rest = key.split(".")
    at = data.setdefault(section, {})
    for part in rest[:-1]:
        at = at.setdefault(part, {})
    at[rest[-1]] = value
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg, errors = config_errors(path)
    assert cfg is None and len(errors) == 1, errors
    assert f": {key}: " in errors[0] and ("NUL character" in errors[0] or "is empty; give the broker's host" in errors[0]), errors


def _write(tmp_path, key: str, value) -> object:
    import yaml

    data = yaml.safe_load(STATION)
    section, *rest = key.split(".")
    at = data.setdefault(section, {})
    for part in rest[:-1]:
        at = at.setdefault(part, {})
    at[rest[-1]] = value
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
