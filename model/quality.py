"""Image quality: whether a frame shows the part as the training images did (light, exposure, focus).

A blank, dark, overexposed or blurred frame scored far above the threshold on every model measured, so it failed, but
its regions and defect type then blamed the part for what the camera or the light did. `fit` records the range of four statistics over the
good images, at the model's input (the region of interest, resized), and each inspection names the cause when a frame
lies well outside that range. The margins are wide on purpose: only a fault of the camera or the light should cross
them, not a defect (none of magnetic_tile's 434 test tiles, nor of NEU's classes against their own range, does).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

STATS = ("brightness", "contrast", "white", "sharpness")
WHITE = 250 / 255  # a grey level at or above this is clipped by the exposure
# how far beyond the training range a frame must lie to be named (see the module's docstring)
BLANK_CONTRAST = 0.5  # x the least contrast of a training image
FLAT = 0.1  # x the least contrast: below it a frame is blank even where it lacks fine detail (a constant frame has none)
DARK_BRIGHTNESS = 0.5  # x the least brightness
WHITE_EXTRA = 0.1  # clipped white over this much more of the frame than the most of a training image, and twice it
BLUR_SHARPNESS = 0.7  # x the least sharpness

# what the inspector writes for each cause (reports.warnings translates them: its catalog has them capitalised)
WARNINGS = {
    "dark": "image is much darker than the training images (no light, a covered lens or too short an exposure); check the light and the camera",
    "overexposed": "image is overexposed: far more of it is clipped white than in any training image; check the light and the exposure",
    "blank": "image has almost no contrast against the training images (no part, a blank frame, fog or glare); check the camera and what it sees",
    "blurred": "image is blurrier than the training images; check the focus, and for motion blur or a dirty lens",
}


def quality_stats(batch: np.ndarray) -> np.ndarray:
    """A preprocessed batch [N, 3, h, w] in [0, 1] -> [N, 4]: each image's mean grey level, its contrast (the grey
    levels' standard deviation over their mean, which dimming the light keeps), its share of clipped white pixels, and
    its sharpness: the fine detail (the grey image less its blur at 1 px) as a share of all its contrast, which the
    light's level does not change either."""
    import cv2  # here: reports.warnings reads WARNINGS, and a report has no other use for OpenCV

    rows = []
    for image in batch:
        grey = np.ascontiguousarray(image.mean(axis=0), dtype=np.float32)
        fine = float((grey - cv2.GaussianBlur(grey, (0, 0), 1.0)).std())
        mean, std = float(grey.mean()), float(grey.std())
        rows.append((mean, std / max(mean, 1e-6), float((grey >= WHITE).mean()), fine / max(std, 1e-6)))
    return np.array(rows, dtype=np.float64).reshape(len(batch), len(STATS))


def quality_summary(stats: np.ndarray) -> dict[str, list[float]]:
    """The training images' stats [N, 4] -> {stat: [least, most]}, as the manifest keeps them."""
    return {name: [round(float(stats[:, i].min()), 6), round(float(stats[:, i].max()), 6)] for i, name in enumerate(STATS)}


def quality_causes(stats: np.ndarray, summary: dict | None) -> list[str]:
    """What is wrong with one image's stats [4] against the training range `summary` (keys of WARNINGS); none for a
    model that records no range (fitted before it was kept)."""
    ranges = _ranges(summary)
    if not ranges:
        return []
    brightness, contrast, white, sharpness = stats
    lo = {name: least for name, (least, _) in ranges.items()}
    hi = {name: most for name, (_, most) in ranges.items()}
    # one cause each: a frame too dark or clipped white has neither the contrast nor the detail to judge
    if "brightness" in lo and brightness < DARK_BRIGHTNESS * lo["brightness"]:
        return ["dark"]
    if "white" in hi and white > max(hi["white"] + WHITE_EXTRA, 2 * hi["white"]):
        return ["overexposed"]
    blurred = "sharpness" in lo and sharpness < BLUR_SHARPNESS * lo["sharpness"]
    if "contrast" in lo and contrast < BLANK_CONTRAST * lo["contrast"]:
        # strong blur flattens a fine texture too, but leaves some contrast; a blank frame keeps its noise's detail
        return ["blurred"] if blurred and contrast >= FLAT * lo["contrast"] else ["blank"]
    return ["blurred"] if blurred else []


def _ranges(summary: Any) -> dict[str, tuple[float, float]]:
    """The well-formed ranges of `summary`, {stat: (least, most)}: a hand-edited (and resealed) manifest may lack one,
    or give one that is not two numbers (every inspection raised TypeError then, a traceback at `inspector inspect`);
    such a statistic is not judged."""
    if not isinstance(summary, dict):
        return {}
    return {name: pair for name in STATS if (pair := number_pair(summary.get(name))) is not None}


def number_pair(given: Any) -> tuple[float, float] | None:
    """`given` as two finite numbers (a manifest's range or size), or None where it is anything else."""
    if isinstance(given, (list, tuple)) and len(given) == 2 \
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in given):
        return given[0], given[1]  # as given: a size's whole pixels stay whole
    return None


def quality_report(labels: list[bool], files: list[str], stats: np.ndarray, summary: dict) -> dict:
    """How many labelled test images (`labels`: defect or not) inspection would warn about, by cause, with the first
    few: a real defect should not be blamed on the light or the focus, nor a good part fail for them unseen."""
    warned = [(f, c, d) for f, row, d in zip(files, stats, labels, strict=True) for c in quality_causes(row, summary)]
    return {"good": sum(not d for *_, d in warned), "defect": sum(d for *_, d in warned),
            "causes": dict(Counter(c for _, c, _ in warned)), "examples": [{"file": f, "cause": c} for f, c, _ in warned[:5]]}
