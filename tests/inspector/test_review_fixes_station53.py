"""Review of audit 53's station fixes: what still passed validation or still split an error over lines."""

from __future__ import annotations

import pytest
import yaml

from inspector.config import config_errors

STATION = ("station: {name: s1}\nmodel: {path: m.ckpt}\nsource: {type: mqtt}\nmqtt: {prefix: a/b}\n"
           "store: {data_dir: data}\n")


def _write(tmp_path, key: str, value, base: str = STATION):
    data = yaml.safe_load(base)
    *parents, last = key.split(".")
    at = data
    for part in parents:
        at = at.setdefault(part, {})
    at[last] = value
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- 1. http.host and mqtt.host share one check -------------------------------------------------------------------

@pytest.mark.parametrize("host, said", [
    ("http://0.0.0.0", "is a URL; give the host alone (0.0.0.0)"),
    ("https://0.0.0.0:9111/", "is a URL; give the host alone (0.0.0.0) and the port as http.port: 9111"),
    ("http://0.0.0.0:9111/metrics", "is a URL; give the host alone (0.0.0.0) and the port as http.port: 9111"),
    ("0.0.0.0:9111", "is a host and a port; give the host alone (0.0.0.0) and the port as http.port: 9111"),
    ("[::1]:9111", "is a host and a port; give the host alone (::1) and the port as http.port: 9111"),
    ("[::]", "is an address in brackets; give the host alone (::)"),
    (" 0.0.0.0", "has spaces around it; give '0.0.0.0' without them"),
    ("", "is empty; give the address to listen on (0.0.0.0: every interface), e.g. 127.0.0.1"),
])
def test_an_http_host_given_as_a_url_or_host_and_port_is_refused_naming_http_port(tmp_path, host, said):
    """It passed `config validate`, and the station's start failed naming something else."""
    cfg, errors = config_errors(_write(tmp_path, "http.host", host))
    assert cfg is None and len(errors) == 1 and f"http.host: {said}" in errors[0], errors
    assert "mqtt.port" not in errors[0]


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
