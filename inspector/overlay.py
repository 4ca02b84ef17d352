"""Overlay images: the anomaly map as a heatmap over the part, defect regions outlined."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model.errors import InspectorError

COLOURS = {"PASS": (40, 160, 40), "FAIL": (40, 40, 220)}  # BGR


def render_overlay(rgb: np.ndarray, amap: np.ndarray, pixel_threshold: float, verdict: str, regions: list) -> np.ndarray:
    """RGB uint8 image with the map (from half the pixel threshold upwards) blended in, boxes and a verdict banner."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    lo = pixel_threshold - 0.5 * abs(pixel_threshold) - 1.0
    hi = max(float(amap.max()), pixel_threshold + 1.0)
    norm = np.clip((amap - lo) / (hi - lo), 0.0, 1.0)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (0.55 * norm)[..., None]
    out = (bgr * (1.0 - alpha) + heat * alpha).astype(np.uint8)
    colour = COLOURS.get(verdict, (200, 200, 200))
    thick = max(1, round(min(out.shape[:2]) / 300))
    for r in regions:
        x, y, w, h = r.box
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, thick)
    scale = max(0.4, min(out.shape[:2]) / 600)
    cv2.rectangle(out, (0, 0), (out.shape[1], int(28 * scale) + 4), colour, -1)
    cv2.putText(out, verdict, (4, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), max(1, thick), cv2.LINE_AA)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectorError(f"overlay folder {path.parent}: cannot be created ({exc.strerror})") from None
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise InspectorError(f"overlay {path}: cannot be written; check the folder is writable")
    return path
