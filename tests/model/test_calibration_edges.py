"""Calibration's rounding, ties, margins and held-out folds, each a fault a mutation of model/calibration.py showed no
test caught."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from model.calibration import Calibration, Policy, cross_validated_pixel_threshold, cross_validated_rates, threshold_for, trade_off_note


def _pixel_case(n_defect=8, n_good=4, seed=2):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_defect + n_good, 12, 12), bool)
    for i in range(n_defect):
        y, x = rng.integers(0, 8, 2)
        masks[i, y : y + 4, x : x + 4] = True
    maps = np.round(rng.normal(size=masks.shape) + 1.5 * masks, 2)
    return masks, maps


def test_calibration_policy_defaults_to_one_percent_false_alarms_and_is_frozen():
    assert Policy() == Policy("far", 0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Policy().target = 0.5


def test_calibration_rate_times_count_rounding_down_by_float_error_still_allows_that_many():
    # 0.145 * 200 is 28.999999999999996 in floating point: 29 good parts may fail, not 28
    good = np.arange(200.0)
    thr = threshold_for(Policy("far", 0.145), good)
    assert int((good >= thr).sum()) == 29
    # and 29 of 200 defects may pass under an escape target of 0.145
    defect = 1000.0 + np.arange(200.0)
    thr = threshold_for(Policy("escape", 0.145), good, defect)
    assert int((defect < thr).sum()) == 29


def test_calibration_escape_target_allowing_all_but_one_defect_keeps_the_last_one_failing():
    # escape 0.5 of 2 defects: one may pass, the highest (2.0) must fail; midway to the next score below (1.0)
    assert threshold_for(Policy("escape", 0.5), np.array([0.1, 0.2]), np.array([1.0, 2.0])) == pytest.approx(1.5)


def test_calibration_trade_off_note_from_more_than_10_percent_false_alarms():
    good, defect = np.arange(20.0), 100.0 + np.arange(5.0)
    assert trade_off_note(good, defect, 16.5, "m.onnx") is not None  # 3 of 20 good fail: 15 %
    assert trade_off_note(good, defect, 18.5, "m.onnx") is None  # 1 of 20: 5 %


def test_calibration_trade_off_note_counts_a_tie_as_failed_and_needs_more_than_10_percent():
    good, defect = np.arange(20.0), 100.0 + np.arange(20.0)
    assert trade_off_note(good, defect, 17.0, "m") is not None  # 17, 18, 19 fail (a score at the threshold fails): 15 %
    assert trade_off_note(good, defect, 18.0, "m") is None  # exactly 10 %: not more than 10 %
    assert trade_off_note(good, defect, 102.0, "m") is None  # 100 and 101 pass: escape exactly 10 %
    assert trade_off_note(good, defect, 102.5, "m") is not None  # 100, 101, 102 pass: 15 %
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trade_off_note(np.array([]), defect, 1.0, "m") is None


def test_calibration_lone_extreme_score_keeps_a_5_percent_margin_at_least_1e_6():
    assert threshold_for(Policy("far", 0.0), np.array([1.0])) == pytest.approx(1.025)  # (1 + 1.05) / 2
    assert threshold_for(Policy("far", 0.0), np.array([0.0])) == pytest.approx(5e-7, rel=1e-9)  # (0 + 1e-6) / 2


def test_calibration_summary_counts_a_score_at_the_threshold_as_failed():
    s = Calibration([1.0, 2.0], [2.0, 3.0], Policy(), 2.0, "test").summary()
    assert (s["far"], s["escape"]) == (0.5, 0.0)


def test_calibration_cross_validation_holds_out_defaults_to_5_folds_seed_0_and_works_from_2_images():
    # far 0 on 0..19: only the fold holding 19 is judged by a threshold below it: 1 alarm in 20
    r = cross_validated_rates(Policy("far", 0.0), np.arange(20.0), np.array([]))
    assert r == {"folds": 5, "false_alarm_rate": 0.05, "escape_rate": None}
    assert cross_validated_rates(Policy("far", 0.0), [1.0, 2.0], []) == {"folds": 2, "false_alarm_rate": 0.5, "escape_rate": None}
    rng = np.random.default_rng(5)
    g, d = np.round(rng.normal(size=30), 3), np.round(rng.normal(size=12) + 2, 3)
    assert cross_validated_rates(Policy("escape", 0.1), g, d) == {"folds": 5, "false_alarm_rate": 0.1667, "escape_rate": 0.0833}


def test_calibration_pixel_cross_validation_defaults_and_two_defect_images():
    masks, maps = _pixel_case()
    r = cross_validated_pixel_threshold(masks, maps)
    assert r == {"folds": 5, "precision": 0.4032, "recall": 0.5859, "f1": 0.4777}  # good images folded too; `>=` threshold
    assert r == cross_validated_pixel_threshold(masks, maps, folds=5, seed=0)
    assert r != cross_validated_pixel_threshold(masks, maps, folds=5, seed=1)
    assert r != cross_validated_pixel_threshold(masks, maps, folds=4, seed=0)
    masks2, maps2 = _pixel_case(n_defect=2)
    assert cross_validated_pixel_threshold(masks2, maps2)["folds"] == 2
