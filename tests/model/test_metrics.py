"""Metrics against hand-computed cases, brute-force references written here, and scikit-learn when installed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model.metrics import aupro, average_precision, f1_max, fpr_at_recall, precision_recall_f1, roc_auc, roc_curve, tpr_at_fpr

# the classic four-sample example (scikit-learn's docs): hand-computed values below
Y4 = np.array([0, 0, 1, 1])
S4 = np.array([0.1, 0.4, 0.35, 0.8])


def brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability a positive outscores a negative, ties counting one half: every pair compared."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def brute_ap(y: np.ndarray, s: np.ndarray) -> float:
    """sum over distinct thresholds t (descending) of (R(t) - R(previous t)) * P(t), rule `score >= t`."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(s)[::-1]:
        hit = s >= t
        tp = (hit & (y == 1)).sum()
        recall = tp / (y == 1).sum()
        ap += (recall - prev_recall) * tp / hit.sum()
        prev_recall = recall
    return float(ap)


def brute_aupro(masks: np.ndarray, maps: np.ndarray, limit: float) -> float:
    """PRO curve threshold by threshold: mean overlap of each 8-connected region, FPR over all good pixels;
    cut at `limit` by linear interpolation on the crossing segment, trapezoid rule, divided by `limit`."""
    regions = []
    for m, a in zip(masks, maps, strict=True):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(a, lab == k) for k in range(1, n + 1)]
    bg = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        fprs.append(float(((maps >= t) & bg).sum() / bg.sum()))
        pros.append(float(np.mean([(a[r] >= t).mean() for a, r in regions])))
    f, p = np.array(fprs), np.array(pros)
    area = 0.0
    for i in range(1, f.size):
        f0, f1, p0, p1 = f[i - 1], f[i], p[i - 1], p[i]
        if f0 >= limit:
            break
        if f1 > limit:  # partial segment up to the limit
            p1 = p0 + (limit - f0) / (f1 - f0) * (p1 - p0)
            f1 = limit
        area += (f1 - f0) * (p0 + p1) / 2.0
    return area / limit


# ---- image-level ----------------------------------------------------------------------------------


def test_roc_auc_hand_computed():
    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert roc_auc(Y4, S4) == pytest.approx(0.75)


def test_roc_auc_ties_count_half():
    # pos 0.5 ties neg 0.5 (1/2), beats neg 0.2 (1); pos 0.9 beats both -> 3.5 / 4
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == pytest.approx(0.875)
    assert roc_auc(np.array([0, 1, 0, 1]), np.ones(4)) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_pairwise_reference_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 7, 200).astype(float)  # only 7 distinct values: ties everywhere
    assert roc_auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)


def test_roc_auc_one_class_is_nan_and_shape_mismatch_raises():
    assert np.isnan(roc_auc(np.zeros(4), np.arange(4.0)))
    with pytest.raises(ValueError):
        roc_auc(np.zeros(3), np.zeros(4))


def test_roc_curve_points():
    fpr, tpr, thr = roc_curve(Y4, S4)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thr[1:], [0.8, 0.4, 0.35, 0.1])


def test_average_precision_hand_computed():
    # ranked: 0.8(+) P=1 R=.5; 0.4(-); 0.35(+) P=2/3 R=1 -> .5*1 + .5*2/3
    assert average_precision(Y4, S4) == pytest.approx(0.5 + 0.5 * 2 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_threshold_sweep_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    y = rng.integers(0, 2, 150)
    s = rng.integers(0, 9, 150).astype(float)
    assert average_precision(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)


def test_f1_max_hand_computed():
    # thresholds 0.8: F1 2/3; 0.4: 1/2; 0.35: tp2 fp1 -> 4/5; 0.1: 2/3
    f1, thr = f1_max(Y4, S4)
    assert f1 == pytest.approx(0.8)
    assert thr == pytest.approx(0.35)


def test_f1_max_with_ties_matches_sweep():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 12, 300).astype(float) + y * 2  # informative, tied
    best = 0.0
    for t in np.unique(s):
        pred = s >= t
        tp, fp, fn = (pred & (y == 1)).sum(), (pred & (y == 0)).sum(), (~pred & (y == 1)).sum()
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    f1, thr = f1_max(y, s)
    assert f1 == pytest.approx(best)
    pred = s >= thr  # the returned threshold reaches it
    tp, fp, fn = (pred & (y == 1)).sum(), (pred & (y == 0)).sum(), (~pred & (y == 1)).sum()
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(best)


def test_operating_points_hand_computed():
    assert fpr_at_recall(Y4, S4, 1.0) == pytest.approx(0.5)  # must go down to 0.35, past the negative 0.4
    assert fpr_at_recall(Y4, S4, 0.99) == pytest.approx(0.5)
    assert fpr_at_recall(Y4, S4, 0.5) == pytest.approx(0.0)
    assert tpr_at_fpr(Y4, S4, 0.0) == pytest.approx(0.5)
    assert tpr_at_fpr(Y4, S4, 0.49) == pytest.approx(0.5)
    assert tpr_at_fpr(Y4, S4, 0.5) == pytest.approx(1.0)
    # 100 negatives, one of which outscores every positive: recall 100% costs that false alarm, 1% FPR allows it
    y = np.r_[np.zeros(100), np.ones(10)]
    s = np.r_[np.linspace(0, 1, 99), 5.0, np.linspace(2, 3, 10)]
    assert fpr_at_recall(y, s, 1.0) == pytest.approx(0.01)
    assert tpr_at_fpr(y, s, 0.0) == pytest.approx(0.0)
    assert tpr_at_fpr(y, s, 0.01) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
def test_against_sklearn(seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + y, 1)  # rounded: ties
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))
    p, r, _ = skm.precision_recall_curve(y, s)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    assert f1_max(y, s)[0] == pytest.approx(f1.max())


# ---- AUPRO -----------------------------------------------------------------------------------------


def test_aupro_hand_computed():
    """One 2-px region (scores 0.9, 0.5), 8 good pixels: one at 0.7, seven at 0.1.

    Curve: (0,0) -> t=.9 (0, .5) -> t=.7 (1/8, .5) -> t=.5 (1/8, 1) -> t=.1 (1, 1); up to FPR 0.3:
    area = 1/8 * .5 + (.3 - 1/8) * 1 = 0.2375; normalised by 0.3 -> 19/24.
    """
    masks = np.zeros((1, 2, 5), bool)
    masks[0, 0, :2] = True
    maps = np.full((1, 2, 5), 0.1)
    maps[0, 0, 0], maps[0, 0, 1], maps[0, 1, 4] = 0.9, 0.5, 0.7
    assert aupro(masks, maps, 0.3) == pytest.approx(19 / 24)
    assert brute_aupro(masks, maps, 0.3) == pytest.approx(19 / 24)  # the reference agrees with the hand value
    # over the whole FPR range: 1/8 * .5 + 7/8 * 1
    assert aupro(masks, maps, 1.0) == pytest.approx(1 / 16 + 7 / 8)


def test_aupro_regions_count_equally_and_are_8_connected():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 0:4, 0:4] = True  # big region (16 px)
    masks[0, 8, 8] = masks[0, 9, 9] = True  # diagonal pair: ONE region under 8-connectivity
    maps = np.zeros((1, 10, 10))
    maps[0, 8, 8] = maps[0, 9, 9] = 1.0  # only the small region is found
    # at FPR 0 the PRO is already 0.5 (one of two regions fully covered), not 2/18 as pixel counting would give
    assert aupro(masks, maps, 0.3) == pytest.approx(brute_aupro(masks, maps, 0.3))
    assert aupro(masks, maps, 0.3) > 0.5


@pytest.mark.parametrize("seed", range(4))
def test_aupro_matches_threshold_by_threshold_reference(seed):
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, 16, 16), bool)
    for i in range(2):  # image 2 stays defect-free: its pixels count only as false positives
        for _ in range(2):
            y, x = rng.integers(0, 12, 2)
            masks[i, y : y + rng.integers(1, 5), x : x + rng.integers(1, 5)] = True
    maps = rng.random(masks.shape) + 0.6 * masks
    maps = np.round(maps, 2)  # ties between pixels
    for limit in (0.3, 0.05, 1.0):
        assert aupro(masks, maps, limit) == pytest.approx(brute_aupro(masks, maps, limit), abs=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_aupro_over_valid_pixels_equals_aupro_of_those_pixels_alone(seed):
    """Pixels outside `valid` (an --ignore region) count neither as defect nor as normal, whatever they hold."""
    rng = np.random.default_rng(seed)
    masks = rng.random((3, 12, 16)) > 0.8
    maps = np.round(rng.random(masks.shape) + 0.5 * masks, 2)
    valid = np.zeros((12, 16), bool)
    valid[:, :10] = True
    expected = aupro(masks[..., :10], maps[..., :10], 0.3)
    masks[..., 10:], maps[..., 10:] = True, 5.0  # what the invalid pixels hold changes nothing
    assert aupro(masks, maps, 0.3, valid) == pytest.approx(expected, abs=1e-12)
    assert aupro(masks, maps, 0.3) != pytest.approx(expected, abs=1e-3)


def test_aupro_limit_interpolates_inside_a_segment():
    """FPR jumps from 0.2 to 0.4 in one threshold step: the curve must be cut exactly at 0.3, not at 0.2 or 0.4."""
    masks = np.zeros((1, 1, 12), bool)
    masks[0, 0, :2] = True  # one region, 2 px; 10 good pixels
    maps = np.array([[[0.9, 0.3, 0.8, 0.8, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]]])
    # (0,0) -> t=.9 (0,.5) -> t=.8 (.2,.5) -> t=.5 (.4,.5) -> t=.3 (.4,1): up to .3 PRO stays .5 -> area .15
    assert aupro(masks, maps, 0.3) == pytest.approx(0.5)
    assert brute_aupro(masks, maps, 0.3) == pytest.approx(0.5)
    assert aupro(masks, maps, 0.4) == pytest.approx(0.5)  # the jump to 1 is vertical at .4: no area yet


def test_aupro_perfect_and_degenerate():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 2:5, 2:5] = True
    assert aupro(masks, masks.astype(float), 0.3) == pytest.approx(1.0)
    assert np.isnan(aupro(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4))))
    with pytest.raises(ValueError):
        aupro(masks, np.zeros((2, 8, 9)))


def test_precision_recall_f1_hand_computed():
    labels = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    assert precision_recall_f1(labels, np.array([1, 1, 0, 1, 0, 0], dtype=bool)) == {"precision": 2 / 3, "recall": 2 / 3, "f1": 4 / 6}
    assert precision_recall_f1(labels, np.zeros(6, dtype=bool)) == {"precision": None, "recall": 0.0, "f1": 0.0}
    assert precision_recall_f1(np.zeros(6, dtype=bool), np.zeros(6, dtype=bool)) == {"precision": None, "recall": None, "f1": None}


def test_infinite_scores_tie_like_any_other():
    from sklearn.metrics import average_precision_score

    y, s = np.array([1, 0, 0, 1]), np.array([np.inf, np.inf, 0.1, 0.2])
    assert average_precision(y, s) == pytest.approx(7 / 12)  # 0.833 before: inf - inf is NaN, which split the tie
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, np.where(np.isinf(s), 1e9, s)))
    fpr, tpr, _ = roc_curve(y, s)
    assert len(fpr) == 4  # (0, 0), the tie, 0.2, 0.1
