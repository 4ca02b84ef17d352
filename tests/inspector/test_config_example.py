"""`inspector config example`: the example configs wherever inspector is installed (a wheel's user had none)."""

from __future__ import annotations

from pathlib import Path

import pytest

import inspector.examples as examples_module
from inspector.examples import EXAMPLES
from tests.cli import assert_one_line_error, cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_file_in_configs_is_an_example_and_the_list_names_them(capsys):
    assert sorted(file for file, _ in EXAMPLES.values()) == sorted(p.name for p in CONFIGS.iterdir())
    rc, out, _ = cli(capsys, "config", "example")
    assert rc == 0
    listed = [line.split()[:2] for line in out.splitlines()[:-1]]
    assert listed == [[name, file] for name, (file, _) in EXAMPLES.items()]
    assert str(CONFIGS) in out.splitlines()[-1]


@pytest.mark.parametrize("name", ["camera", "unit", "station-mqtt.yaml"])
def test_an_example_prints_as_its_file_holds_it(capsys, name):
    rc, out, _ = cli(capsys, "config", "example", name)
    file = EXAMPLES[name][0] if name in EXAMPLES else name
    assert rc == 0 and out == (CONFIGS / file).read_text(encoding="utf-8")


def test_out_writes_a_station_config_that_validates_and_never_overwrites(capsys, tmp_path):
    out = tmp_path / "station3.yaml"
    rc, said, _ = cli(capsys, "config", "example", "folder", "--out", out)
    assert rc == 0 and out.read_bytes() == (CONFIGS / "station-folder.yaml").read_bytes()
    assert f"inspector config validate --here {out}" in said
    assert cli(capsys, "config", "validate", out)[0] == 0
    out.write_text("station: {name: mine}\n")
    rc, _, err = cli(capsys, "config", "example", "camera", "--out", out)
    assert_one_line_error(rc, err, f"--out {out}", "already exists")
    assert out.read_text() == "station: {name: mine}\n"
    rc, _, _ = cli(capsys, "config", "example", "acl", "--out", tmp_path)  # a folder: the example's own name in it
    assert rc == 0 and (tmp_path / "mosquitto.acl").read_bytes() == (CONFIGS / "mosquitto.acl").read_bytes()


@pytest.mark.parametrize("argv, needles", [
    (["cam"], ["example 'cam'", "did you mean camera?", "camera, stream, video"]),
    (["nothing"], ["example 'nothing'", "camera, stream, video"]),
    (["--out", "x.yaml"], ["--out", "give the example to write"]),
    (["camera", "--out", ""], ["--out ''"]),
    (["camera", "--out", "/nonexistent-folder/x.yaml"], ["/nonexistent-folder", "does not exist"]),
])
def test_bad_requests_are_one_line(capsys, argv, needles):
    rc, _, err = cli(capsys, "config", "example", *argv)
    assert_one_line_error(rc, err, *needles)


def test_a_copy_without_the_examples_says_so_in_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(examples_module, "_candidates", lambda: [tmp_path / "configs"])
    rc, _, err = cli(capsys, "config", "example", "camera")
    assert_one_line_error(rc, err, "not installed with this copy", str(tmp_path / "configs"), "repository's configs/")


def test_an_installed_wheels_examples_are_found_where_pip_put_them(monkeypatch, tmp_path):
    """The prefix a wheel's data files go to (a venv's, or pip --prefix), found by its record when not sys.prefix."""
    share = tmp_path / "prefix" / examples_module.SHARE
    share.mkdir(parents=True)
    (tmp_path / "prefix" / "lib" / "site").mkdir(parents=True)
    for file, _ in EXAMPLES.values():
        (share / file).write_text(file)

    class Dist:
        files = [Path("../..") / examples_module.SHARE / "station-camera.yaml"]

        @staticmethod
        def locate_file(f):
            return tmp_path / "prefix" / "lib" / "site" / f

    import importlib.metadata

    monkeypatch.setattr(examples_module, "__file__", str(tmp_path / "elsewhere" / "inspector" / "examples.py"))
    monkeypatch.setattr(examples_module.sys, "prefix", str(tmp_path / "another-prefix"))
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Dist)
    assert examples_module.examples_dir().resolve() == share.resolve()
