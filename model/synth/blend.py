"""Making a synthetic defect look like the part: foreground estimate, shading, Poisson blending, noise."""

from __future__ import annotations

import cv2
import numpy as np


def foreground_mask(rgb: np.ndarray) -> np.ndarray:
    """Where the part is (bool). A full-frame surface (no distinct background touching the border) is all True."""
    gray = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    bg_value = int(border.mean() >= 0.5)
    border_share = float((border == bg_value).mean())
    lo, hi = gray[binary == 0], gray[binary == 1]
    separated = lo.size and hi.size and abs(float(hi.mean()) - float(lo.mean())) > 40
    fg = binary != bg_value
    if not separated or border_share < 0.8 or not 0.1 < fg.mean() < 0.97:
        return np.ones(gray.shape, bool)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.ones(gray.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = (labels == largest).astype(np.uint8)
    holes = part.copy()
    flood = np.zeros((part.shape[0] + 2, part.shape[1] + 2), np.uint8)
    cv2.floodFill(holes, flood, (0, 0), 1)
    return (part | (1 - holes)).astype(bool)


def noise_sigma(rgb: np.ndarray) -> float:
    """Robust estimate of the image's pixel noise (MAD of the Laplacian), in grey levels."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    return float(1.4826 * np.median(np.abs(lap - np.median(lap))) / np.sqrt(20.0))


def shade(rgb: np.ndarray, mask: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Darken (gain < 0) or brighten (gain > 0) under a soft mask, keeping the texture and adding matched noise."""
    img = rgb.astype(np.float32)
    m = mask[..., None]
    if gain >= 0:
        out = img + (255.0 - img) * gain * m
    else:
        out = img * (1.0 + gain * m)
    sigma = noise_sigma(rgb)
    out += rng.normal(0, sigma, img.shape[:2])[..., None] * m
    return np.clip(out, 0, 255).astype(np.uint8)


def alpha_blend(rgb: np.ndarray, source: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    a = (mask * opacity)[..., None]
    return np.clip(rgb.astype(np.float32) * (1 - a) + source.astype(np.float32) * a, 0, 255).astype(np.uint8)


def poisson_paste(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seamless (Poisson) clone of `src` under `mask` into `dst` at the same place; alpha fallback at borders."""
    m = (mask > 0.5).astype(np.uint8) * 255
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return dst
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = dst.shape[:2]
    fallback = alpha_blend(dst, src, cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0), 1.0)
    pad = 3  # OpenCV places the mask's inner bounding box; a margin keeps that box away from the patch edge
    y0, x0, y1, x1 = y0 - pad, x0 - pad, y1 + pad, x1 + pad
    if y0 < 1 or x0 < 1 or y1 > h - 1 or x1 > w - 1:
        return fallback
    patch, pm = src[y0:y1, x0:x1], m[y0:y1, x0:x1]
    center = (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)
    try:
        bgr = cv2.seamlessClone(np.ascontiguousarray(patch[..., ::-1]), np.ascontiguousarray(dst[..., ::-1]), pm, center, cv2.NORMAL_CLONE)
    except cv2.error:  # OpenCV rejects some placements near the border: blend instead of failing
        return fallback
    return np.ascontiguousarray(bgr[..., ::-1])
