"""`inspector eval` on the data QA hands it: its masks, its folder layouts, its --new-parts fold counts."""

from __future__ import annotations

import shutil

import cv2
import numpy as np

from tests.cli import assert_one_line_error, cli


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_eval_names_every_unusable_mask_before_scoring(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    """A mask of another size than its image, or one that does not decode, was found while scoring: eval stopped there
    (minutes into a large test set) naming that one alone, and the next one on the following run."""
    import model.evaluate

    data = _copy(tiny_data, tmp_path / "data")
    gt = data / "ground_truth" / "blob"
    cv2.imwrite(str(gt / "001_mask.png"), cv2.resize(cv2.imread(str(gt / "001_mask.png"), 0), (48, 48)))
    (gt / "003_mask.png").write_bytes(b"not a png")

    def no_scoring(*a, **k):
        raise AssertionError("scored the test images before checking their masks")

    monkeypatch.setattr(model.evaluate, "score_samples", no_scoring)
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap")
    assert_one_line_error(rc, err, "2 of 4 ground_truth masks cannot be used", "001_mask.png: 48x48 px but its image is 96x96",
                          "003_mask.png: cannot be decoded", "fix or remove them")
    assert out == ""


def test_eval_with_a_report_names_a_mask_cut_short_before_scoring(tiny_ckpt, tiny_data, tmp_path):
    """`eval --report` imports WeasyPrint to check its PDF before scoring, which makes Pillow pad a file cut short: the
    mask check passed a mask cut short, and eval stopped while scoring, naming it without the fix."""
    import subprocess
    import sys

    import pytest

    pytest.importorskip("weasyprint")
    data = _copy(tiny_data, tmp_path / "data")
    mask = data / "ground_truth" / "blob" / "002_mask.png"
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size * 2 // 3])
    run = subprocess.run([sys.executable, "-m", "inspector", "eval", str(tiny_ckpt), str(data), "--no-overlap", "--report",
                          str(tmp_path / "qa"), "--format", "pdf"], capture_output=True, text=True, timeout=300)
    assert_one_line_error(run.returncode, run.stderr, "1 of 4 ground_truth masks cannot be used", "002_mask.png: cannot be decoded")


def test_eval_takes_masks_of_0_and_1_and_antialiased_edges_as_0_and_255_ones(capsys, tiny_ckpt, tiny_data, tmp_path):
    """The same defects drawn 0/1 or with soft (blurred) edges give the same pixel metrics, as scikit-learn computes them."""
    import json

    from sklearn.metrics import average_precision_score, roc_auc_score

    from inspector.commands.evaluate import evaluate_model

    ones, soft = _copy(tiny_data, tmp_path / "ones"), _copy(tiny_data, tmp_path / "soft")
    for p in (ones / "ground_truth" / "blob").glob("*.png"):
        cv2.imwrite(str(p), (cv2.imread(str(p), 0) > 0).astype(np.uint8))
    for p in (soft / "ground_truth" / "blob").glob("*.png"):
        cv2.imwrite(str(p), cv2.GaussianBlur(cv2.imread(str(p), 0), (5, 5), 0))
    reports = []
    for data in (tiny_data, ones, soft):
        rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
        assert rc == 0, err
        reports.append(json.loads(out))
    keys = ("pixel_auroc", "pixel_ap", "aupro")
    assert [reports[0][k] for k in keys] == [reports[1][k] for k in keys]
    assert all(abs(reports[0][k] - reports[2][k]) < 0.01 for k in keys)
    ev = evaluate_model(str(tiny_ckpt), str(tiny_data), overlap=False, progress=lambda *a: _Bar())
    masks, maps = ev.scored.pixels
    assert reports[0]["pixel_auroc"] == round(roc_auc_score(masks.ravel(), maps.ravel()), 4)
    assert reports[0]["pixel_ap"] == round(average_precision_score(masks.ravel(), maps.ravel()), 4)


class _Bar:
    def update(self, n):
        pass

    def close(self):
        pass


def test_eval_new_parts_refuses_more_folds_than_training_images_before_scoring(capsys, tiny_ckpt, tiny_data, monkeypatch):
    """--new-parts 20 over 12 training images scored every test image, told the parts apart, and then reported the check
    as skipped beside exit 0: no dealing of 12 images gives 20 folds a part each."""
    import model.evaluate

    def no_scoring(*a, **k):
        raise AssertionError("scored the test images of a request that cannot be met")

    monkeypatch.setattr(model.evaluate, "score_samples", no_scoring)
    rc, out, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--new-parts", "20")
    assert_one_line_error(rc, err, "--new-parts 20", "12 training images", "give --new-parts 12 or fewer")
    assert out == ""
    from model.errors import InspectorError
    from model.new_parts import check_training_images

    try:  # too few for any refit too: the images asked for must also give every fold a part ("at least 6" before)
        check_training_images(4, 20, "D")
    except InspectorError as e:
        assert "give at least 20 images in train/good for --new-parts 20" in str(e)
    else:
        raise AssertionError("--new-parts 20 over 4 images was accepted")


def test_eval_of_a_folder_not_in_the_layout_says_where_its_images_go(capsys, tiny_ckpt, tiny_data, tmp_path):
    """good/ and scratch/ side by side (how a QA engineer sorts parts), a plain folder of images or the layout's
    train/good were told only "no test/<type> folders with images" (with two type folders beside good/, to try --shots,
    which ignores the good images)."""
    sorted_ = tmp_path / "sorted"
    shutil.copytree(tiny_data / "test" / "good", sorted_ / "good")
    for t in ("scratch", "dent"):
        shutil.copytree(tiny_data / "test" / "blob", sorted_ / t)
    rc, _, err = cli(capsys, "eval", tiny_ckpt, sorted_)
    assert_one_line_error(rc, err, "holds good/ beside dent/, scratch/, one level too high",
                          f"good parts' images in {sorted_ / 'test' / 'good'}", f"move those folders into {sorted_ / 'test'}/")
    assert "--shots" not in err
    plain = tmp_path / "plain"
    shutil.copytree(tiny_data / "test" / "good", plain)
    rc, _, err = cli(capsys, "eval", tiny_ckpt, plain)
    assert_one_line_error(rc, err, "images carry no good or defect label", f"`inspector inspect {tiny_ckpt} {plain}`")
    rc, _, err = cli(capsys, "eval", tiny_ckpt, tiny_data / "train" / "good")
    assert_one_line_error(rc, err, "holds the training images, which eval does not score",
                          f"give the folder above it, {tiny_data}, whose test/ it reads")


def test_eval_without_a_marked_mask_does_not_say_its_pixel_metrics_are_on_some(capsys, tiny_ckpt, tiny_data, tmp_path):
    """Two defects without a mask and two with a blank one: the text said "pixel_auroc and aupro are on the 0 defect
    images with a ground_truth mask" beside the metrics it left empty; the JSON's pixel metrics are null."""
    import json

    data = _copy(tiny_data, tmp_path / "data")
    gt = data / "ground_truth" / "blob"
    for i in (0, 1):
        (gt / f"00{i}_mask.png").unlink()
    for i in (2, 3):
        cv2.imwrite(str(gt / f"00{i}_mask.png"), np.zeros((96, 96), np.uint8))
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap")
    assert rc == 0, err
    assert "on the 0 defect images" not in out
    assert "pixel_auroc        - (no defect pixels in ground_truth masks; 2 of the 4 defect images have none)" in out
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap", "--json")
    report = json.loads(out)
    assert [report[k] for k in ("pixel_auroc", "pixel_ap", "aupro", "defects_without_masks", "defects_with_empty_masks")] == \
        [None, None, None, 2, 2]
    assert "at_pixel_threshold" not in report


def test_eval_shots_names_every_unusable_labelled_image_before_extracting(capsys, tmp_path, monkeypatch):
    """--shots read each labelled image only while extracting its features: the first that did not decode (or whose
    mask was of another size) stopped it there, minutes into NEU's 1,800 images, naming that one alone."""
    import model.fit_types
    from tests.model.types_data import write_labels

    labels = write_labels(tmp_path / "labels", 3, types=("blob", "scratch"))
    (labels / "blob" / "001.png").write_bytes(b"not a png")
    cv2.imwrite(str(labels / "scratch" / "002_mask.png"), np.zeros((40, 40), np.uint8))

    def no_extraction(*a, **k):
        raise AssertionError("extracted features before checking the labelled images")

    monkeypatch.setattr(model.fit_types, "extract_features", no_extraction)
    rc, out, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "1", "--seeds", "1", "--size", "64")
    assert_one_line_error(rc, err, "2 of 6 labelled images cannot be used", "001.png: cannot be decoded",
                          "002_mask.png: 40x40 px but its image is 96x96", "fix or remove them")
    assert out == ""


def test_eval_says_the_overlap_check_was_skipped_below_its_training_images(capsys, tiny_ckpt, tmp_path):
    """With 3 training images the twin rule (nearest < 0.75 x the 4th nearest) cannot apply, and the report read
    "0 good and 0 defect twins", as if the test set had been checked and found apart from training."""
    import json

    from tests.synthetic import write_mvtec

    data = write_mvtec(tmp_path / "few", n_train=3, n_good_test=2, n_defect=2)
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json")
    assert rc == 0, err
    overlap = json.loads(out)["train_overlap"]
    assert "good_twins" not in overlap and "train/good has 3 image(s)" in overlap["skipped"] and "at least 4" in overlap["skipped"]
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data)
    assert rc == 0 and "overlap check skipped: train/good has 3 image(s)" in out, err


def test_eval_names_a_ground_truth_folder_named_unlike_its_type(capsys, tiny_ckpt, tiny_data, tmp_path):
    """ground_truth/Blob (or blobs) beside test/blob: its masks were silently unused, and eval said only that none of the
    defect images had a mask, leaving the user to look for masks that were there."""
    for name in ("Blob", "blobs"):
        data = _copy(tiny_data, tmp_path / name)
        (data / "ground_truth" / "blob").rename(data / "ground_truth" / name)
        rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap")
        assert rc == 0, err
        assert (f"note: {data / 'ground_truth' / name}: there is no test/{name}, so the masks in it are not used; if they are "
                "test/blob's, rename the folder blob") in out
    rc, out, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--no-overlap")
    assert rc == 0 and "masks in it are not used" not in out, err


def test_eval_tells_masks_redrawn_since_the_pixel_threshold_was_chosen_on_them(capsys, tiny_ckpt, tiny_data, tmp_path):
    """The test-set digest knew images and labels alone: after QA redrew a mask, eval still said the pixel threshold was
    'chosen on these masks'."""
    import json

    data = _copy(tiny_data, tmp_path / "data")
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    assert rc == 0 and json.loads(out)["at_pixel_threshold"]["calibrated_on_these_images"] is True, err
    mask = sorted((data / "ground_truth" / "blob").iterdir())[0]
    cv2.imwrite(str(mask), np.pad(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)[2:], ((0, 2), (0, 0))))  # moved 2 px up
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    px = json.loads(out)["at_pixel_threshold"]
    assert rc == 0 and px["calibrated_on_these_images"] is False and px["masks_changed"] is True, err
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap")
    assert "they have changed since" in out and "(chosen on these masks)" not in out, err


def test_eval_prints_the_average_precisions_its_json_gives(capsys, tiny_ckpt, tiny_data):
    """image_ap and pixel_ap were in the JSON alone: the text view, the one QA reads, left them out."""
    import json

    rc, out, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--no-overlap")
    report = json.loads(out)
    rc, out, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--no-overlap")
    lines = out.splitlines()
    assert rc == 0 and report["pixel_ap"] is not None, err
    for key in ("image_ap", "pixel_ap"):
        assert f"  {key:18} {report[key]}" in lines


def test_eval_prints_an_undefined_pixel_rate_as_a_dash_and_says_why():
    """A pixel threshold no pixel reaches printed `pixel precision None`."""
    from inspector.commands.evaluate import _pixel_rates

    assert _pixel_rates({"precision": None, "recall": 0.0, "f1": 0.0}) == "pixel precision -, recall 0.0, F1 0.0 (no pixel over it)"
    assert _pixel_rates({"precision": 0.5, "recall": 0.25, "f1": 0.3333}) == "pixel precision 0.5, recall 0.25, F1 0.3333"
