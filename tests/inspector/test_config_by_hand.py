"""Station configs as a line engineer writes them by hand: defaults files, typos, secrets, quoting, odd YAML."""

from __future__ import annotations

import json

from inspector.cli import main
from inspector.config import config_errors, deep_merge, load_config
from tests.cli import assert_one_line_error, cli
from tests.inspector.test_config import BASE


def test_a_station_may_take_another_source_type_than_its_defaults(tmp_path):
    """The defaults' camera `device` was merged into the station's folder source and refused as an unknown key, said at the
    line of the defaults file (which is valid on its own)."""
    (tmp_path / "site.yaml").write_text(BASE)
    (tmp_path / "st.yaml").write_text("extends: site.yaml\nsource:\n  type: folder\n  path: /srv/in\n")
    cfg = load_config(tmp_path / "st.yaml")
    assert cfg.source.type == "folder" and cfg.source.path == "/srv/in"
    # the same type still merges key by key
    (tmp_path / "st2.yaml").write_text("extends: site.yaml\nsource:\n  type: camera\n  width: 640\n")
    cfg = load_config(tmp_path / "st2.yaml")
    assert (cfg.source.device, cfg.source.width) == (0, 640)
    assert deep_merge({"s": {"type": "a", "x": 1}}, {"s": {"type": "b"}}) == {"s": {"type": "b"}}
    # an error in the replacing source is said at the station's lines, not the defaults'
    (tmp_path / "site.yaml").write_text(BASE.replace("type: camera\n  device: 0", "type: video\n  path: /v.mp4"))
    (tmp_path / "st3.yaml").write_text("extends: site.yaml\nsource:\n  type: folder\n")
    _, errors = config_errors(tmp_path / "st3.yaml")
    assert errors == [f"{tmp_path / 'st3.yaml'}:2: source.path: Field required"], errors


def test_an_unknown_key_is_named_with_the_key_meant(tmp_path, capsys):
    """`thresold:` and `widht:` were "unknown key (check the spelling)": which key was meant was left to the schema's 400 lines,
    and `mqtt.password:` did not say where a password goes."""
    cases = {
        BASE.replace("  path: /models/m.ckpt\n", "  path: /models/m.ckpt\n  thresold: 3\n"):
            ":5: model.thresold: unknown key; did you mean image_threshold or pixel_threshold?",
        BASE.replace("  device: 0\n", "  device: 0\n  widht: 640\n"): ":8: source.widht: unknown key; did you mean width?",
        BASE.replace("store:", "sotre:"): ":10: sotre: unknown key; did you mean store?",
        BASE.replace("  prefix: factory/line1/st1\n", "  prefix: factory/line1/st1\n  tls: {ca: /ca.pem}\n"):
            ":10: mqtt.tls.ca: unknown key; did you mean ca_file?",
        BASE.replace("  name: st1\n", "  name: st1\n  port: 1883\n"): ":3: station.port: unknown key here; port belongs in mqtt.port or http.port",
        BASE.replace("type: camera\n  device: 0", "type: folder\n  path: /in\n  device: 0"):
            ":8: source.device: unknown key for a folder source (a key of camera sources)",
        BASE.replace("  prefix: factory/line1/st1\n", "  prefix: factory/line1/st1\n  password: hunter2\n"):
            ":10: mqtt.password: unknown key: the password never goes in the file; export it in an environment variable and give "
            "that variable's name as password_env",
        BASE + "zzz: 1\n": ":12: zzz: unknown key (check the spelling; `inspector config schema` lists every key)",
    }
    for text, expect in cases.items():
        f = tmp_path / "s.yaml"
        f.write_text(text)
        assert main(["config", "validate", str(f)]) == 1
        err = capsys.readouterr().err
        assert f"{f}{expect}" in err and "hunter2" not in err and "Traceback" not in err, err


def test_a_malformed_stream_url_is_not_echoed_with_its_password(tmp_path, capsys):
    """`url: rtsp:/admin:S3cret@cam4` (a slash short) was printed back whole by validate, and by serve into the journal."""
    for url, shown in (("rtsp:/admin:S3cret@cam4:554/s1", "'rtsp:/…@cam4:554/s1'"),
                       ('"rtsp://admin:S3cret PW@cam4/s1?token=S3cret"', "'rtsp://…@cam4/s1?…'"),
                       ("rtsp//cam4/s1?S3cret", "'rtsp//cam4/s1?…'")):
        f = tmp_path / "s.yaml"
        f.write_text(BASE.replace("type: camera\n  device: 0", f"type: stream\n  url: {url}"))
        assert main(["config", "validate", str(f)]) == 1
        err = capsys.readouterr().err
        assert f"{f}:7: source.url: give an rtsp://, rtsps://, http:// or https:// URL (got {shown})" in err, err
        assert main(["serve", "--config", str(f)]) == 2
        err += capsys.readouterr().err
        assert "S3cret" not in err and "source.url" in err, err
    f.write_text(BASE.replace("name: st1", "name: st@1?"))  # not a URL: said as written
    assert "station.name: use 1-64 ASCII letters (A-Z, a-z), digits and . _ - : (no slashes or spaces) (got 'st@1?')" in "".join(config_errors(f)[1])


def test_a_quoted_camera_index_is_the_index(tmp_path):
    """`device: "0"` validated and reached OpenCV as a file named 0: the station kept reconnecting a camera that never opened."""
    from inspector.commands.config import camera_note

    f = tmp_path / "s.yaml"
    f.write_text(BASE.replace("device: 0", 'device: "7"'))
    cfg = load_config(f)
    assert cfg.source.device == 7 and isinstance(cfg.source.device, int)
    assert "/dev/video7" in (camera_note(cfg) or "/dev/video7")  # looked for as the index's node


def test_aliases_of_aliases_and_huge_files_are_not_walked_for_ever(tmp_path, capsys):
    """Seven lines of aliases of aliases (10 million paths) took validate a minute and gigabytes to map to lines, and a
    wrong file (a video, /dev/zero) was read whole before it was refused."""
    from inspector.config import load_raw

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 5)]
    f = tmp_path / "s.yaml"
    f.write_text(BASE + "\n".join(lines) + "\n")
    data, where = load_raw(f)
    assert len(where) < 100, len(where)  # each node mapped once, not once per path through its aliases
    _, errors = config_errors(f)
    assert errors[-1] == f"{f}:16: a4: unknown key (check the spelling; `inspector config schema` lists every key)", errors
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * 2**21 + b"\n")
    rc, _, err = cli(capsys, "config", "validate", big)
    assert_one_line_error(rc, err, f"config {big}: over 1 MB, not a station config (they are a few kB); check the path")


def test_validate_here_notes_every_relative_path(tmp_path, tiny_ckpt, tiny_data, capsys, monkeypatch):
    """A relative logo, TLS file, verification image or allowed folder passed --here in the config's folder with no note, then
    stopped the start under systemd (which starts serve in /); only model.path, source.path and store.data_dir were noted."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_data / "test" / "good" / "000.png", tmp_path / "good.png")
    (tmp_path / "shared").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "logo.png")
    cfg = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt), "verify_good": ["good.png"]}, "source": {"type": "mqtt"},
           "mqtt": {"prefix": "f/st1", "allowed_dirs": ["shared"]}, "store": {"data_dir": str(tmp_path / "data")},
           "http": {"port": 0}, "reports": {"logo": "logo.png"}}
    (tmp_path / "s.yaml").write_text(json.dumps(cfg))
    assert main(["config", "validate", "--here", "--json", "s.yaml"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert f"model.verify_good, mqtt.allowed_dirs, reports.logo are relative: read from the folder serve starts in ({tmp_path} here)" \
        in "\n".join(notes), notes


def test_the_example_configs_comments_are_true(tmp_path):
    """station-folder.yaml listed the image files it reads without .gif, which the folder source reads; `extends`, which a
    line's stations share settings by, was said nowhere a user looks."""
    import re
    import shutil

    from model.images import IMAGE_SUFFIXES
    from tests.inspector.test_config import CONFIGS

    said = re.search(r"Only image files \(([^)]*)\) are read", (CONFIGS / "station-folder.yaml").read_text()).group(1)
    said = said.replace("#", " ").split()  # the list may run over comment lines
    assert sorted(set(said) - {".avif", ".avifs"}) == sorted(set(IMAGE_SUFFIXES) - {".avif", ".avifs"})  # AVIF: read where Pillow can
    camera = (CONFIGS / "station-camera.yaml").read_text()
    line = re.search(r"`(extends: (\S+))`", camera)
    assert line, "the camera example says how to extend a defaults file"
    shutil.copy(CONFIGS / "station-camera.yaml", tmp_path / line.group(2))  # the defaults: the whole example
    (tmp_path / "st.yaml").write_text(f"{line.group(1)}\nstation:\n  name: station9\n")  # as the comment says
    cfg = load_config(tmp_path / "st.yaml")
    assert (cfg.station.name, cfg.station.line, cfg.source.type) == ("station9", "line1", "camera")


def only_error(tmp_path, text: str) -> str:
    """The one error config_errors finds in a station file holding `text`."""
    f = tmp_path / "s.yaml"
    f.write_text(text)
    errors = config_errors(f)[1]
    assert len(errors) == 1, errors
    return errors[0]


def test_yaml_traps_are_named_with_their_fix(tmp_path):
    """A tab, a quoted number or true/false, and a key left empty were said as YAML's or pydantic's words alone."""
    cases = {
        BASE.replace("  name: st1", "\tname: st1"): ":2: not valid YAML (found character '\\t' that cannot start any token); "
                                                    "replace the tab with spaces (YAML takes no tabs)",
        BASE + "http:\n  port: '9108'\n": ":13: http.port: Input should be a valid integer (got '9108'); remove the quotes",
        BASE + "http:\n  enabled: \"false\"\n": ":13: http.enabled: Input should be a valid boolean (got 'false'); remove the quotes",
        BASE.replace("device: 0", "device: 0\n  fps: '2.5e1'"): ":8: source.fps: Input should be a valid number (got '2.5e1'); remove the quotes",
        BASE + "http:\n  port:\n": ":13: http.port: Input should be a valid integer (got None); the value is empty: give one or leave the key out",
        BASE + "http:\n  host: 'abc'\n  port: 'abc'\n": ":14: http.port: Input should be a valid integer (got 'abc')",
    }
    for text, expect in cases.items():
        assert only_error(tmp_path, text).endswith(expect)


def test_a_source_without_its_type_and_an_empty_section_say_what_to_give(tmp_path):
    """`source:` without `type:` was "Unable to extract tag using discriminator 'type'"; an empty required section was told it
    could be left out, which gives "Field required"."""
    cases = {
        BASE.replace("  type: camera\n", ""): ":5: source.type: missing; give the kind of source: camera, folder, mqtt, stream, video",
        BASE.replace("station:\n  name: st1\n", "station:\n"): ":1: station: Input should be a valid dictionary or instance of "
                                                                "StationInfo (got None); the value is empty: give one",
    }
    for text, expect in cases.items():
        assert only_error(tmp_path, text).endswith(expect)


def test_tls_mistakes_are_said(tmp_path):
    """`tls: {key_file: ...}` validated and the key was ignored (no client certificate: no mutual TLS, and no word of it);
    `tls: true` was "a valid dictionary or instance of Tls"."""
    cases = {
        "tls: {key_file: /etc/inspector/key.pem}": ":10: mqtt.tls: key_file without cert_file: give the client certificate as cert_file",
        "tls: true": ":10: mqtt.tls: Input should be a valid dictionary or instance of Tls (got True); give tls: {} for TLS with the "
                     "system's CAs, or its keys (ca_file, cert_file, key_file)",
    }
    for tls, expect in cases.items():
        assert expect in only_error(tmp_path, BASE.replace("  prefix: factory/line1/st1\n", f"  prefix: factory/line1/st1\n  {tls}\n"))
    f = tmp_path / "s.yaml"
    f.write_text(BASE.replace("  prefix: factory/line1/st1\n", "  prefix: factory/line1/st1\n  tls: {}\n"))
    assert load_config(f).mqtt.tls is not None
