"""Which part of each frame the model is given: all of it, a fixed region of interest, or a region that follows the
part (found by matching the training reference's region within a margin around its place)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from model.errors import InspectorError

Roi = tuple[int, int, int, int]  # a region of interest: left, top, width, height in source pixels
MIN_ROI_SIDE = 16
ROI_HINT = (f"give X,Y,W,H in pixels of the training images (left, top, width, height; W and H at least {MIN_ROI_SIDE}), "
            "e.g. 100,50,640,480")
TEMPLATE_SIDE = 128  # the reference region is matched at about this size: the search stays a few ms a frame
WEAK_MATCH = 0.5  # a best match below this (normalised correlation) means the part is missing or unlike the reference


def check_roi(roi: Roi) -> Roi:
    """A region of interest as four whole numbers, at least MIN_ROI_SIDE px wide and high; else one line."""
    values = tuple(roi)
    if len(values) != 4 or not all(isinstance(v, int) for v in values) or values[0] < 0 or values[1] < 0 \
            or values[2] < MIN_ROI_SIDE or values[3] < MIN_ROI_SIDE:
        raise InspectorError(f"region of interest {','.join(map(str, values))}: {ROI_HINT}")
    return values


def crop(rgb: np.ndarray, box: Roi | None, name: str = "array") -> np.ndarray:
    """The part `box` of an image [H, W, ...]; the whole image for None."""
    if box is None:
        return rgb
    x, y, w, h = box
    if x < 0 or y < 0 or x + w > rgb.shape[1] or y + h > rgb.shape[0]:
        raise InspectorError(f"image {name}: {rgb.shape[1]}x{rgb.shape[0]} px does not contain the model's region of interest "
                             f"{x},{y},{w},{h} (left, top, width, height); check the camera's resolution and framing, "
                             "or fit with a --roi that lies inside every image")
    return rgb[y : y + h, x : x + w]


def place_map(amap: np.ndarray, shape: tuple[int, int], box: Roi) -> np.ndarray:
    """A region's map [h, w] at its place in the whole image (H, W); the rest, not inspected, holds the map's least value."""
    x, y, w, h = box
    full = np.full(shape, float(amap.min()), dtype=amap.dtype)
    full[y : y + h, x : x + w] = amap
    return full


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb


@dataclass(frozen=True)
class Framing:
    """The region of interest (None: whole frames) and, with `margin` > 0, the reference region's grey template (a PNG,
    base64, at 1/`step` scale) that each frame's region is found by within `margin` px of `roi`."""

    roi: Roi | None = None
    margin: int = 0
    template: str = ""
    step: int = 1

    @classmethod
    def of(cls, net: Any) -> Framing:
        """A model's framing, from its NetConfig or its manifest's `net` section; ValueError when malformed."""
        get = net.get if isinstance(net, dict) else lambda k, d=None: getattr(net, k, d)
        roi = get("roi")
        if roi is None:
            return cls()
        roi = tuple(int(v) for v in roi)
        if len(roi) != 4:
            raise ValueError(f"roi {roi!r} is not four numbers")
        return cls(roi, int(get("locate", 0) or 0), str(get("template", "") or ""), int(get("template_step", 1) or 1))

    @classmethod
    def fitted(cls, roi: Roi | None, margin: int, reference: np.ndarray, name: str) -> Framing:
        """The framing fit gives a model: with a margin, the reference image's region becomes the template."""
        if roi is None or not margin:
            return cls(roi)
        region = _grey(crop(reference, roi, name))
        step = max(1, math.ceil(max(roi[2], roi[3]) / TEMPLATE_SIDE))
        small = cv2.resize(region, (max(1, roi[2] // step), max(1, roi[3] // step)), interpolation=cv2.INTER_AREA)
        if float(small.std()) < 2.0:
            raise InspectorError(f"--locate {margin}: the region {','.join(map(str, roi))} of {name} is nearly flat, with nothing to "
                                 "find the part by; give a --roi that includes the part's edges, or drop --locate")
        ok, png = cv2.imencode(".png", small)
        if not ok:
            raise InspectorError(f"--locate: the region of {name} cannot be encoded")
        return cls(roi, margin, base64.b64encode(png.tobytes()).decode("ascii"), step)

    def summary(self) -> dict[str, Any]:
        """For reports: the region and the locating margin, when the model has a region."""
        return {} if self.roi is None else {"roi": list(self.roi), **({"locate": self.margin} if self.margin else {})}

    def describe(self) -> str:
        if self.roi is None:
            return ""
        where = ",".join(map(str, self.roi))
        return f" of the region {where}" + (f" (following the part within {self.margin} px)" if self.margin else "")

    def to_net(self) -> dict[str, Any]:
        """Its NetConfig fields."""
        return {"roi": self.roi, "locate": self.margin, "template": self.template, "template_step": self.step}

    def located(self, rgb: np.ndarray, name: str = "array") -> tuple[Roi | None, float | None]:
        """This image's region (None: all of it) and, when the part is searched for, how well it matched (-1 to 1)."""
        if self.roi is None or not self.margin:
            return self.roi, None
        x, y, w, h = self.roi
        height, width = rgb.shape[:2]
        x0, y0 = max(0, x - self.margin), max(0, y - self.margin)
        x1, y1 = min(width, x + w + self.margin), min(height, y + h + self.margin)
        tpl = self._template
        s = self.step
        if (x1 - x0) // s < tpl.shape[1] or (y1 - y0) // s < tpl.shape[0]:
            crop(rgb, self.roi, name)  # the one-line error: the frame cannot hold the region
        window = cv2.resize(_grey(rgb[y0:y1, x0:x1]), ((x1 - x0) // s, (y1 - y0) // s), interpolation=cv2.INTER_AREA)
        scores = cv2.matchTemplate(window, tpl, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(np.nan_to_num(scores, nan=-1.0))
        bx, by = max(0, min(x0 + mx * s, width - w)), max(0, min(y0 + my * s, height - h))
        return (bx, by, w, h), float(best)

    def box(self, rgb: np.ndarray, name: str = "array") -> Roi | None:
        return self.located(rgb, name)[0]

    @cached_property
    def _template(self) -> np.ndarray:
        try:
            tpl = cv2.imdecode(np.frombuffer(base64.b64decode(self.template, validate=True), np.uint8), cv2.IMREAD_GRAYSCALE)
        except ValueError:
            tpl = None
        if tpl is None:
            raise InspectorError("the model's --locate template cannot be decoded; fit the model again")
        return tpl


def weak_match(score: float | None) -> str | None:
    """A warning when the part was found only weakly (missing, turned, or another part)."""
    if score is None or score >= WEAK_MATCH:
        return None
    # no score in the text: the daemon logs a warning once per change of text, not once per part
    return (f"the part matched its reference only weakly (below {WEAK_MATCH}) within the --locate margin; it may be "
            "missing, turned or out of place")
