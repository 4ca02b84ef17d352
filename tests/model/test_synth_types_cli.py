"""Defect generation (`inspector synth`) and defect types (fit --labels, eval --shots): what a user hits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image


def _good(tmp_path: Path, n: int = 4) -> Path:
    good = tmp_path / "good"
    good.mkdir()
    for i in range(n):
        cv2.imwrite(str(good / f"{i:02d}.png"), good_image(i, 64))
    return good


def test_force_does_not_overwrite_files_no_synth_run_wrote(tmp_path, capsys):
    """--force into a dataset's root overwrote its own labels.json and test/<type>/00000.png unsaid (and a run that then
    failed deleted them as its own)."""
    good = _good(tmp_path)
    out = tmp_path / "dataset"
    (out / "test" / "scratch").mkdir(parents=True)
    theirs = out / "test" / "scratch" / "00000.png"
    cv2.imwrite(str(theirs), good_image(9, 64))
    before = theirs.read_bytes()
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", 3, "--force")
    assert_one_line_error(rc, err, str(Path("test") / "scratch" / "00000.png"), "move it")
    assert theirs.read_bytes() == before and not (out / "labels.json").exists()

    theirs.unlink()
    (out / "labels.json").write_text('{"annotations": []}')
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", 3, "--force")
    assert_one_line_error(rc, err, "labels.json")
    assert json.loads((out / "labels.json").read_text()) == {"annotations": []}

    (out / "labels.json").unlink()  # an earlier synth output there is still replaced, whatever its size and types
    assert cli(capsys, "synth", good, "--out", out, "--n", 12, "--force")[0] == 0
    assert cli(capsys, "synth", good, "--out", out, "--n", 3, "--force", "--types", "pit")[0] == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(files) == 2 + 2 * 3 and all("pit" in f for f in files if "/" in f), files


def test_eval_shots_says_when_unknown_was_off(tmp_path, capsys):
    """With one shot per type `unknown` has no out-of-fold score to set its threshold: the curve read type_unknown_rate 0
    and --holdout "held-out type -> unknown: 0.000", as if the head never flagged a new type."""
    from tests.model.types_data import write_labels

    labels = write_labels(tmp_path / "l", 3)
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "1", "--holdout", "--size", "64")
    assert_one_line_error(rc, err, "--holdout with --shots 1", "--shots 2 or more")
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "01", "--holdout", "--size", "64")
    assert_one_line_error(rc, err, "--holdout with --shots 1", "--shots 2 or more")  # the number, not the text "1"
    rc, out, _ = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "1", "--seeds", "2", "--size", "64", "--json")
    assert rc == 0 and "`unknown` was off in 2 of the 2 fits" in json.loads(out)["unknown_off"]
    rc, out, _ = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "1", "--seeds", "1", "--size", "64")
    assert rc == 0 and "note: `unknown` was off in 1 of the 1 fits" in out
    rc, out, _ = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "2", "--seeds", "1", "--size", "64", "--json")
    assert rc == 0 and "unknown_off" not in json.loads(out)


def test_a_layouts_defect_type_folder_is_no_good_folder(tmp_path, capsys, monkeypatch):
    """`synth DATA/test/crack` drew defects on the real (or an earlier synth run's) defects, each labelled with the new
    defect's mask alone; test/good stays a good folder."""
    from tests.synthetic import write_mvtec

    data = write_mvtec(tmp_path / "data", n_train=3, n_good_test=2, n_defect=2)
    rc, _, err = cli(capsys, "synth", data / "test" / "blob", "--out", tmp_path / "o1")
    assert_one_line_error(rc, err, "defect type 'blob'", f"give its good images, {data.resolve() / 'train' / 'good'}")
    assert cli(capsys, "synth", _good(tmp_path), "--out", tmp_path / "s", "--n", 2, "--types", "pit")[0] == 0
    monkeypatch.chdir(tmp_path / "s" / "test" / "pit")
    rc, _, err = cli(capsys, "synth", ".", "--out", tmp_path / "o2")
    assert_one_line_error(rc, err, "defect type 'pit'", "point at a folder of good parts")
    assert cli(capsys, "synth", data / "test" / "good", "--out", tmp_path / "o3", "--n", 2)[0] == 0


def test_fewer_images_than_types_says_which_types_get_none(tmp_path, capsys):
    """--n 5 made five of the nine types unsaid (labels.json still lists all nine)."""
    good = _good(tmp_path)
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "o", "--n", 5)
    assert rc == 0 and "--n 5 is fewer than the 9 types" in err and "fray, texture, cutpaste, transplant get no image" in err
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "o2", "--n", 2, "--types", "pit,scratch")
    assert rc == 0 and "fewer than" not in err
