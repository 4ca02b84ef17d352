"""Anomaly-detection metrics, in NumPy: image- and pixel-level ROC, AUPRO, F1-max, operating points."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    return labels, scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); NaN if one class is absent."""
    labels, scores = _check(labels, scores)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for the rule `score >= threshold`, thresholds descending, starting at (0, 0)."""
    labels, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each distinct score (np.diff: inf - inf is NaN, not a tie)
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    n_pos, n_neg = max(int(labels.sum()), 1), max(int((~labels).sum()), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, s[last]]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the step precision-recall curve, as scikit-learn defines it)."""
    labels, scores = _check(labels, scores)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Best F1 over all thresholds, and the threshold that reaches it."""
    labels, scores = _check(labels, scores)
    fpr, tpr, thr = roc_curve(labels, scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    tp, fp = tpr * n_pos, fpr * n_neg
    fn = n_pos - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(thr[i])


def precision_recall_f1(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Precision, recall and F1 of boolean predictions (None where undefined: nothing predicted or no positives)."""
    labels, predicted = np.asarray(labels, dtype=bool).ravel(), np.asarray(predicted, dtype=bool).ravel()
    tp = int((labels & predicted).sum())
    n_pred, n_pos = int(predicted.sum()), int(labels.sum())
    return {"precision": tp / n_pred if n_pred else None, "recall": tp / n_pos if n_pos else None,
            "f1": 2 * tp / (n_pred + n_pos) if n_pred + n_pos else None}


def fpr_at_recall(labels: np.ndarray, scores: np.ndarray, recall: float) -> float:
    """Lowest false-positive rate among thresholds that catch at least `recall` of the positives."""
    fpr, tpr, _ = roc_curve(labels, scores)
    ok = tpr >= recall - 1e-12
    return float(fpr[ok].min()) if ok.any() else 1.0


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Highest true-positive rate among thresholds whose false-positive rate is at most `max_fpr`."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3, valid: np.ndarray | None = None) -> float:
    """Area under the per-region-overlap curve up to `fpr_limit`, normalised to [0, 1] (MVTec AD).

    Each connected defect region counts equally, whatever its size; the false-positive rate is over
    all defect-free pixels. Computed exactly by sorting pixels once. `valid` (bool, [H, W] or like `masks`): the
    pixels that count at all (the rest, not inspected, is neither defect nor normal).
    """
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, dtype=np.float64)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} differ in shape")
    if valid is not None:
        valid = np.broadcast_to(valid, masks.shape)
        masks, maps = masks & valid, np.where(valid, maps, -np.inf)  # below every threshold: never a false positive
    weights = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    for i in range(masks.shape[0]):
        labelled, n = ndimage.label(masks[i], structure=np.ones((3, 3)))
        if n == 0:
            continue
        sizes = np.bincount(labelled.ravel())
        w = np.zeros(n + 1)
        w[1:] = 1.0 / sizes[1:]
        weights[i] = w[labelled]
        n_regions += n
    background = ~masks if valid is None else ~masks & valid
    n_bg = int(background.sum())
    if n_regions == 0 or n_bg == 0:
        return float("nan")
    scores, fp_w, pro_w = maps.ravel(), background.ravel() / n_bg, weights.ravel() / n_regions
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    fpr = np.r_[0.0, np.cumsum(fp_w[order])[last]]
    pro = np.r_[0.0, np.cumsum(pro_w[order])[last]]
    keep = fpr <= fpr_limit
    f, p = fpr[keep], pro[keep]
    if f[-1] < fpr_limit and keep.sum() < fpr.size:
        j = keep.sum()  # interpolate the curve at exactly fpr_limit
        t = (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        f, p = np.r_[f, fpr_limit], np.r_[p, pro[j - 1] + t * (pro[j] - pro[j - 1])]
    # trapezoid rule by hand: np.trapezoid needs NumPy 2, np.trapz is gone from it
    return float(np.sum(np.diff(f) * (p[1:] + p[:-1]) / 2.0) / fpr_limit)
