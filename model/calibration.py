"""Thresholds from score distributions: a target escape rate (missed defects) or false-alarm rate.

Applied outside the graph: the verdict is FAIL unless `score < threshold` (NaN fails), so a threshold can change without refitting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from model.errors import InspectorError


@dataclass(frozen=True)
class Policy:
    """`kind` is "escape" (fraction of defects allowed to pass) or "far" (fraction of good parts failed)."""

    kind: str = "far"
    target: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in ("escape", "far"):
            raise InspectorError(f"calibration policy {self.kind!r}: use 'escape' or 'far'")
        if not 0.0 <= self.target < 1.0:
            raise InspectorError(f"calibration target {self.target}: give a rate in [0, 1), e.g. 0.01{percent_hint(self.target)}")


def percent_hint(rate: float) -> str:
    """For a rate out of [0, 1) that reads as a percentage (5 for 5 %, the likely mistake), the fraction it stands for."""
    return f" (for {rate:g}% give {rate / 100:g})" if 1.0 <= rate < 100.0 else ""


def unresolved_note(policy: Policy, n_good: int, n_defect: int) -> str | None:
    """One line when the calibration images are too few to resolve the policy's target (a 1 % target takes
    100 of them): the threshold then only clears the most extreme one, and the rate on new parts is unknown."""
    have, what = (n_good, "good") if policy.kind == "far" else (n_defect, "defect")
    rate = "false-alarm" if policy.kind == "far" else "escape"
    if policy.target <= 0.0:  # "none at all" is what clearing every calibration image means, and all it can promise
        return (f"a 0 {rate} target clears all {have} {what} calibration images, which bounds the rate on new parts only "
                f"below {min(3.0 / have, 1.0):.2g} (95% confidence); add {what} images to tighten it") if have else None
    # a tiny target (--far 1e-320) made 1 / target infinite, a traceback, and 1e-300 a 301-digit count
    need = int(np.ceil(1.0 / policy.target - 1e-9)) if policy.target >= 1e-12 else None
    if need is not None and have >= need:
        return None
    takes = f"that takes {need}" if need is not None else "that takes over 10^12"
    return (f"{have} {what} calibration images cannot resolve a {policy.target:.3g} {rate} target ({takes}): "
            f"the threshold only clears the most extreme of them; add {what} images, or measure the rate on new ones with `inspector eval`")


def threshold_for(policy: Policy, good: np.ndarray, defect: np.ndarray | None = None) -> float:
    """The threshold meeting the policy on the given calibration scores.

    escape: the highest threshold that still fails at least (1 - target) of the defects.
    far: the lowest threshold that fails at most `target` of the good parts.
    Neither sits exactly on a calibration score: it goes midway to the neighbouring score (good or defect),
    so every calibration image keeps its verdict but a part scored a hair differently (another runtime,
    FP16, other thread counts) does not flip at the boundary.
    """
    good = np.sort(np.asarray(good, dtype=np.float64))
    if good.size == 0:
        raise InspectorError("calibration needs at least one good image score")
    d = np.sort(np.asarray(defect if defect is not None else [], dtype=np.float64))
    everything = np.concatenate([good, d])
    if not np.isfinite(everything).all():  # np.sort puts NaN last, where it would become the threshold and pass every part
        raise InspectorError(f"calibration: {int((~np.isfinite(everything)).sum())} of {everything.size} scores are NaN or "
                             "infinity; the model is broken for those images: refit, or export in float32")
    if policy.kind == "escape":
        if d.size == 0:
            raise InspectorError("calibration policy 'escape' needs defect images (test/<type> folders); use --far instead")
        allowed = min(int(np.floor(policy.target * d.size + 1e-9)), d.size - 1)  # defects that may score below the threshold
        at = d[allowed]  # this defect must still fail: the threshold is at most its score
        lower = everything[everything < at]
        below = lower.max() if lower.size else at - _margin(at)
        return float((at + below) / 2.0)
    allowed = min(int(np.floor(policy.target * good.size + 1e-9)), good.size - 1)  # good parts that may score at/above it
    # this good part and every lower one must pass, so the threshold lies strictly above it; ties with it
    # among the top scores would otherwise fail more good parts than allowed
    above = good[::-1][allowed]
    higher = everything[everything > above]
    return float((above + (higher.min() if higher.size else above + _margin(above))) / 2.0)


COSTLY = 0.10  # a calibration rate over this is named with what the other policy would cost
OTHER_TARGET = 0.05


def trade_off_note(good: np.ndarray, defect: np.ndarray, threshold: float, model: str) -> str | None:
    """One line where `threshold` fails many good calibration images or lets many defects pass, with what a 5 %
    target of the other kind would cost on the same images: `fit` printed "false alarms 71.5%" in brackets, and
    nothing said it could be traded."""
    g, d = np.asarray(good, dtype=np.float64), np.asarray(defect, dtype=np.float64)
    if not g.size or not d.size:
        return None
    far, escape = float((~(g < threshold)).mean()), float((d < threshold).mean())
    if far > COSTLY:
        other = threshold_for(Policy("far", OTHER_TARGET), g, d)
        return (f"this threshold fails {far:.1%} of the good calibration images; `inspector threshold {model} --far {OTHER_TARGET:g}` "
                f"would fail at most {OTHER_TARGET:.0%} of them and let {float((d < other).mean()):.1%} of the defect ones pass")
    if escape > COSTLY:
        other = threshold_for(Policy("escape", OTHER_TARGET), g, d)
        return (f"this threshold lets {escape:.1%} of the defect calibration images pass; `inspector threshold {model} --escape "
                f"{OTHER_TARGET:g}` would let at most {OTHER_TARGET:.0%} pass and fail {float((~(g < other)).mean()):.1%} of the good ones")
    return None


def _margin(score: float) -> float:
    """Distance to keep from a lone extreme calibration score."""
    return max(abs(score) * 0.05, 1e-6)


@dataclass
class Calibration:
    """Calibration scores kept in the manifest so thresholds can be recomputed without data."""

    good: list[float]
    defect: list[float]
    policy: Policy
    threshold: float
    source: str

    def summary(self) -> dict:
        g, d = np.asarray(self.good), np.asarray(self.defect)
        return {
            "policy": asdict(self.policy),
            "threshold": self.threshold,
            "source": self.source,
            "n_good": int(g.size),
            "n_defect": int(d.size),
            "far": float((~(g < self.threshold)).mean()) if g.size else None,  # failed as decide() fails them, NaN included
            "escape": float((d < self.threshold).mean()) if d.size else None,
            "note": unresolved_note(self.policy, int(g.size), int(d.size)),
        }


def calibrate(good: np.ndarray, defect: np.ndarray, policy: Policy, source: str) -> Calibration:
    thr = threshold_for(policy, good, defect)
    return Calibration([float(x) for x in good], [float(x) for x in defect], policy, thr, source)


def _fold_of(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A random fold (0..folds-1) for each of n items, the folds as equal in size as n allows."""
    return rng.permutation(n) % folds


def cross_validated_rates(policy: Policy, good: np.ndarray, defect: np.ndarray, fixed_good: np.ndarray | None = None,
                          folds: int = 5, seed: int = 0) -> dict | None:
    """False-alarm and escape rates the policy would give on parts it was not calibrated on.

    When the threshold was calibrated on the very images it is then judged on, its rates are met by
    construction. Here each fold of `good` and `defect` is judged by a threshold calibrated on the other
    folds (plus `fixed_good`, e.g. out-of-sample training scores, which are never judged).
    None when there are too few images for two folds.
    """
    good, defect = np.asarray(good, dtype=np.float64), np.asarray(defect, dtype=np.float64)
    fixed = np.asarray(fixed_good if fixed_good is not None else [], dtype=np.float64)
    folds = min(folds, good.size, defect.size) if policy.kind == "escape" else min(folds, good.size)
    if folds < 2:
        return None  # too few images to hold any out
    rng = np.random.default_rng(seed)
    fold_g, fold_d = _fold_of(good.size, folds, rng), _fold_of(defect.size, folds, rng)
    alarms = escapes = 0
    for k in range(folds):
        thr = threshold_for(policy, np.concatenate([fixed, good[fold_g != k]]), defect[fold_d != k])
        alarms += int((~(good[fold_g == k] < thr)).sum())
        escapes += int((defect[fold_d == k] < thr).sum())
    return {
        "folds": folds,
        "false_alarm_rate": round(alarms / good.size, 4) if good.size else None,
        "escape_rate": round(escapes / defect.size, 4) if defect.size else None,
    }


def cross_validated_pixel_threshold(masks: np.ndarray, maps: np.ndarray, folds: int = 5, seed: int = 0) -> dict | None:
    """Pixel precision, recall and F1 of the F1-max pixel threshold on images it was not chosen on.

    Images, not pixels, are folded (a defect's pixels are not independent): each fold is judged by the
    F1-max threshold of the other folds' masks and maps, and the counts are pooled. None when there are
    too few defect images for two folds.
    """
    from model.metrics import f1_max, precision_recall_f1

    has_defect = masks.reshape(len(masks), -1).any(axis=1)
    folds = min(folds, int(has_defect.sum()))
    if folds < 2:
        return None
    rng = np.random.default_rng(seed)
    fold = np.empty(len(masks), dtype=np.int64)
    for group in (has_defect, ~has_defect):
        idx = np.flatnonzero(group)
        fold[idx] = _fold_of(idx.size, folds, rng)
    predicted = np.empty(masks.shape, dtype=bool)
    for k in range(folds):
        thr = f1_max(masks[fold != k].ravel(), maps[fold != k].ravel())[1]
        predicted[fold == k] = maps[fold == k] >= thr
    return {"folds": folds, **{k: round(v, 4) if v is not None else None for k, v in precision_recall_f1(masks, predicted).items()}}
