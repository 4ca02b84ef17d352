"""Edge cases of the metrics (one class, ties at the curve's start, integer masks, computed rates), each a fault a mutation
of model/metrics.py showed no test caught."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from model.metrics import aupro, average_precision, f1_max, fpr_at_recall, precision_recall_f1, roc_auc, roc_curve, tpr_at_fpr


def _aupro_case():
    rng = np.random.default_rng(3)
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:6, 3:9] = True
    masks[1, 8:14, 8:12] = True
    masks[1, 1:3, 1:3] = True
    maps = rng.normal(size=masks.shape) + 1.5 * masks
    return masks, maps


def test_metrics_roc_auc_with_a_single_positive_or_negative_and_nan_without_warnings():
    # a defect type with one image still gets an AUROC (per-type AUROC in model/evaluate.py)
    assert roc_auc(np.array([0, 0, 1]), np.array([0.1, 0.3, 0.2])) == pytest.approx(0.5)
    assert roc_auc(np.array([0, 1, 1]), np.array([0.1, 0.3, 0.2])) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN by the guard, not by 0/0
        assert np.isnan(roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3])))
        assert np.isnan(roc_auc(np.zeros(3), np.array([0.1, 0.2, 0.3])))


def test_metrics_roc_curve_with_one_positive_and_with_one_class():
    fpr, tpr, thr = roc_curve(np.array([0, 1, 0]), np.array([0.2, 0.9, 0.5]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0, 1.0, 1.0, 1.0])
    fpr, tpr, _ = roc_curve(np.array([1, 0, 1]), np.array([0.2, 0.9, 0.5]))  # one negative
    np.testing.assert_allclose(fpr, [0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(tpr, [0, 0, 0.5, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fpr, tpr, _ = roc_curve(np.zeros(2), np.array([0.1, 0.2]))
        np.testing.assert_array_equal(tpr, [0, 0, 0])  # finite, not 0/0
        fpr, tpr, _ = roc_curve(np.ones(2), np.array([0.1, 0.2]))
        np.testing.assert_array_equal(fpr, [0, 0, 0])


def test_metrics_average_precision_one_positive_and_no_positive():
    assert average_precision(np.array([0, 1, 0]), np.array([0.1, 0.9, 0.3])) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(average_precision(np.zeros(3), np.array([0.1, 0.2, 0.3])))


def test_metrics_accept_lists_and_integer_masks():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    fpr, tpr, _ = roc_curve(y, s)
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1.0, 1.0])
    assert average_precision(y, s) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert f1_max(y, s) == pytest.approx((0.8, 0.35))
    # ground-truth PNG masks are uint8 0/255
    mask = np.array([0, 255, 255, 0], dtype=np.uint8)
    assert precision_recall_f1(mask, np.array([0, 1, 0, 0], bool)) == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3}
    assert precision_recall_f1([1, 1, 0], [1, 0, 0]) == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3}


def test_metrics_f1_max_without_positives_is_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f1, thr = f1_max(np.zeros(3), np.array([0.1, 0.2, 0.3]))
    assert f1 == 0.0 and thr == np.inf


def test_metrics_operating_points_tolerate_computed_rates_and_no_positives():
    # recall given as 1 - escape rate: 1 - 0.7 is 0.30000000000000004, and 3 of 10 positives (0.3) must reach it
    y = np.r_[np.ones(10), np.zeros(10)]
    s = np.r_[[0.99, 0.98, 0.97], np.linspace(0.6, 0.8, 7), [0.9], np.linspace(0.1, 0.5, 9)]
    assert fpr_at_recall(y, s, 1 - 0.7) == 0.0
    # max FPR given as 1 - 0.9 = 0.09999999999999998: one false alarm in 10 (0.1) is within it
    y2 = np.r_[np.zeros(10), np.ones(10)]
    s2 = np.r_[[0.99, 0.5], np.linspace(0.1, 0.4, 8), np.linspace(0.91, 0.95, 5), np.linspace(0.2, 0.45, 5)]
    assert tpr_at_fpr(y2, s2, 1 - 0.9) == pytest.approx(0.5)
    # no positives: no threshold reaches any recall, the worst false-positive rate is reported
    assert fpr_at_recall(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.99) == 1.0


def test_metrics_aupro_default_limit_is_mvtec_30_percent():
    masks, maps = _aupro_case()
    assert aupro(masks, maps) == pytest.approx(aupro(masks, maps, 0.3))
    assert aupro(masks, maps, 0.3) != pytest.approx(aupro(masks, maps, 0.6))


def test_metrics_aupro_takes_uint8_masks_like_bool_ones():
    masks, maps = _aupro_case()
    expected = aupro(masks, maps, 0.3)
    assert aupro(masks.astype(np.uint8) * 255, maps, 0.3) == pytest.approx(expected)
    assert aupro(masks.tolist(), maps.tolist(), 0.3) == pytest.approx(expected)


def test_metrics_aupro_when_a_good_pixel_outscores_every_defect_pixel():
    """The hand-computed case with the top score on a GOOD pixel: region 2 px (0.8, 0.5), good pixels 0.9 and 7 x 0.1.

    Curve: (0,0) -> t=.9 (1/8, 0) -> t=.8 (1/8, .5) -> t=.5 (1/8, 1) -> t=.1 (1, 1); area to .3 = (.3 - 1/8) * 1 -> 7/12.
    """
    masks = np.zeros((1, 2, 5), bool)
    masks[0, 0, :2] = True
    maps = np.full((1, 2, 5), 0.1)
    maps[0, 0, 0], maps[0, 0, 1], maps[0, 1, 4] = 0.8, 0.5, 0.9
    assert aupro(masks, maps, 0.3) == pytest.approx(7 / 12)


def test_metrics_aupro_without_good_pixels_or_regions_is_nan_and_one_good_pixel_is_enough():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(aupro(np.ones((1, 4, 4), bool), np.random.default_rng(0).random((1, 4, 4))))  # every pixel defect
        assert np.isnan(aupro(np.zeros((1, 4, 4), bool), np.random.default_rng(0).random((1, 4, 4))))  # no region
    masks = np.ones((1, 4, 4), bool)
    masks[0, 3, 3] = False  # exactly one good pixel
    maps = np.where(masks, 1.0, 0.0)
    assert aupro(masks, maps, 0.3) == pytest.approx(1.0)
