"""Thresholds from score distributions: a target escape rate (missed defects) or false-alarm rate.

Applied outside the graph: the verdict is `score >= threshold`, so a threshold can change without refitting.
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
            raise InspectorError(f"calibration target {self.target}: give a rate in [0, 1), e.g. 0.01")


def threshold_for(policy: Policy, good: np.ndarray, defect: np.ndarray | None = None) -> float:
    """The threshold meeting the policy on the given calibration scores.

    escape: the highest threshold that still fails at least (1 - target) of the defects.
    far: the lowest threshold that fails at most `target` of the good parts.
    """
    good = np.sort(np.asarray(good, dtype=np.float64))
    if good.size == 0:
        raise InspectorError("calibration needs at least one good image score")
    if policy.kind == "escape":
        if defect is None or len(defect) == 0:
            raise InspectorError("calibration policy 'escape' needs defect images (test/<type> folders); use --far instead")
        d = np.sort(np.asarray(defect, dtype=np.float64))
        allowed = int(np.floor(policy.target * d.size + 1e-9))  # defects that may score below the threshold
        return float(d[allowed])
    allowed = int(np.floor(policy.target * good.size + 1e-9))  # good parts that may score at/above it
    top = good[::-1]
    if allowed >= good.size:
        return float(good[0])
    above = top[allowed]
    # midway to the next higher good score keeps a margin instead of sitting exactly on a good part
    higher = top[allowed - 1] if allowed > 0 else above + max(abs(above) * 0.05, 1e-6)
    return float((above + higher) / 2.0)


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
            "far": float((g >= self.threshold).mean()) if g.size else None,
            "escape": float((d < self.threshold).mean()) if d.size else None,
        }


def calibrate(good: np.ndarray, defect: np.ndarray, policy: Policy, source: str) -> Calibration:
    thr = threshold_for(policy, good, defect)
    return Calibration([float(x) for x in good], [float(x) for x in defect], policy, thr, source)
