"""Defect-type labels and evaluation as a QA engineer meets them: copies of a labelled defect among the good images or
within its own type, masks and box files in upper case, links that lead nowhere, an MVTec layout's one image under two
types, a type folder called test, zero-shot names that read as one prompt, and `eval --shots` of the model's own head."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from model.errors import InspectorError
from model.labels import load_labels
from tests.cli import assert_one_line_error, cli
from tests.model.types_data import write_labels, write_typed_mvtec
from tests.synthetic import write_mvtec


def test_fit_refuses_a_labelled_defect_copied_among_the_good_images(tmp_path, capsys, monkeypatch):
    """A copy (not the same file) of a labelled defect in train/good was learnt as normal: it and its like then PASS."""
    import model.fit

    monkeypatch.setattr(model.fit, "fit", lambda *a, **k: pytest.fail("the anomaly fit ran"))
    data, labels = write_mvtec(tmp_path / "d", n_train=4), write_labels(tmp_path / "l", 2, types=("blob", "scratch"))
    shutil.copy(labels / "scratch" / "001.png", data / "train" / "good" / "zz.png")
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "m", "--labels", labels, "--size", "64", "--synth", "0")
    assert_one_line_error(rc, err, f"--labels {labels}", "1 of its images are among the good training images",
                          f"scratch/001.png, the same image as {data / 'train' / 'good' / 'zz.png'}", "a folder of their own")
    assert not (tmp_path / "m").exists()


def test_one_image_under_two_types_of_an_mvtec_layout_is_refused(tmp_path):
    """A labels folder refused it; the same picture in test/blob and test/scratch of an MVTec layout was taught as both."""
    root = write_typed_mvtec(tmp_path / "m", n_train=1, n_good=1, n_defect=2)
    shutil.copy(root / "test" / "blob" / "100.png", root / "test" / "scratch" / "900.png")
    with pytest.raises(InspectorError, match=r"scratch/900\.png and .*blob/100\.png are the same image, labelled scratch and blob"):
        load_labels(root)


@pytest.mark.parametrize("mvtec", [False, True])
def test_a_copy_within_a_type_counts_once_and_is_said(tmp_path, mvtec):
    """Each copy was one more example: counted twice, and in another fold it made the cross-validated accuracy and the
    `unknown` threshold in-sample."""
    if mvtec:
        root = write_typed_mvtec(tmp_path / "m", n_train=1, n_good=1, n_defect=2)
        folder = root / "test" / "blob"
        original, copy = folder / "100.png", folder / "100_again.png"
    else:
        root = write_labels(tmp_path / "l", 2, types=("blob", "scratch"))
        original, copy = root / "blob" / "000.png", root / "blob" / "000_again.png"
    shutil.copy(original, copy)
    labels = load_labels(root)
    assert labels.counts()["blob"] == 2 and copy not in [it.path for it in labels.items]
    assert f"{copy}: the same image as {original}; the copy is left out (one example counts once)" in labels.notes


def test_masks_and_box_files_are_found_in_any_case(tmp_path):
    """A camera's `001.PNG` with `001_mask.PNG` (or `001.XML`) beside it: the mask or box file was dropped unsaid, and a
    `_MASK` file was taught as one more example of its type."""
    root = write_labels(tmp_path / "l", 3, types=("blob", "scratch"))
    blob = root / "blob"
    for name in ("000.png", "000_mask.png"):
        (blob / name).rename(blob / name.replace(".png", ".PNG"))
    (blob / "001_mask.png").rename(blob / "001_MASK.png")
    (blob / "002_mask.png").unlink()
    (blob / "002.XML").write_text("<annotation><object><name>blob</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
                                  "<ymax>9</ymax></bndbox></object></annotation>")
    labels = load_labels(root)
    found = {it.path.name: it for it in labels.items if it.type == "blob"}
    assert sorted(found) == ["000.PNG", "001.png", "002.png"]  # 001_MASK.png is no example
    assert found["000.PNG"].mask_path == blob / "000_mask.PNG" and found["001.png"].mask_path == blob / "001_MASK.png"
    assert found["002.png"].boxes_path == blob / "002.XML" and labels.notes == []
    (blob / "009.XML").write_text("<annotation/>")  # a box file of no image, in upper case: said as the lower-case one is
    assert any(n.endswith("009.XML: a box file of no image here; it is not used") for n in load_labels(root).notes)


@pytest.mark.parametrize("mvtec", [False, True])
def test_a_linked_example_that_leads_nowhere_is_said(tmp_path, mvtec):
    root = write_typed_mvtec(tmp_path / "m", n_train=1, n_good=1, n_defect=2) if mvtec else write_labels(tmp_path / "l", 2)
    blob = root / "test" / "blob" if mvtec else root / "blob"
    os.symlink(tmp_path / "gone.png", blob / "003.png")
    if mvtec:
        os.symlink(tmp_path / "gone.png", root / "train" / "good" / "x.png")  # fit's to say, not the labels'
    labels = load_labels(root)
    assert labels.counts() == {"blob": 2, "scratch": 2, "stain": 2}
    assert [n for n in labels.notes if "link(s) in" in n] == [f"1 link(s) in {blob} lead nowhere and were left out "
                                                              f"(e.g. {blob / '003.png'} -> {tmp_path / 'gone.png'})"]


def test_a_type_folder_called_test_is_a_type(tmp_path):
    """`test/` holding images itself is a type folder, not an MVTec layout's test/<type>/ (which told of no defect images)."""
    root = write_labels(tmp_path / "l", 2, types=("blob", "stain"))
    (root / "stain").rename(root / "test")
    labels = load_labels(root)
    assert labels.types == ["blob", "test"] and labels.counts() == {"blob": 2, "test": 2}


@pytest.mark.parametrize("types", ["Crack,crack", "pitted_surface,pitted surface"])
def test_zero_shot_types_that_make_one_prompt_are_refused(tiny_data, tmp_path, capsys, types):
    """CLIP's tokenizer reads lower case and prompts turn _ into a space: two such names were one prompt, each named at
    50 % on every part."""
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--types", types, "--backbone", "clip:ViT-S-32:random",
                     "--size", "64", "--synth", "0")
    assert_one_line_error(rc, err, f"--types {types}", "given twice")
    assert not (tmp_path / "m").exists()


def test_eval_shots_scores_the_checkpoints_own_type_options(tiny_ckpt, tmp_path, capsys):
    """A `--type-classifier prototype --unknown-rate 0` model's curve was of logreg with `unknown` on (rate 0.05)."""
    from model.checkpoint import load_checkpoint, read_manifest, save_checkpoint

    net, _ = load_checkpoint(tiny_ckpt)
    keep = {k: v for k, v in read_manifest(tiny_ckpt).items() if k in ("options", "training", "calibration", "thresholds")}
    out = tmp_path / "c"
    save_checkpoint(net, out, {**keep, "types": {"options": {"classifier": "prototype", "unknown_rate": 0.0, "batch_size": 3}}})
    labels = write_labels(tmp_path / "l", 3)
    rc, stdout, _ = cli(capsys, "eval", out, labels, "--shots", "2", "--seeds", "1", "--holdout", "--json")
    report = json.loads(stdout)
    assert rc == 0 and report["classifier"] == "prototype" and report["unknown_rate"] == 0.0
    assert report["type_unknown_rate"] == 0.0 and report["holdout"]["unknown_rate"] == 0.0  # `unknown` is off in this model


def test_eval_shots_on_a_missing_checkpoint_names_it(tmp_path, capsys):
    labels = write_labels(tmp_path / "l", 2, types=("blob", "scratch"))
    rc, _, err = cli(capsys, "eval", tmp_path / "typo.ckpt", labels, "--shots", "1")
    assert_one_line_error(rc, err, f"--shots on {tmp_path / 'typo.ckpt'}: no such checkpoint folder")


@pytest.mark.parametrize("extra, needle", [
    # a label image that cannot hold the fixed region of interest: said after the anomaly fit before, that fit wasted
    (["--roi", "10,10,80,80"], "000.png: 48x48 px does not contain the model's region of interest 10,10,80,80"),
    (["--part", "tile"], "--part tile: words for CLIP prompts"),  # ignored, unsaid, with a backbone that has no prompts
])
def test_labels_that_cannot_serve_this_fit_fail_before_the_anomaly_fit(tmp_path, capsys, monkeypatch, extra, needle):
    import cv2

    import model.fit

    monkeypatch.setattr(model.fit, "fit", lambda *a, **k: pytest.fail("the anomaly fit ran"))
    data, labels = write_mvtec(tmp_path / "d", n_train=4), write_labels(tmp_path / "l", 2, types=("blob", "scratch"))
    for p in labels.rglob("*.png"):  # labelled at another resolution than the station's parts
        cv2.imwrite(str(p), cv2.resize(cv2.imread(str(p)), (48, 48), interpolation=cv2.INTER_NEAREST))
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "m", "--labels", labels, "--size", "64", "--synth", "0", *extra)
    assert_one_line_error(rc, err, needle)


def test_eval_shots_says_what_the_labels_left_out(tmp_path, capsys):
    """`fit --labels` printed the labels' notes; `eval --shots` left a copy out (or a dead link) unsaid."""
    labels = write_labels(tmp_path / "l", 2, types=("blob", "scratch"))
    shutil.copy(labels / "blob" / "000.png", labels / "blob" / "000_again.png")
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "1", "--seeds", "1", "--size", "64", "--json")
    assert rc == 0 and f"note: {labels / 'blob' / '000_again.png'}: the same image as" in err
