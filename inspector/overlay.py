"""Overlay images: the anomaly map as a heatmap over the part, defect regions outlined."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from model.errors import InspectorError, write_fix
from model.folders import replace_files
from model.framing import Box, Roi, region_mask

COLOURS = {"PASS": (40, 160, 40), "FAIL": (40, 40, 220)}  # BGR


def render_overlay(rgb: np.ndarray, amap: np.ndarray, pixel_threshold: float, verdict: str, regions: list,
                   roi: Roi | Box | None = None, ignored: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 image with the map (from half the pixel threshold upwards) blended in, boxes and a verdict banner;
    outside a region of interest and in don't-care pixels (`ignored`, bool [H, W]), which the model does not
    inspect, the image is dimmed."""
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    lo = pixel_threshold - 0.5 * abs(pixel_threshold) - 1.0
    top = float(np.max(amap, where=np.isfinite(amap), initial=-np.inf))
    hi = max(top if math.isfinite(top) else lo, pixel_threshold + 1.0)

    def norm(a: np.ndarray) -> np.ndarray:
        # a pixel a broken model gave NaN or infinity drawn hottest, not left to a cast's whim (or an infinite `hi`
        # that made the whole map cold): the part was failed there
        return np.clip((np.where(np.isfinite(a), a, hi) - lo) / (hi - lo), 0.0, 1.0)

    # blended a band of rows at a time: whole, a 48 MP image's float temporaries took 1.6 GB more than the image
    step = max(1, (1 << 20) // max(out.shape[1], 1))
    for y in range(0, out.shape[0], step):
        n = norm(amap[y : y + step])
        heat = cv2.applyColorMap((n * 255).astype(np.uint8), cv2.COLORMAP_JET)
        alpha = (0.55 * n)[..., None]
        out[y : y + step] = (out[y : y + step] * (1.0 - alpha) + heat * alpha).astype(np.uint8)
    if roi is not None:
        outside = ~region_mask(out.shape[:2], roi)
        out[outside] //= 3
    if ignored is not None:
        out[ignored] //= 3
    colour = COLOURS.get(verdict, (200, 200, 200))
    thick = max(1, min(round(_viewed_size(out.shape) / 300), min(out.shape[:2]) // 20))
    for r in regions:
        x, y, w, h = r.box
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, thick)
    _label(out, verdict, colour, thick, [r.box for r in regions], lambda x, y, w, h: float(norm(amap[y : y + h, x : x + w]).mean()))
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def _viewed_size(shape: tuple[int, ...]) -> float:
    """The side that sets how large lines and text must be drawn to be seen: the short side, but a third of the long
    side for a strip (a line-scan camera's 4000 x 200), which is viewed shrunk to fit its length: its 1 px boxes and
    a verdict sized by its 200 px vanished."""
    return max(min(shape[:2]), max(shape[:2]) / 3)


def _label(out: np.ndarray, verdict: str, colour: tuple[int, int, int], thick: int, boxes: list, heat: Callable) -> None:
    """The verdict in a tag sized to its text, in the corner that hides no defect box (else the least heat):
    a banner across the top hid defects there (a 64 px image lost its top quarter)."""
    height, width = out.shape[:2]
    (_, th1), base1 = cv2.getTextSize(verdict, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1)
    # as large as the image is seen, but no taller than about half of it (a 8000 x 40 strip)
    scale = max(0.4, min(_viewed_size(out.shape) / 600, (0.45 * height - 8) / (th1 + base1)))
    (tw, th), base = cv2.getTextSize(verdict, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, max(1, thick))
    w, h = min(tw + 8, width), min(th + base + 8, height)
    corners = [(0, 0), (width - w, 0), (0, height - h), (width - w, height - h)]

    def hides(x: int, y: int) -> bool:
        return any(x < bx + bw and bx < x + w and y < by + bh and by < y + h for bx, by, bw, bh in boxes)

    clear = [c for c in corners if not hides(*c)]
    x, y = clear[0] if clear else min(corners, key=lambda c: heat(c[0], c[1], w, h))
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, -1)
    cv2.putText(out, verdict, (x + 4, y + 4 + th), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), max(1, thick), cv2.LINE_AA)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectorError(f"overlay folder {path.parent}: cannot be created ({exc.strerror})") from None
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InspectorError(f"overlay {path}: cannot be encoded as PNG ({rgb.shape}, {rgb.dtype})")
    try:
        replace_files({path: png.tobytes()})  # whole; over another user's file in a shared folder too (imwrite warned, then failed)
    except OSError as exc:
        raise InspectorError(f"overlay {path}: cannot be written ({exc.strerror}); {write_fix(exc)}") from None
    return path
