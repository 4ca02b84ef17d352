"""Thresholds for a target false-alarm or escape rate, on constructed scores; the policy fit() picks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.calibration import (
    Calibration,
    Policy,
    calibrate,
    cross_validated_pixel_threshold,
    cross_validated_rates,
    threshold_for,
    trade_off_note,
    unresolved_note,
)
from model.errors import InspectorError


def far(good, thr) -> float:
    return float((np.asarray(good) >= thr).mean())


def escape(defect, thr) -> float:
    return float((np.asarray(defect) < thr).mean())


def test_far_on_evenly_spaced_scores():
    good = np.arange(100.0)  # 0..99
    thr = threshold_for(Policy("far", 0.05), good)
    assert 94.0 < thr < 95.0  # fails exactly 95..99
    assert far(good, thr) == pytest.approx(0.05)
    thr0 = threshold_for(Policy("far", 0.0), good)
    assert thr0 > 99.0 and far(good, thr0) == 0.0


def test_far_with_tied_top_scores_does_not_exceed_the_target():
    good = np.array([1.0, 2.0, 3.0, 3.0])
    thr = threshold_for(Policy("far", 0.25), good)
    assert far(good, thr) <= 0.25  # a threshold of 3.0 would fail both 3.0s (50%)
    assert thr > 3.0


@pytest.mark.parametrize("seed", range(20))
def test_far_is_met_and_is_the_lowest_such_threshold(seed):
    rng = np.random.default_rng(seed)
    good = rng.integers(0, 15, rng.integers(5, 60)).astype(float)  # many ties
    target = float(rng.choice([0.0, 0.01, 0.05, 0.1, 0.3]))
    thr = threshold_for(Policy("far", target), good)
    assert far(good, thr) <= target + 1e-12
    below = good[good < thr]
    if below.size:  # any threshold at or below the next lower good score would fail too many
        assert far(good, below.max()) > target
    assert thr not in good  # never exactly on a calibration score


def test_thresholds_keep_a_margin_from_neighbouring_scores():
    """Midway between calibration scores: a part scored 1e-6 differently by another runtime keeps its verdict."""
    good, defect = np.array([0.0, 1.0, 2.0, 3.0]), np.array([3.5, 5.0, 9.0])
    assert threshold_for(Policy("far", 0.0), good, defect) == pytest.approx(3.25)  # between good 3 and defect 3.5
    assert threshold_for(Policy("escape", 0.0), good, defect) == pytest.approx(3.25)
    assert threshold_for(Policy("escape", 0.34), good, defect) == pytest.approx(4.25)  # 3.5 may escape: 5 must not
    lone = threshold_for(Policy("far", 0.0), np.array([10.0]))
    assert 10.0 < lone <= 10.5


def test_escape_on_evenly_spaced_scores():
    defect = np.arange(50.0, 150.0)
    thr = threshold_for(Policy("escape", 0.02), np.zeros(10), defect)
    assert thr == 51.5 and escape(defect, thr) == pytest.approx(0.02)  # midway below the defect that must fail


@pytest.mark.parametrize("seed", range(20))
def test_escape_is_met_and_is_the_highest_such_threshold(seed):
    rng = np.random.default_rng(1000 + seed)
    defect = rng.integers(0, 15, rng.integers(3, 60)).astype(float)
    target = float(rng.choice([0.0, 0.01, 0.1, 0.25]))
    thr = threshold_for(Policy("escape", target), np.zeros(3), defect)
    assert escape(defect, thr) <= target + 1e-12
    lowest_caught = defect[defect >= thr].min()  # raising the threshold past it would let too many through
    assert escape(defect, np.nextafter(lowest_caught, np.inf)) > target
    assert thr not in defect


def test_escape_needs_defects_and_far_needs_good():
    with pytest.raises(InspectorError, match="needs defect images"):
        threshold_for(Policy("escape", 0.01), np.arange(5.0), np.array([]))
    with pytest.raises(InspectorError, match="at least one good"):
        threshold_for(Policy("far", 0.01), np.array([]))


@pytest.mark.parametrize("kind, target, says", [("recall", 0.01, "calibration policy 'recall': use 'escape' or 'far'"),
                                                 ("far", 1.0, r"calibration target 1.0: give a rate in \[0, 1\)"),
                                                 ("escape", -0.1, r"calibration target -0.1: give a rate in \[0, 1\)")])
def test_bad_policy_is_refused(kind, target, says):
    with pytest.raises(InspectorError, match=says):
        Policy(kind, target)


def test_calibration_summary_reports_rates():
    cal = calibrate(np.arange(10.0), np.array([5.0, 20.0, 30.0]), Policy("escape", 0.34), "constructed")
    s = cal.summary()
    assert s["threshold"] == 14.5 and s["escape"] == pytest.approx(1 / 3) and s["far"] == 0.0
    assert s["n_good"] == 10 and s["n_defect"] == 3 and s["policy"] == {"kind": "escape", "target": 0.34}
    json.dumps(s)


def test_too_few_calibration_images_for_the_target_are_named():
    note = unresolved_note(Policy("far", 0.01), 6, 0)
    assert note.startswith("6 good calibration images cannot resolve a 0.01 false-alarm target (that takes 100)")
    assert unresolved_note(Policy("far", 0.01), 100, 0) is None
    assert "4 defect calibration images" in unresolved_note(Policy("escape", 0.05), 1000, 4)
    assert unresolved_note(Policy("escape", 0.05), 3, 20) is None  # the good images do not count for escapes
    zero = unresolved_note(Policy("escape", 0.0), 100, 3)  # 3 of 3 defects caught says little about new parts (None before)
    assert zero.startswith("a 0 escape target clears all 3 defect calibration images") and "below 1 (95% confidence)" in zero
    assert "below 0.03" in unresolved_note(Policy("far", 0.0), 100, 0)
    assert "cannot resolve" in calibrate(np.arange(6.0), np.array([]), Policy("far", 0.01), "constructed").summary()["note"]


def test_fit_calibrates_on_defects_when_the_data_has_them(tiny_ckpt, tiny_data):
    from model.checkpoint import load_checkpoint
    from model.data import load_dataset
    from model.evaluate import score_samples

    m = json.loads((tiny_ckpt / "manifest.json").read_text())
    cal, scores = m["calibration"], m["calibration_scores"]
    assert cal["policy"] == {"kind": "escape", "target": 0.01}
    assert len(scores["defect"]) == 4 and len(scores["good"]) == 12 + 4  # out-of-sample training + test good
    # eval's held-out rates take the first training.n_images good scores as the training ones: the test
    # images' own scores must come after them, in test order
    test = load_dataset(tiny_data).test
    net, _ = load_checkpoint(tiny_ckpt)
    test_scores = score_samples(net.eval(), test).scores
    good = np.array([not s.is_defect for s in test])
    assert m["training"]["n_images"] == 12
    assert np.allclose(scores["good"][12:], test_scores[good], atol=1e-4)
    assert np.allclose(scores["defect"], test_scores[~good], atol=1e-4)
    expected = threshold_for(Policy("escape", 0.01), np.array(scores["good"]), np.array(scores["defect"]))
    assert m["thresholds"]["image"] == pytest.approx(expected)
    # and by hand: 1 % of 4 defects allows none to escape, and the threshold fails no good part it need not
    thr, below = m["thresholds"]["image"], [g for g in scores["good"] if g < min(scores["defect"])]
    assert escape(scores["defect"], thr) == 0 and (not below or thr > max(below))
    # the pixel threshold came from the test masks
    assert "masks" in cal["pixel_threshold_source"]


def test_fit_calibrates_on_good_images_without_defects(tiny_data, tmp_path):
    """A plain folder of good images: false-alarm policy on held-out (out-of-sample) good scores."""
    from model.data import load_dataset
    from model.fit import FitOptions, fit

    ds = load_dataset(tiny_data / "train" / "good")
    ds.train = ds.train[:6]
    _, report = fit(ds, FitOptions(input_size=64, coreset_ratio=0.5, batch_size=8))
    assert report.calibration["policy"] == {"kind": "far", "target": 0.01}
    assert report.scores["defect"] == [] and len(report.scores["good"]) == 6
    assert report.thresholds["image"] == pytest.approx(threshold_for(Policy("far", 0.01), np.array(report.scores["good"])))
    assert far(report.scores["good"], report.thresholds["image"]) == 0.0


def test_held_out_rates_show_what_in_sample_calibration_hides():
    # escape 0 must fail the defect at -1, so in sample every good part fails and no defect escapes;
    # held out, -1 escapes in its own fold (a quarter of the defects) and only that fold's good part passes
    good, defect = np.arange(4.0), np.array([-1.0, 10.0, 11.0, 12.0])
    policy = Policy("escape", 0.0)
    in_sample = threshold_for(policy, good, defect)
    assert far(good, in_sample) == 1.0 and escape(defect, in_sample) == 0.0
    for seed in range(5):
        rates = cross_validated_rates(policy, good, defect, seed=seed)
        assert rates == {"folds": 4, "false_alarm_rate": 0.75, "escape_rate": 0.25}


def test_held_out_rates_use_fixed_scores_only_for_calibrating():
    # the fixed good scores push every far threshold above 100: nothing held out can fail
    rates = cross_validated_rates(Policy("far", 0.0), np.arange(10.0), np.array([50.0] * 4), fixed_good=np.array([100.0]))
    assert rates["false_alarm_rate"] == 0.0 and rates["escape_rate"] == 1.0
    assert cross_validated_rates(Policy("escape", 0.01), np.arange(10.0), np.array([50.0])) is None  # one defect: no fold to hold out


def test_held_out_pixel_threshold_shows_what_in_sample_f1_hides():
    """Four defect images of four pixels, the first two pixels defective; the fourth's defect is faint.
    Chosen on all four, threshold 0.35 finds every defect pixel with no false one (F1 1.0). Left out,
    the fourth image is judged by 0.7 (the F1-max of the three clear ones) and both its pixels are
    missed; the other three are judged by 0.35: 6 of 8 defect pixels, none false."""
    masks = np.array([[1, 1, 0, 0]] * 4, dtype=bool).reshape(4, 1, 4)
    maps = np.array([[0.9, 0.9, 0.1, 0.1], [0.8, 0.8, 0.2, 0.2], [0.7, 0.7, 0.3, 0.3], [0.35, 0.35, 0.25, 0.25]]).reshape(4, 1, 4)
    held = cross_validated_pixel_threshold(masks, maps)
    assert held == {"folds": 4, "precision": 1.0, "recall": 0.75, "f1": round(12 / 14, 4)}
    assert cross_validated_pixel_threshold(masks[:1], maps[:1]) is None  # one defect image: nothing to hold out


def test_nan_scores_never_become_a_threshold_and_fail_their_parts():
    good = np.r_[np.arange(300.0), np.nan]  # np.sort puts NaN last: a NaN threshold passed every part before
    for policy, defect in ((Policy("far", 0.0), None), (Policy("escape", 0.9), np.r_[np.arange(10.0) + 400, [np.nan] * 3])):
        with pytest.raises(InspectorError, match=r"calibration: \d of \d+ scores are NaN or infinity"):
            threshold_for(policy, good, defect)
    from inspector.decision import DecisionConfig, decide

    assert decide(float("nan"), np.zeros((8, 8), np.float32), 1.0, 1.0, DecisionConfig())[0] == "FAIL"  # PASS before
    cal = Calibration([1.0] * 99 + [float("nan")], [20.0, float("nan")], Policy("escape", 0.01), 15.0, "constructed")
    assert cal.summary()["far"] == pytest.approx(0.01) and cal.summary()["escape"] == 0.0  # as decide() judges NaN (far 0.0 before)


def test_a_target_just_below_one_is_met_not_an_index_error():
    good, defect = np.arange(100.0), np.arange(100.0) + 50
    thr = threshold_for(Policy("escape", 0.999999999999), good, defect)  # IndexError before
    assert (defect >= thr).sum() >= 1
    thr = threshold_for(Policy("far", 0.999999999999), good, defect)
    assert (good >= thr).sum() == 99  # every good part failed before (the threshold sat on the lowest score)


def test_eval_knows_its_calibration_images_by_content_not_by_folder_name(tmp_path):
    import shutil

    import cv2

    from inspector.commands.evaluate import calibrated_here
    from model.data import load_dataset
    from model.hashing import labelled_set_sha256

    root = tmp_path / "bottle"
    for folder, n in (("train/good", 2), ("test/good", 3), ("test/crack", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{i}.png"), np.full((8, 8), 40 * i + len(folder), np.uint8))
    data = load_dataset(root)
    manifest = {"calibration": {"test_sha256": labelled_set_sha256((s.path, s.defect_type) for s in data.test)}}
    moved = shutil.copytree(root, tmp_path / "bottle_2024")
    assert calibrated_here(manifest, load_dataset(moved))  # False before: another folder name
    cv2.imwrite(str(moved / "test" / "good" / "new.png"), np.full((8, 8), 7, np.uint8))
    assert not calibrated_here(manifest, load_dataset(moved))
    shutil.move(moved / "test" / "crack" / "0.png", moved / "test" / "good" / "0b.png")  # a relabelled image
    (moved / "test" / "good" / "new.png").unlink()
    assert not calibrated_here(manifest, load_dataset(moved))


def test_eval_says_what_a_small_test_set_cannot_measure():
    from model.evaluate import resolution_notes

    notes = resolution_notes(40, 12)
    assert notes[0].startswith("fpr_at_recall_99: 12 defect images cannot resolve 99% recall") and "tpr_at_fpr_1: 40 good" in notes[1]
    assert resolution_notes(243, 191) == [] and resolution_notes(40, 0) == []


def test_nan_scores_stop_eval_with_the_image_named(tmp_path):
    import cv2

    from model.data import Sample
    from model.evaluate import score_samples

    samples = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8), 50 * i, np.uint8))
        samples.append(Sample(tmp_path / f"{i}.png"))

    def predict(batch):  # a model whose float16 overflowed on the second image
        return np.array([np.nan if b.mean() > 0.1 and b.mean() < 0.3 else 1.0 for b in batch]), np.zeros((len(batch), 16, 16))

    with pytest.raises(InspectorError, match=r"1 of 3 images as NaN or infinity \(first: .*1\.png\)"):
        score_samples(predict, samples, size=(16, 16))


def test_a_costly_threshold_is_named_with_what_the_other_target_would_cost():
    good, defect = np.arange(100.0), np.arange(50.0, 150.0)  # overlapping: escape 1% fails about half the good ones
    thr = threshold_for(Policy("escape", 0.01), good, defect)
    note = trade_off_note(good, defect, thr, "ck")
    assert note.startswith("this threshold fails 49.0% of the good calibration images")
    assert "`inspector threshold ck --far 0.05` would fail at most 5% of them and let 45.0% of the defect ones pass" in note
    thr = threshold_for(Policy("far", 0.01), good, defect)
    note = trade_off_note(good, defect, thr, "ck")
    assert note.startswith("this threshold lets 49.0% of the defect calibration images pass")
    assert "--escape 0.05` would let at most 5% pass and fail 45.0% of the good ones" in note
    # separable scores, or no defect images to trade against: nothing to say
    assert trade_off_note(np.arange(10.0), np.arange(20.0, 30.0), 15.0, "ck") is None
    assert trade_off_note(good, np.array([]), 50.0, "ck") is None
