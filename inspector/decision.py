"""From a score and an anomaly map to a verdict and located defect regions."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

from model.label_names import UNKNOWN

PASS, FAIL = "PASS", "FAIL"
SEVERITIES = ("low", "medium", "high")


@dataclass(frozen=True)
class SeverityRules:
    """A region's severity from how far its peak exceeds the pixel threshold (in map units) and its size."""

    medium_margin: float = 1.0
    high_margin: float = 3.0
    medium_area_fraction: float = 0.02
    high_area_fraction: float = 0.10

    def grade(self, margin: float, area_fraction: float) -> str:
        if margin >= self.high_margin or area_fraction >= self.high_area_fraction:
            return "high"
        if margin >= self.medium_margin or area_fraction >= self.medium_area_fraction:
            return "medium"
        return "low"


@dataclass
class DecisionConfig:
    """Thresholds default to the model's calibrated ones; override to retune without refitting."""

    image_threshold: float | None = None
    pixel_threshold: float | None = None
    min_region_px: int = 16
    max_regions: int = 20
    mm_per_px: float | None = None
    severity: SeverityRules = field(default_factory=SeverityRules)
    unknown_cutoff: float = 0.5  # p(unknown) at or above this names the defect `unknown` (see model/types.py)


@dataclass
class Region:
    """One connected defect region, in the original image's pixel coordinates."""

    box: tuple[int, int, int, int]  # x, y, width, height
    area_px: int
    peak: float
    mean: float
    severity: str
    type: str = "anomaly"
    confidence: float | None = None
    area_mm2: float | None = None
    located_by: str = "pixel_threshold"  # or "map_peak": no pixel reached the pixel threshold (see decide)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        return d


class Regions(list):
    """find_regions' regions, and how many it found: beyond `max_regions` only the most severe are kept, and a
    record listing 20 of 300 regions must say so."""

    found: int = 0


MAX_MM_PER_PX = 1000.0  # a metre a pixel, beyond any inspection camera: 1e160 overflowed a region's area at the first FAIL


def find_regions(amap: np.ndarray, threshold: float, config: DecisionConfig) -> Regions:
    """Connected components of `amap >= threshold` (8-connected), largest first, tiny ones dropped; beyond
    `max_regions`, the most severe (then largest) are kept (`found` counts them all)."""
    binary = (amap >= threshold).astype(np.uint8)
    if not binary.any():
        return Regions()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    total = float(amap.size)
    regions = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < config.min_region_px:
            continue
        values = amap[y : y + h, x : x + w][labels[y : y + h, x : x + w] == i]
        peak = float(values.max())
        regions.append(
            Region(
                box=(x, y, w, h),
                area_px=area,
                peak=round(peak, 4),
                mean=round(float(values.mean()), 4),
                severity=config.severity.grade(peak - threshold, area / total),
                area_mm2=_mm2(area * config.mm_per_px**2) if config.mm_per_px else None,
            )
        )
    found = len(regions)
    if found > config.max_regions:  # the most severe kept: a small, hot pit was dropped behind 20 faint stains
        regions = sorted(regions, key=lambda r: (SEVERITIES.index(r.severity), r.area_px, r.peak), reverse=True)[: config.max_regions]
    out = Regions(sorted(regions, key=lambda r: (-r.area_px, -r.peak)))
    out.found = found
    return out


def _mm2(value: float) -> float:
    """An area in mm2 to 3 decimals, or 2 significant digits below 0.01 mm2: at 1 um a pixel (a wafer, a lens), every
    region under 500 px was recorded as 0.0 mm2."""
    return round(value, max(3, 1 - math.floor(math.log10(value)))) if value > 0 else 0.0


def decide(score: float, amap: np.ndarray, image_threshold: float, pixel_threshold: float, config: DecisionConfig) -> tuple[str, list[Region]]:
    """Verdict by the image threshold; regions only for failed parts (a PASS has no defects to show)."""
    # a NaN or infinite score (a broken model) fails: never let an unjudged part through (-inf passed, published as null)
    verdict = PASS if math.isfinite(score) and score < image_threshold else FAIL
    if verdict == PASS:
        return verdict, []
    regions = find_regions(amap, pixel_threshold, config)
    if not regions:
        # the part failed on its overall appearance: show where the map peaks, at half its height above the minimum;
        # graded by how far the score passed its threshold, since that half height, not a threshold, sets its size
        # and margin (a faint map's region read "high")
        # over the finite pixels: don't-care ones hold -inf (api.judged), which made the half height -inf and the
        # region the whole image, don't-care pixels and all; a NaN pixel made it NaN, and no region was shown
        finite = np.isfinite(amap)
        if not finite.any():
            return verdict, []
        # the part of the map above that half height that holds the peak: the largest part was shown before, a broad
        # warm patch (a part's edge) rather than the small hot spot the map peaks at, which the description promises
        values = np.where(finite, amap, -np.inf)
        half = (float(values.max()) + float(amap[finite].min())) / 2.0
        _, labels = cv2.connectedComponents((values >= half).astype(np.uint8), connectivity=8)
        own = labels == labels[np.unravel_index(int(np.argmax(values)), amap.shape)]
        regions = find_regions(np.where(own, values, -np.inf), half, replace(config, min_region_px=0))[:1]
        for r in regions:
            r.severity, r.located_by = config.severity.grade(score - image_threshold, 0.0), "map_peak"
    return verdict, regions


def name_defect(type_probs: np.ndarray | None, class_names: tuple[str, ...] | list[str],
                config: DecisionConfig) -> tuple[str | None, float | None, dict[str, float]]:
    """Type probabilities [K + 1] (known types, then `unknown`) -> (type, its confidence, all probabilities).

    `unknown` when p(unknown) reaches the cut-off; otherwise the likeliest known type, with its probability
    among the known types as confidence. (None, None, {}) when the model names no types.
    """
    if type_probs is None or not len(class_names):
        return None, None, {}
    p = np.asarray(type_probs, dtype=np.float64).reshape(-1)
    names = [*class_names, UNKNOWN]
    if p.size != len(names):
        return None, None, {}
    if not np.isfinite(p).all():  # NaN named the first type at confidence NaN, and made the record's JSON invalid
        return UNKNOWN, None, {}
    probs = {n: round(float(v), 4) for n, v in zip(names, p, strict=True)}
    if p[-1] >= config.unknown_cutoff:
        return UNKNOWN, round(float(p[-1]), 4), probs
    known = p[:-1]
    k = int(known.argmax())
    return names[k], round(float(known[k] / max(known.sum(), 1e-12)), 4), probs


def apply_type(regions: list[Region], defect_type: str | None, confidence: float | None) -> None:
    """The type is named for the image from its most anomalous region's features; every region carries it."""
    if defect_type is None:
        return
    for r in regions:
        r.type, r.confidence = defect_type, confidence
