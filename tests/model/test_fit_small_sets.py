"""`inspector fit` end to end: the smallest training sets fit and the options that starve the memory bank."""

from __future__ import annotations

import math

import pytest
import torch

import model.fit as fit_module
from model.data import Dataset, load_dataset
from model.defect_learning import DefectLearning
from model.errors import InspectorError
from model.fit import FitOptions, fit, fit_good_only
from tests.cli import assert_one_line_error, cli


def _few(tiny_data, n: int) -> Dataset:
    ds = load_dataset(tiny_data / "train" / "good")
    return Dataset(ds.root, ds.train[:n])


def test_five_images_learn_from_generated_defects(tiny_data):
    """Of exactly 5 good images (fit's minimum) one alone was held out to standardise the learnt branch: the spread of
    one map's maximum is NaN, every score was NaN, and fit said to export in float32."""
    net, report = fit(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=0.25, batch_size=8,
                                                     defects=DefectLearning(synth=3, steps=3)))
    assert torch.isfinite(net.head.seg_norm).all()
    assert report.training["generated_defects"]["held_out_good"] == 2
    assert math.isfinite(report.thresholds["image"]) and all(map(math.isfinite, report.scores["good"]))


def test_a_one_patch_bank_is_refused_before_the_feature_pass(tiny_data, monkeypatch):
    """--coreset 1e-9 keeps one patch, one image's, which then has nothing to be scored against out-of-sample: every
    score was NaN, said after the whole fit as a model to export in float32."""
    def no_features(*args, **kwargs):
        raise AssertionError("the feature pass ran")

    monkeypatch.setattr(fit_module, "load_batches", no_features)
    with pytest.raises(InspectorError, match=r"--coreset 1e-09: the memory bank would keep 1 of the 320 patches.*larger --coreset"):
        fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1e-9))


def test_a_bank_of_one_image_names_the_coreset(tiny_data, monkeypatch):
    """A bank of a few patches that all come from one image leaves that image infinitely far out-of-sample."""
    monkeypatch.setattr(fit_module, "greedy_coreset", lambda x, k, **kw: torch.arange(k))  # the first image's patches
    ds = _few(tiny_data, 5)
    with pytest.raises(InspectorError, match=rf"--coreset 0.01: the memory bank keeps 3 of 320 patches, all from one training "
                                             rf"image, {ds.train[0].path}, .*larger --coreset"):
        fit(ds, FitOptions(input_size=64, coreset_ratio=0.01))


def test_cli_tiny_coreset_is_one_line(tmp_path, tiny_data, capsys):
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "ck", "--size", "64", "--synth", "0", "--coreset", "1e-9")
    assert_one_line_error(rc, err, "--coreset 1e-09", "larger --coreset")
    assert not (tmp_path / "ck").exists()


def test_capped_references_are_said_and_recorded(tmp_path, tiny_data, capsys):
    """--references and --ref-k beyond the training images were capped silently, and the manifest's options kept the
    values asked for, not those the model uses (as --neighbours and --peers already record them)."""
    import json

    out = tmp_path / "ck"
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", out, "--size", "64", "--references", "1000", "--ref-k", "999")
    assert rc == 0, err
    options, net = (json.loads((out / "manifest.json").read_text())[k] for k in ("options", "net"))
    assert options["references"] == net["references"] == 12 and options["ref_k"] == net["ref_k"] == 11
    assert "note: --references 1000: there are 12 distinct training images, so 12 were used" in err
    assert "note: --ref-k 999:" in err and "so 11 were used" in err


def test_coreset_of_every_patch_completes_its_progress():
    """--coreset 1.0 keeps every patch at once, and the coreset bar stood at 0 of them."""
    from model.coreset import greedy_coreset

    done = []
    assert greedy_coreset(torch.randn(10, 4), 10, progress=done.append).tolist() == list(range(10))
    assert sum(done) == 10
    done.clear()
    greedy_coreset(torch.randn(600, 4), 300, progress=done.append)
    assert sum(done) == 300


def test_room_for_references_counts_the_images_there_are():
    """--references N keeps at most the training images: the room check counted N of them, and --references 1000 of 5
    images asked for about 2 GB free."""
    from inspector.commands.fit import checkpoint_mb

    assert checkpoint_mb(5, FitOptions(references=1000)) == checkpoint_mb(5, FitOptions(references=5)) < 100
    assert checkpoint_mb(500, FitOptions(references=256)) > checkpoint_mb(200, FitOptions(references=256))


def test_a_test_defect_among_the_good_images_is_refused(tmp_path, tiny_data, capsys):
    """A test defect copied into train/good was learnt as normal and calibrated on: the threshold fell to fail it,
    70.6 % false alarms on this data, and the note's --far alternative let every defect pass."""
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    shutil.copy(data / "test" / "blob" / "001.png", data / "train" / "good" / "zz.png")
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "ck", "--size", "64", "--synth", "0")
    assert_one_line_error(rc, err, "train/good/zz.png", "test/blob/001.png", "remove it from the good images")
    assert not (tmp_path / "ck").exists()
