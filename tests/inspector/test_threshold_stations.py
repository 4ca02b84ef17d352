"""`inspector threshold --config STATION.yaml`: a threshold the station's verification images refuse is never written
(the station refused its reload, and its next start, on one written without a word), and `--dry-run` writes nothing."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli import assert_one_line_error, cli


@pytest.fixture()
def station(tmp_path, tiny_ckpt, tiny_data):
    """A copy of the tiny checkpoint (threshold rewrites it) and a station config serving it with one good and one
    defective verification image -> (checkpoint, config path, its manifest's bytes)."""
    ckpt = tmp_path / "ck"
    shutil.copytree(tiny_ckpt, ckpt)
    cfg = {"station": {"name": "st1"}, "source": {"type": "mqtt"}, "mqtt": {"prefix": "f/st1"},
           "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0},
           "model": {"path": str(ckpt), "verify_good": [str(tiny_data / "test" / "good" / "000.png")],
                     "verify_defect": [str(tiny_data / "test" / "blob" / "000.png")]}}
    path = tmp_path / "st1.yaml"
    path.write_text(json.dumps(cfg))
    return ckpt, path, (ckpt / "manifest.json").read_bytes()


def _threshold(ckpt) -> float:
    return json.loads((ckpt / "manifest.json").read_text())["thresholds"]["image"]


def test_a_threshold_the_verification_images_refuse_is_not_written(station, capsys):
    ckpt, cfg, before = station
    rc, out, err = cli(capsys, "threshold", ckpt, "--set", "1e6", "--config", cfg)
    assert_one_line_error(rc, err, "nothing written: at image threshold 1e+06", f"station {cfg}'s", "model.verify_defect", "PASS")
    assert (ckpt / "manifest.json").read_bytes() == before

    slightly = _threshold(ckpt) * 1.001  # both images lie well away from the fitted threshold
    rc, out, err = cli(capsys, "threshold", ckpt, "--set", slightly, "--config", cfg, "--json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["written"] is True and _threshold(ckpt) == pytest.approx(slightly)
    assert shown["stations"] == [{"config": str(cfg), "checked": "its 1 good and 1 defect verification images are judged "
                                                                  f"right at image threshold {slightly:g}"}]


def test_a_station_whose_own_threshold_overrides_is_judged_at_that_one(station, capsys, tmp_path):
    ckpt, cfg, _ = station
    own = json.loads(cfg.read_text())
    own["model"]["image_threshold"] = _threshold(ckpt)
    cfg.write_text(json.dumps(own))
    rc, out, err = cli(capsys, "threshold", ckpt, "--set", "1e6", "--config", cfg)
    assert rc == 0, err  # the station keeps judging at its own threshold, which its images pass
    assert "overrides the model's, so the new image threshold does not reach its verdicts" in out
    assert _threshold(ckpt) == 1e6


def test_a_config_of_another_model_and_a_config_without_a_change_are_refused(station, capsys, tiny_ckpt, tmp_path):
    ckpt, cfg, before = station
    other = json.loads(cfg.read_text())
    other["model"]["path"] = str(tiny_ckpt)
    (tmp_path / "other.yaml").write_text(json.dumps(other))
    rc, _, err = cli(capsys, "threshold", ckpt, "--set", "1", "--config", tmp_path / "other.yaml")
    assert_one_line_error(rc, err, f"--config {tmp_path / 'other.yaml'}: its model.path {tiny_ckpt} is not {ckpt}", "does not reach")
    assert (ckpt / "manifest.json").read_bytes() == before
    rc, _, err = cli(capsys, "threshold", ckpt, "--config", cfg)
    assert_one_line_error(rc, err, "--config applies to a change: give --set, --pixel, --escape or --far")
    rc, _, err = cli(capsys, "threshold", ckpt, "--set", "1", "--config", tmp_path / "nowhere.yaml")
    assert rc == 2 and "nowhere.yaml" in err and "Traceback" not in err
    assert (ckpt / "manifest.json").read_bytes() == before


def test_dry_run_writes_nothing_and_a_change_without_config_says_how_to_check(station, capsys):
    ckpt, _, before = station
    rc, out, err = cli(capsys, "threshold", ckpt, "--far", "0.2", "--dry-run")
    assert rc == 0, err
    assert "(would change; nothing written (--dry-run))" in out.splitlines()[0]
    assert (ckpt / "manifest.json").read_bytes() == before
    rc, out, _ = cli(capsys, "threshold", ckpt, "--far", "0.2")
    assert rc == 0 and "(changed)" in out
    assert "give --config STATION.yaml to check them first" in out
    assert (ckpt / "manifest.json").read_bytes() != before
