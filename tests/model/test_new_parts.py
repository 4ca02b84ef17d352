"""Cross-validation over training parts (model/new_parts.py)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

import model.new_parts as new_parts
from model.calibration import Policy
from model.data import Dataset, load_dataset
from model.defect_learning import BLEND, DefectLearning
from model.errors import InspectorError
from model.fit import FitOptions
from model.new_parts import new_parts_report, options_from_manifest, part_folds
from model.progress import silent

SMALL = {"input_size": 64, "coreset_ratio": 0.25, "batch_size": 8}


def test_part_folds_keep_each_part_whole_and_spread_parts_evenly():
    parts = np.array([7, 7, 7, 3, 3, 9, 1, 1, 5, 2, 2, 2])
    fold = part_folds(parts, 3)
    for p in np.unique(parts):
        assert len(set(fold[parts == p])) == 1
    per_fold = [len(set(parts[fold == k])) for k in range(3)]
    assert sorted(per_fold) == [2, 2, 2]


def test_fit_options_come_back_from_a_manifest_as_fitted():
    opts = FitOptions(input_size=64, references=8, ref_radius=0, augment=("hflip",), layers=(2, 3),
                      defects=DefectLearning(synth=4, types=("scratch",)))
    stored = json.loads(json.dumps({**asdict(opts), "policy": {"kind": "escape", "target": 0.01}, "unknown_later_field": 1}))
    back = options_from_manifest(stored, "m.ckpt")
    assert back == opts  # tuples restored, nested settings rebuilt, unknown keys and the escape policy dropped (the refits have no defects)
    assert back.peers == 20 and back.peer_position and back.neighbours == 3
    assert options_from_manifest({k: v for k, v in stored.items() if k != "neighbours"}, "m.ckpt").neighbours == 1  # before --neighbours
    stored.pop("peer_position")
    back = options_from_manifest(stored, "m.ckpt")
    assert back.peers == 20 and not back.peer_position  # fitted with peers but before their position statistics
    stored.pop("peers")
    assert options_from_manifest(stored, "m.ckpt").peers == 0  # fitted before --peers existed: refitted without it
    assert back.position_norm and back.normalize_input
    old = options_from_manifest({k: v for k, v in stored.items() if k not in ("position_norm", "normalize_input")}, "m.ckpt")
    assert not old.position_norm and not old.normalize_input  # fitted before either existed: refitted without, as it ran
    assert back.defects.blend == BLEND
    stored["defects"].pop("blend")
    assert options_from_manifest(stored, "m.ckpt").defects.blend is None  # before --blend: chosen on validation defects
    assert back.defects.head == "context"
    stored["defects"].pop("head")
    assert options_from_manifest(stored, "m.ckpt").defects.head == "patch"  # before --synth-head: a per-patch classifier
    assert options_from_manifest({**stored, "policy": {"kind": "far", "target": 0.002}}, "m.ckpt").policy == Policy("far", 0.002)
    with pytest.raises(InspectorError, match="m.ckpt: its manifest records no fit options"):
        options_from_manifest(None, "m.ckpt")


def test_held_out_parts_are_never_fitted_on_and_obvious_defects_rank_above_them(tiny_data, monkeypatch):
    dataset = load_dataset(tiny_data)
    parts = np.array([0, 0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 8])  # pretend pairs of images are captures of one part
    fitted_on = []
    real_fit = new_parts.fit

    def spy(ds, options, progress, framing=None):
        fitted_on.append({s.path for s in ds.train})
        assert not options.defects.enabled  # the learnt branch shapes only the map, never the score it would rank
        assert framing is None  # none given: each refit makes its own from the options
        return real_fit(ds, options, progress, framing)

    bars = []
    monkeypatch.setattr(new_parts, "fit", spy)
    options = FitOptions(**SMALL, defects=DefectLearning(synth=8))
    report = new_parts_report(dataset, options, folds=3, parts=parts, progress=lambda desc, total: bars.append(desc) or silent(desc, total))
    fold = part_folds(parts, 3)
    for k, seen in enumerate(fitted_on):
        held = {s.path for s, f in zip(dataset.train, fold) if f == k}
        assert held and not held & seen and len(seen) + len(held) == len(dataset.train)
    assert report["folds"] == 3 and report["parts"] == 9 and report["n_good"] == 12 and report["n_defect"] == 4
    assert len(report["image_auroc_per_fold"]) == 3 and report["image_auroc"] >= 0.9
    rates = report["good_only_threshold"]
    assert rates["policy"] == {"kind": "far", "target": 0.01} and len(rates["false_alarm_rate_per_fold"]) == 3
    assert rates["escape_rate"] < 0.5  # obvious defects fail even at a threshold set for few false alarms
    check = rates["check"]
    assert check["intended"] == [0.5, 0.2, 0.1, 0.05] and len(check["observed"]) == 4
    assert check["observed"][0] > 0 and check["observed"] == sorted(check["observed"], reverse=True)  # higher thresholds fail fewer
    assert "new parts 3/3: features" in bars  # each refit's own steps show which fold they belong to


def test_a_looser_false_alarm_target_fails_more_new_good_parts_and_passes_fewer_defects(tiny_data):
    dataset = load_dataset(tiny_data)
    parts = np.arange(len(dataset.train))
    strict, loose = (new_parts_report(dataset, FitOptions(**SMALL, policy=Policy("far", t)), folds=2, parts=parts)["good_only_threshold"]
                     for t in (0.0, 0.6))
    assert loose["policy"]["target"] == 0.6 and loose["false_alarm_rate"] > strict["false_alarm_rate"]
    assert loose["escape_rate"] <= strict["escape_rate"]


def test_bad_requests_say_what_is_missing(tiny_data):
    dataset = load_dataset(tiny_data)
    parts = np.arange(len(dataset.train)) // 6  # two parts only
    with pytest.raises(InspectorError, match="2 distinct part.*--new-parts 3 needs at least 3"):
        new_parts_report(dataset, FitOptions(**SMALL), folds=3, parts=parts)
    with pytest.raises(InspectorError, match="--new-parts 1: give at least 2 folds"):
        new_parts_report(dataset, FitOptions(**SMALL), folds=1, parts=parts)
    few = Dataset(dataset.root, dataset.train[:8], dataset.test)  # a refit of 4: fit refuses it, so it is said first
    with pytest.raises(InspectorError, match="a refit without a fold's parts keeps 4 good image\\(s\\), and fitting needs at least 5"):
        new_parts_report(few, FitOptions(**SMALL), folds=2, parts=np.arange(8))
    dataset.test = [s for s in dataset.test if not s.is_defect]
    with pytest.raises(InspectorError, match="test/<defect> images; there are none"):
        new_parts_report(dataset, FitOptions(**SMALL), folds=2, parts=parts)


def test_every_refit_frames_the_part_as_the_model_does(tmp_path, monkeypatch):
    """The model's own framing (its region, --locate template and --ignore mask) goes to each refit as it is: a fold
    without the first training image, where the region was given, frames the part as the model does (made afresh, it
    took another image's place, or found the part only weakly), and the mask's file is not read again (here: gone)."""
    import cv2

    from model.fit import fit
    from model.framing import Framing
    from tests.inspector.test_roi import NOMINAL, marked, placed
    from tests.synthetic import defect_image, good_image

    rng = np.random.default_rng(3)
    for sub, n, image in (("train/good", 10, lambda i: marked(good_image(i))), ("test/good", 2, lambda i: marked(good_image(80 + i))),
                          ("test/blob", 2, lambda i: marked(defect_image(i)[0]))):
        (tmp_path / sub).mkdir(parents=True)
        for i in range(n):
            dx, dy = (int(v) for v in rng.integers(-10, 11, 2)) if i or sub != "train/good" else (0, 0)
            cv2.imwrite(str(tmp_path / sub / f"{i:03d}.png"), placed(image(i), dx, dy, 40 + i))
    dataset = load_dataset(tmp_path)
    mask = np.zeros((64, 64), bool)
    mask[2:10, 40:60] = True
    framing = Framing.fitted(NOMINAL, 14, lambda: ((cv2.imread(str(s.path))[..., ::-1], str(s.path)) for s in dataset.train))
    framing = framing.with_ignore(mask, (130, 140))
    options = FitOptions(**SMALL, roi=NOMINAL, locate=14, ignore=(str(tmp_path / "moved_away.png"),))
    framed = []

    def spy(ds, opts, progress, **kw):
        net, report = fit(ds, opts, progress, **kw)
        framed.append((dataset.train[0].path in {s.path for s in ds.train}, net.config.framing))
        return net, report

    monkeypatch.setattr(new_parts, "fit", spy)
    report = new_parts_report(dataset, options, folds=2, parts=np.arange(10), framing=framing)
    assert len(report["image_auroc_per_fold"]) == 2
    assert sorted(first for first, _ in framed) == [False, True]  # one refit lacks the first image
    assert all(f == framing for _, f in framed)
