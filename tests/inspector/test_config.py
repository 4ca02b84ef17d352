"""Station configs: the examples validate, mistakes are reported with their file and line, secrets come from the environment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.config import CameraSource, StationConfig, config_errors, deep_merge, load_config
from model.errors import InspectorError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = """\
station:
  name: st1
model:
  path: /models/m.ckpt
source:
  type: camera
  device: 0
mqtt:
  prefix: factory/line1/st1
store:
  data_dir: /var/lib/inspector/st1
"""


@pytest.mark.parametrize("kind", ["camera", "stream", "video", "folder", "mqtt"])
def test_every_example_config_validates(kind, capsys):
    path = CONFIGS / f"station-{kind}.yaml"
    cfg = load_config(path)
    assert cfg.source.type == kind
    assert main(["config", "validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_errors_name_file_line_and_key(tmp_path, capsys):
    bad = BASE.replace("  device: 0\n", "  device: 0\n  widht: 640\n").replace("  path: /models/m.ckpt\n", "  path: /models/m.ckpt\n  batch_size: many\n")
    bad += "mqtt_extra: 1\n"
    f = tmp_path / "s.yaml"
    f.write_text(bad)
    cfg, errors = config_errors(f)
    assert cfg is None
    assert f"{f}:5: model.batch_size: Input should be a valid integer (got 'many')" in errors
    assert f"{f}:9: source.widht: unknown key" in "\n".join(errors)
    assert any(e.startswith(f"{f}:14: mqtt_extra: unknown key") for e in errors)
    assert main(["config", "validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "Traceback" not in err
    assert main(["config", "validate", str(f), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["valid"] is False
    with pytest.raises(InspectorError, match=r"3 problem\(s\)"):
        load_config(f)
    assert main(["serve", "--config", str(f)]) == 2  # serve refuses, a problem a line as validate prints them (one line before)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: config {f}: 3 problems:" and err[1].startswith(f"  {f}:") and len(err) == 4


@pytest.mark.parametrize(("text", "expect"), [
    ("station: [\n", ":2: not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    (BASE.replace("type: camera", "type: webcam"), ":6: source.type: Input tag 'webcam'"),
    (BASE.replace("name: st1", "name: ../../etc"), ":2: station.name: use 1-64 ASCII letters"),
    # a German or Chinese name: "use letters" named no fix for a name of letters (ü, 工 are letters too)
    (BASE.replace("name: st1", "name: Prüf-工位3"), ":2: station.name: use 1-64 ASCII letters (A-Z, a-z)"),
    (BASE.replace("prefix: factory/line1/st1", "prefix: factory/#"), ":9: mqtt.prefix: give topic levels"),
    (BASE.replace("prefix: factory/line1/st1", "prefix: $SYS/line1/st1"), ":9: mqtt.prefix: topics beginning with $ are the broker's own"),
    (BASE.replace("  path: ", "  mm_per_px: 1e160\n  path: ", 1), "model.mm_per_px: Input should be less than or equal to 1000"),
    (BASE + "http:\n  port: '9108'\n", ":13: http.port: Input should be a valid integer"),
    (BASE.replace("type: camera\n  device: 0", "type: folder\n  path: /var/lib/inspector/st1"), "source.path and store.data_dir must differ"),
    (BASE.replace("device: 0", "device: /dev/video2"), None),
    (BASE.replace("  path: /models/m.ckpt\n", "  path: /models/m.ckpt\n  device: gpu\n"), ":5: model.device: 'gpu': use cpu, cuda, tensorrt"),
    (BASE.replace("  path: /models/m.ckpt\n", "  path: /models/m.ckpt\n  device: cuda:1\n"), None),
    (BASE.replace("  path: /models/m.ckpt\n", "  path: /models/m.ckpt\n  image_threshold: .nan\n"), "model.image_threshold: Input should be a finite number"),
    (BASE.replace("  path: /models/m.ckpt\n", "  path: /models/m.ckpt\n  mm_per_px: .inf\n"), "model.mm_per_px: Input should be a finite number"),
    (BASE + "reports:\n  lang: fr\n", "reports.lang: Input should be 'en', 'zh' or 'es'"),
    (BASE + "reports:\n  timezone: CEST\n", ":13: reports.timezone: time zone 'CEST': unknown; give an IANA name such as Europe/Berlin"),
    (BASE + "reports:\n  timezone: Europe/Berlin\n", None),
    (BASE + "reports:\n  logo: /nowhere/logo.png\n", ":12: reports: report logo /nowhere/logo.png: no such file; give a PNG, JPEG or SVG file"),
    # before: validated, then the folder source's thread died (OverflowError) and nothing was inspected
    (BASE.replace("type: camera\n  device: 0", "type: folder\n  path: /in\n  poll_s: .inf"), ":8: source.poll_s: Input should be a finite number"),
    (BASE + "watchdog:\n  stall_s: 1e10\n", ":13: watchdog.stall_s: Input should be less than or equal to 2592000"),
    (BASE + "store:\n  data_dir: /tmp/a\n", ":12: store is given twice (also on line 10); keep one"),  # the last won, silently
    (BASE.replace("  device: 0\n", "  device: 0\n  device: 1\n"), ":8: source.device is given twice (also on line 7)"),
    (BASE + "watchdog:\n  interval_s: 2e-1\n", None),
    # before: valid, then the replay fell back to 25 fps; the delays went up, not down
    (BASE.replace("type: camera\n  device: 0", "type: video\n  path: /v.mp4\n  fps: 0"), ":8: source.fps: give a replay rate above 0"),
    (BASE.replace("device: 0", "device: 0\n  reconnect: {initial_s: 5, max_s: 1}"), ":8: source.reconnect: initial_s 5.0 is above max_s 1.0"),  # a string before: "not a valid number"
    (BASE.replace("  prefix: factory/line1/st1\n", "  prefix: factory/line1/st1\n  protocol: 5\n"),
     "mqtt.protocol: Input should be '5' or '3.1.1' (got 5); YAML read it as a number: quote it, '5'"),
    # a name the loader of 2026-11-26 read as text
    (BASE.replace("name: st1", "name: 1e5"), ":2: station.name: Input should be a valid string (got 100000.0); YAML read it as a number: put it in quotes"),
    (BASE.replace("name: st1", "name: no"), ":2: station.name: Input should be a valid string (got False); YAML read it as true/false: put"),
])
def test_mistakes_are_reported_with_lines(tmp_path, text, expect):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    cfg, errors = config_errors(f)
    if expect is None:
        assert cfg is not None and not errors
    else:
        assert cfg is None and any(expect in e for e in errors), errors


@pytest.mark.parametrize("reports", ["", "reports:\n  lang: es\n"])
def test_a_tz_that_names_no_zone_is_a_config_problem_where_the_reports_clock_is_local(tmp_path, monkeypatch, reports):
    """reports.timezone left at local (unvalidated default) with TZ=Europe/Berln: the station started, and its reports
    showed UTC times labelled "Europe"; refusing that only when the daemon made its first report was a traceback."""
    monkeypatch.setenv("TZ", "Europe/Berln")
    f = tmp_path / "s.yaml"
    f.write_text(BASE + reports)
    cfg, errors = config_errors(f)
    assert cfg is None and len(errors) == 1 and "$TZ 'Europe/Berln' names no zone" in errors[0], errors


def test_station_overrides_deep_merge_over_defaults(tmp_path):
    (tmp_path / "site.yaml").write_text(BASE.replace("mqtt:\n", "mqtt:\n  host: broker.site\n  port: 8883\n")
                                        .replace("prefix: factory/line1/st1", "prefix: site/default")
                                        .replace("data_dir: /var/lib/inspector/st1", "data_dir: /d\n  save_images: fail"))
    (tmp_path / "st.yaml").write_text("extends: site.yaml\nmqtt:\n  prefix: site/line2/st9\nstore:\n  save_images: all\n  data_dir: /d9\n")
    cfg = load_config(tmp_path / "st.yaml")
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.prefix) == ("broker.site", 8883, "site/line2/st9")
    assert (cfg.store.save_images, cfg.store.data_dir) == ("all", "/d9")
    assert isinstance(cfg.source, CameraSource) and cfg.source.device == 0
    assert deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": 3}, "l": [2]}) == {"a": {"b": 3, "c": 2}, "l": [2]}
    # an error inside the defaults file points at the defaults file
    (tmp_path / "site.yaml").write_text((tmp_path / "site.yaml").read_text().replace("port: 8883", "port: eighty"))
    _, errors = config_errors(tmp_path / "st.yaml")
    assert any(e.startswith(f"{tmp_path / 'site.yaml'}:") and "mqtt.port" in e for e in errors), errors
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    assert "loops back" in config_errors(tmp_path / "loop.yaml")[1][0]


def test_password_comes_from_the_environment(tmp_path, monkeypatch):
    f = tmp_path / "s.yaml"
    f.write_text(BASE.replace("  prefix: factory/line1/st1\n", "  prefix: factory/line1/st1\n  username: st1\n  password_env: ST1_PW\n"))
    cfg = load_config(f)
    monkeypatch.delenv("ST1_PW", raising=False)
    with pytest.raises(InspectorError, match="environment variable ST1_PW is not set"):
        cfg.mqtt.password()
    monkeypatch.setenv("ST1_PW", "s3cret")
    assert cfg.mqtt.password() == "s3cret" and "s3cret" not in cfg.model_dump_json()
    f.write_text(BASE.replace("  prefix: factory/line1/st1\n", "  prefix: factory/line1/st1\n  password_env: 'hunter2!'\n"))
    assert "NAME of an environment variable" in "\n".join(config_errors(f)[1])


def test_schema_describes_every_field(capsys):
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    missing = []

    def walk(node, where):
        for name, prop in (node.get("properties") or {}).items():
            if not prop.get("description"):
                missing.append(f"{where}.{name}")
    walk(schema, "station")
    for name, d in schema["$defs"].items():
        walk(d, name)
    assert not missing, missing
    assert StationConfig.model_fields["source"].discriminator == "type"


def test_report_languages_are_the_ones_reports_render():
    from typing import get_args

    from inspector.config import ReportsSection
    from reports import LANGUAGES

    assert set(get_args(ReportsSection.model_fields["lang"].annotation)) == set(LANGUAGES)


def test_validate_here_finds_what_serve_would_refuse_at_start(tmp_path, tiny_ckpt, capsys):
    """`config validate` said valid to a missing model, a missing folder, an unwritable store and a busy port."""
    import socket

    (tmp_path / "in").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    good = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "folder", "path": str(tmp_path / "in")},
            "mqtt": {"prefix": "f/st1"}, "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}}
    bad = deep_merge(good, {"model": {"path": str(tmp_path / "nowhere.ckpt")}, "source": {"path": str(tmp_path / "gone")},
                            "store": {"data_dir": str(blocker / "data")}, "http": {"port": busy.getsockname()[1]},
                            "mqtt": {"allowed_dirs": [str(tmp_path / "in"), str(tmp_path / "shared")]}})
    try:
        for name, config in (("good", good), ("bad", bad)):
            (tmp_path / f"{name}.yaml").write_text(json.dumps(config))
        assert main(["config", "validate", str(tmp_path / "bad.yaml")]) == 0  # the file itself is fine
        assert main(["config", "validate", "--here", str(tmp_path / "good.yaml")]) == 0
        assert "this machine can run it (the model loads on cpu" in capsys.readouterr().out  # the same line as without --here
        assert main(["config", "validate", "--here", "--json", str(tmp_path / "bad.yaml")]) == 1
        errors = json.loads(capsys.readouterr().out)["errors"]
    finally:
        busy.close()
    assert len(errors) == 5, errors
    assert "nowhere.ckpt: no such file or directory" in errors[0] and "source.path" in errors[1] and "no such folder" in errors[1]
    assert errors[2] == f"mqtt.allowed_dirs {tmp_path / 'shared'}: no such folder; create it, fix its permissions or the path"
    assert "a-file is not a folder this user can write to" in errors[3] and "cannot listen" in errors[4]
    (tmp_path / "full.yaml").write_text(json.dumps(deep_merge(good, {"store": {"min_free_mb": 2**40}})))  # more than any disk here
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "full.yaml")]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert len(errors) == 1 and "MB free, below store.min_free_mb" in errors[0], errors


def test_validate_here_notes_a_silent_broker_and_relative_paths(tmp_path, tiny_ckpt, capsys, monkeypatch):
    """"This machine can run it" was said with the broker down (serve then started degraded), and nothing said that
    relative paths are read from the folder serve starts in."""
    import socket

    monkeypatch.chdir(tmp_path)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
    base = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "mqtt"},
            "mqtt": {"prefix": "f/st1", "host": "127.0.0.1", "port": closed.getsockname()[1]}, "store": {"data_dir": "data"},
            "http": {"port": 0}}
    try:
        (tmp_path / "down.yaml").write_text(json.dumps(base))
        assert main(["config", "validate", "--here", "--json", "down.yaml"]) == 0  # notes, not problems
        notes = json.loads(capsys.readouterr().out)["notes"]
        assert notes[0].startswith(f"broker 127.0.0.1:{closed.getsockname()[1]} does not answer now (Connection refused)")
        assert notes[1] == f"store.data_dir is relative: read from the folder serve starts in ({tmp_path} here); under systemd give absolute paths"
        up = deep_merge(base, {"mqtt": {"port": listening.getsockname()[1]}, "store": {"data_dir": str(tmp_path / "data")}})
        (tmp_path / "up.yaml").write_text(json.dumps(up))
        assert main(["config", "validate", "--here", "up.yaml"]) == 0
        assert "note:" not in capsys.readouterr().out
        # a threshold that would scrap every good part: "this machine can run it", unqualified, before
        (tmp_path / "low.yaml").write_text(json.dumps(deep_merge(up, {"model": {"image_threshold": -1e9}})))
        assert main(["config", "validate", "--here", "low.yaml"]) == 0
        assert "note: model.image_threshold -1e+09 (over the model's): fails 100.0% of the good calibration images;" \
            in capsys.readouterr().out
        low = shutil.copytree(tiny_ckpt, tmp_path / "low.ckpt")
        assert main(["threshold", str(low), "--set", "-1e9"]) == 0
        (tmp_path / "low2.yaml").write_text(json.dumps(deep_merge(up, {"model": {"path": str(low)}})))
        capsys.readouterr()
        assert main(["config", "validate", "--here", "low2.yaml"]) == 0
        assert f"note: model {low}: this threshold fails 100.0% of the good calibration images; `inspector threshold {low} --far 0.05`" \
            in capsys.readouterr().out
    finally:
        listening.close()
        closed.close()


def test_validate_here_judges_the_verification_images(tmp_path, tiny_ckpt, tiny_data, capsys):
    good, defect = str(tiny_data / "test" / "good" / "000.png"), str(tiny_data / "test" / "blob" / "000.png")
    base = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt), "verify_good": [good], "verify_defect": [defect]},
            "source": {"type": "mqtt"}, "mqtt": {"prefix": "f/st1"}, "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}}
    (tmp_path / "right.yaml").write_text(json.dumps(base))
    assert main(["config", "validate", "--here", str(tmp_path / "right.yaml")]) == 0
    assert "the model loads on cpu and judges its 2 verification images right" in capsys.readouterr().out
    swapped = deep_merge(base, {"model": {"verify_good": [defect], "verify_defect": [good]}})
    (tmp_path / "swapped.yaml").write_text(json.dumps(swapped))
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "swapped.yaml")]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert len(errors) == 1 and f"misjudged 2 of its 2 verification images: model.verify_good {defect} FAIL" in errors[0], errors
    assert errors[0].endswith("(and 1 more); fix the model or its threshold, or the images listed")
    strict = deep_merge(base, {"model": {"image_threshold": -1e6}})  # the config's own threshold is the one judged with
    (tmp_path / "strict.yaml").write_text(json.dumps(strict))
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "strict.yaml")]) == 1
    assert "model.verify_good" in json.loads(capsys.readouterr().out)["errors"][0]
    (tmp_path / "typed.yaml").write_text(json.dumps(deep_merge(base, {"model": {"verify_good": good}})))
    assert main(["config", "validate", "--json", str(tmp_path / "typed.yaml")]) == 1  # a path, not a list of them
    assert "verify_good" in json.loads(capsys.readouterr().out)["errors"][0]


def test_validate_here_on_tensorrt_finds_the_verification_images_it_cannot_judge(tmp_path, tiny_ckpt, tiny_data, capsys, monkeypatch):
    """TensorRT engines are built by serve, so --here judged nothing there, nor said that an image was missing."""
    import types

    import model.errors

    monkeypatch.setattr(model.errors, "need", lambda *a: types.SimpleNamespace(get_available_providers=lambda: ["TensorrtExecutionProvider"]))
    good = str(tiny_data / "test" / "good" / "000.png")
    base = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt), "device": "tensorrt", "verify_good": [good]},
            "source": {"type": "mqtt"}, "mqtt": {"prefix": "f/st1"}, "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}}
    (tmp_path / "there.yaml").write_text(json.dumps(base))
    assert main(["config", "validate", "--here", str(tmp_path / "there.yaml")]) == 0
    assert "its 1 verification images are there, judged when serve has built its TensorRT engines" in capsys.readouterr().out
    (tmp_path / "gone.yaml").write_text(json.dumps(deep_merge(base, {"model": {"verify_defect": [str(tmp_path / "gone.png")]}})))
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "gone.yaml")]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == [f"model.verify_defect: {tmp_path / 'gone.png'}: no such file; give images of parts that exist"]


def test_validate_here_refuses_what_serve_refuses_of_the_broker_and_opens_no_camera(tmp_path, tiny_ckpt, capsys, monkeypatch):
    """--here said "this machine can run it (... source, store and port checked)" of a copy of station-camera.yaml; serve
    then refused the unset password variable, and no camera had been opened nor was there one."""
    monkeypatch.delenv("INSPECTOR_TEST_PW", raising=False)
    camera = "/dev/inspector-test-no-camera"
    base = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "camera", "device": camera},
            "mqtt": {"prefix": "f/st1", "username": "station3", "password_env": "INSPECTOR_TEST_PW"},
            "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}}
    (tmp_path / "camera.yaml").write_text(json.dumps(base))
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "camera.yaml")]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == [
        "mqtt.password_env: environment variable INSPECTOR_TEST_PW is not set; export it or remove password_env"]
    assert main(["serve", "--config", str(tmp_path / "camera.yaml")]) == 2  # the same line as serve's
    assert capsys.readouterr().err.strip().endswith("environment variable INSPECTOR_TEST_PW is not set; export it or remove password_env")

    monkeypatch.setenv("INSPECTOR_TEST_PW", "secret")
    assert main(["config", "validate", "--here", str(tmp_path / "camera.yaml")]) == 0
    out = capsys.readouterr().out
    assert "(the model loads on cpu, MQTT password variable and store checked; source camera:/dev/inspector-test-no-camera not opened by --here)" in out
    assert f"note: source.device {camera}: {camera} does not exist on this machine; serve would start and keep trying" in out

    pem = tmp_path / "not-a-cert.pem"
    pem.write_text("not PEM")
    for tls, error in (({"ca_file": str(tmp_path / "gone.crt")}, f"mqtt.tls.ca_file {tmp_path / 'gone.crt'}: no such file; fix the path"),
                       ({"cert_file": str(pem), "key_file": str(pem)}, "cannot load the TLS files in mqtt.tls")):  # as serve loads them
        (tmp_path / "tls.yaml").write_text(json.dumps(deep_merge(base, {"mqtt": {"tls": tls}})))
        assert main(["config", "validate", "--here", "--json", str(tmp_path / "tls.yaml")]) == 1
        errors = json.loads(capsys.readouterr().out)["errors"]
        assert len(errors) == 1 and error in errors[0] and "read it" not in errors[0], errors  # a missing file is no permission

    (tmp_path / "video.yaml").write_text(json.dumps({**base, "source": {"type": "video", "path": str(pem)}}))
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "video.yaml")]) == 1  # serve refuses it at start
    assert json.loads(capsys.readouterr().out)["errors"] == [f"source video:not-a-cert.pem: OpenCV cannot open {pem}; is it a video file?"]


def test_validate_here_says_a_camera_url_once_as_a_warning_in_its_own_process(tmp_path, tiny_ckpt):
    """The source's warning that source.device is a URL was logged, with no log set up outside `serve`: printed bare
    by Python's last resort, twice (--here builds the source twice), and not at all in a test's process (pytest's)."""
    import subprocess
    import sys

    cfg = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "camera", "device": "rtsp://cam.local/s"},
           "mqtt": {"prefix": "f/st1", "port": 1}, "store": {"data_dir": str(tmp_path / "data")}, "http": {"enabled": False}}
    (tmp_path / "url.yaml").write_text(json.dumps(cfg))
    run = subprocess.run([sys.executable, "-m", "inspector", "config", "validate", "--here", "--json", str(tmp_path / "url.yaml")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and json.loads(run.stdout)["valid"], run.stderr
    assert run.stderr.splitlines() == ["warning: source camera:rtsp://cam.local/s: source.device is a URL; it is read as a stream is "
                                       "(type: stream, url: ... says so)"]


def test_validate_here_broker_hint_starts_a_broker_serve_connects_to(tmp_path, tiny_ckpt, capsys, monkeypatch, mosquitto_bin):
    """The hint was `mosquitto -c configs/mosquitto.conf`, which on a fresh machine exits 13 (no password file, no
    certificates) with nothing on screen; the command now given is run here, and the station's client connects to it."""
    import re
    import shlex
    import socket
    import subprocess

    from inspector.daemon import broker_client
    from inspector.demo.broker import free_port
    from tests.inspector.conftest import wait_until

    monkeypatch.setenv("INSPECTOR_TEST_PW", "secret")
    port = free_port()
    cfg = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "mqtt"},
           "mqtt": {"prefix": "f/st1", "port": port, "username": "station3", "password_env": "INSPECTOR_TEST_PW", "connect_timeout_s": 5},
           "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}}
    (tmp_path / "s.yaml").write_text(json.dumps(cfg))
    assert main(["config", "validate", "--here", "--json", str(tmp_path / "s.yaml")]) == 0
    note = json.loads(capsys.readouterr().out)["notes"][0]
    assert "mosquitto -c" not in note and "for a line, `inspector config example broker` gives a config that needs a password file, the ACL `inspector config example acl` gives, and certificates first" in note
    command = re.search(r"to try it: (mosquitto -p \d+) on this host", note).group(1)
    proc = subprocess.Popen(shlex.split(command.replace("mosquitto", mosquitto_bin, 1)), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    def answers() -> bool:
        with socket.socket() as s:
            return proc.poll() is not None or s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(answers, 10, "the hinted broker")
        assert proc.poll() is None, "the hinted command exited"
        assert main(["config", "validate", "--here", "--json", str(tmp_path / "s.yaml")]) == 0
        assert not json.loads(capsys.readouterr().out)["notes"]
        client = broker_client(load_config(tmp_path / "s.yaml"))
        client.start()  # raises if the broker refused the station's user and password
        assert client.connected
        client.stop()
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_id_with_a_trailing_newline_is_not_safe():
    from inspector.config import SAFE_ID

    assert SAFE_ID.match("LOT7.P1") and not SAFE_ID.match("NL\n")  # `$` matched before a final newline: "X\n" became X_


def test_config_errors_echo_no_password_and_extends_reads_only_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: /etc/passwd\n" + BASE)
    cfg, errors = config_errors(tmp_path / "a.yaml")
    assert cfg is None and len(errors) == 1 and "`extends` must name a .yaml or .yml file" in errors[0], errors
    assert ":0:0:" not in errors[0]  # /etc/passwd's lines were printed as unknown keys
    (tmp_path / "b.yaml").write_text(BASE.replace("prefix: factory/line1/st1", "prefix: factory/line1/st1\n  password_env: hunter2-secret!"))
    cfg, errors = config_errors(tmp_path / "b.yaml")
    assert cfg is None and any("mqtt.password_env: give the NAME" in e for e in errors) and not any("hunter2" in e for e in errors), errors


def test_a_config_that_cannot_be_read_is_one_line_naming_it_once(tmp_path, capsys):
    """`serve --config nonexist.yaml` said `config nonexist.yaml: config nonexist.yaml: no such file`; `config validate`
    of a missing file exited 1, as for a config with problems: there is no file to validate (bad input, exit 2)."""
    from tests.cli import assert_one_line_error, cli

    missing = tmp_path / "nonexist.yaml"
    for argv in (["serve", "--config", missing], ["config", "validate", missing], ["config", "validate", "--json", missing],
                 ["review", "--config", missing, "some-id", "--truth", "good"], ["bench", "serve", "--config", missing]):
        rc, out, err = cli(capsys, *argv)
        assert_one_line_error(rc, err, f"config {missing}: no such file; check the path")
        assert err.count(str(missing)) == 1 and out == "", err
    with pytest.raises(InspectorError) as exc:
        load_config(missing)
    assert str(exc.value).count(str(missing)) == 1
    rc, _, err = cli(capsys, "config", "validate", tmp_path)  # a folder: its reason, not Python's text naming it again
    assert_one_line_error(rc, err, f"config {tmp_path}: cannot be read (Is a directory)")
    assert err.count(str(tmp_path)) == 1

    # readable, with one problem: serve names the file once, with the line; validate keeps exit 1 for a config with problems
    for text, needle in (("station: [\n", ":2: not valid YAML"), (BASE.replace("name: st1", "name: ../x"), ":2: station.name: use 1-64")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        rc, _, err = cli(capsys, "serve", "--config", bad)
        assert_one_line_error(rc, err, f"config {bad}{needle}")
        assert err.count(str(bad)) == 1, err
        assert cli(capsys, "config", "validate", bad)[0] == 1
    # what a readable file extends is one of its problems (exit 1), said with the file that names it
    (tmp_path / "st.yaml").write_text("extends: gone.yaml\n")
    rc, _, err = cli(capsys, "config", "validate", tmp_path / "st.yaml")
    assert rc == 1 and f"config {tmp_path / 'gone.yaml'}: no such file" in err and f"(extended by {tmp_path / 'st.yaml'})" in err, err


@pytest.mark.parametrize("bad", ["hmi/#/x", "hmi/a+", "", "hmi/#x"])
def test_response_topics_must_be_topic_filters(bad):
    from pydantic import ValidationError

    base = {"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"}, "store": {"data_dir": "d"}}
    assert StationConfig.model_validate({**base, "mqtt": {"prefix": "p", "response_topics": ["hmi/+/replies", "hmi/#"]}})
    with pytest.raises(ValidationError, match="is not a topic filter"):
        StationConfig.model_validate({**base, "mqtt": {"prefix": "p", "response_topics": [bad]}})


def test_a_video_at_max_with_an_interval_is_refused():
    """It decoded every frame as fast as it could to inspect one a second: a full core, and which frame depended on speed."""
    from pydantic import ValidationError

    base = {"station": {"name": "s"}, "model": {"path": "m"}, "mqtt": {"prefix": "p"}, "store": {"data_dir": "d"}}
    video = {"type": "video", "path": "v.avi", "mode": "continuous", "interval_s": 1.0}
    assert StationConfig.model_validate({**base, "source": {**video, "fps": "native"}})
    with pytest.raises(ValidationError, match="interval_s with fps: max"):
        StationConfig.model_validate({**base, "source": {**video, "fps": "max"}})
