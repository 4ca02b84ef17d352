"""Defect types and generation: `--shots` hints and refusals that a type's images can follow, and
`synth --n` bounded by what --out's disk holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2

from tests.cli import assert_one_line_error, cli
from tests.model.types_data import write_labels, write_typed_mvtec
from tests.synthetic import good_image


def _good(tmp_path: Path, n: int = 3, size: int = 48) -> Path:
    good = tmp_path / "good"
    good.mkdir()
    for i in range(n):
        cv2.imwrite(str(good / f"{i:02d}.png"), good_image(i, size))
    return good


def test_shots_refusal_gives_the_most_shots_the_types_allow(tmp_path, capsys):
    """A hint's `--shots 5` to a folder whose type had 2 images was refused with "needs at least 6 per type" and no way
    on: it now gives the largest --shots every type allows, and names each type short of images, not the first alone."""
    labels = write_labels(tmp_path / "labels", 6, ("blob",))
    write_labels(labels, 2, ("scratch",))
    write_labels(labels, 3, ("stain",))
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", 5, "--size", 64)
    assert_one_line_error(rc, err, "type scratch has 2 images, stain 3;", "--shots 5 needs at least 6 per type",
                          "give --shots 1 at most, or add examples of scratch, stain")
    # --holdout refuses --shots 1: no --shots is left to give, only more examples
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", 2, "--holdout", "--size", 64)
    assert_one_line_error(rc, err, "type scratch has 2 images;", "--shots 2 needs at least 3", "add examples of scratch")
    assert "give --shots" not in err


def test_shots_command_suggests_no_more_shots_than_a_type_can_give(tmp_path):
    """The command hints suggest (`fit` of labelled defects, `eval` of type folders or of a backbone name) said
    `--shots 5` whatever the folder held; it now keeps one image of each type to score."""
    from model.fit_types import shots_command

    few = write_labels(tmp_path / "few", 2, ("blob", "scratch"))
    assert shots_command("efficientnet-lite0", few) == f"`inspector eval efficientnet-lite0 {few} --shots 1`"
    many = write_labels(tmp_path / "many", 8, ("blob", "scratch"))
    assert shots_command("m", many) == f"`inspector eval m {many} --shots 5`"
    layout = write_typed_mvtec(tmp_path / "mvtec", n_train=1, n_good=5, n_defect=3, types=("blob", "scratch"))
    assert shots_command("m", layout).endswith("--shots 2`")  # test/<type>, its good/ and ground_truth/ not types
    one = write_labels(tmp_path / "one", 3, ("blob", "stain"))
    write_labels(one, 1, ("scratch",))
    assert shots_command("m", one) == f"`inspector eval m {one} --shots 1` (once scratch has 2 images or more: one to fit, one to score)"


def _free(monkeypatch, free: int) -> None:
    usage = shutil.disk_usage(Path.cwd())
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: type(usage)(usage.total, usage.total - free, free))


def test_synth_refuses_a_set_its_disk_cannot_hold(tmp_path, capsys, monkeypatch):
    """`--n 10000000` of large parts wrote for hours until the disk was full, then removed it all: refused now in one
    line with the numbers; an earlier output it would have replaced (--force) is kept. A set that fits is written."""
    good, out = _good(tmp_path), tmp_path / "out"
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", 2)
    assert rc == 0, err
    before = sorted(p for p in out.rglob("*") if p.is_file())
    _free(monkeypatch, 20_000)
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", 1000, "--force")
    assert_one_line_error(rc, err, f"--out {out}:", "MB free on its disk", "1000 defect images of about", "MB each",
                          "give --n", "free space, or choose another folder")
    assert sorted(p for p in out.rglob("*") if p.is_file()) == before
    assert json.loads((out / "labels.json").read_text())["generator"] == "inspector synth"
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "none", "--n", 1000)
    assert_one_line_error(rc, err, "need about")
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    _free(monkeypatch, 1 << 30)
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", 3, "--force")
    assert rc == 0, err
    assert len(json.loads((out / "labels.json").read_text())["images"]) == 3


def test_synth_n_below_one_is_named_before_the_out_folder(tmp_path, capsys):
    """`--n 0` into a non-empty --out said "not empty; pass --force", and with --force then "--n 0": two tries for one
    mistake. What is wrong with the request comes first."""
    good, out = _good(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    for n in (0, -3):
        rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", n)
        assert_one_line_error(rc, err, f"--n {n}: give the number of defect images to make (at least 1)")


def test_shots_report_says_how_many_images_of_each_type_were_scored(capsys):
    """`--shots 1` on 6 and 2 images printed accuracy 0.8333 as a measurement; that crack's recall rested on one
    image went unsaid (the JSON's counts are the images before the draw)."""
    from inspector.commands.types_eval import print_shots

    keys = ("type_accuracy", "type_macro_f1", "type_accuracy_open_set", "type_unknown_rate")
    report = {"shots": 1, "folds": None, "seeds": 1, "region": "image", "classifier": "logreg", "unknown_rate": 0.05,
              "classes": ["blowhole", "crack"], "counts": {"blowhole": 6, "crack": 2}, **dict.fromkeys(keys, 0.5)}
    print_shots(report)
    assert "  scored per seed: 6 images (blowhole 5, crack 1)\n" in capsys.readouterr().out
    print_shots(report | {"shots": "all", "folds": 2})  # cross-validation scores every image once a seed
    assert "scored per seed: 8 images (blowhole 6, crack 2)" in capsys.readouterr().out
