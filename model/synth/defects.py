"""Procedural defect types. Each takes (rgb, foreground, rng, severity in (0, 1]) and returns
(defect image, float mask in [0, 1]); the mask covers exactly the pixels the defect changed."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from model.synth import shapes
from model.synth.blend import alpha_blend, poisson_paste, shade

DefectFn = Callable[[np.ndarray, np.ndarray, np.random.Generator, float], tuple[np.ndarray, np.ndarray]]


def _scale(rgb: np.ndarray) -> float:
    return min(rgb.shape[:2]) / 256.0


def _sign(rng: np.random.Generator, dark_prob: float = 0.7) -> float:
    return -1.0 if rng.random() < dark_prob else 1.0


def scratch(rgb, fg, rng, severity):
    s = _scale(rgb)
    mask = shapes.bezier_stroke(rgb.shape[:2], rng, length=rng.uniform(30, 120) * s * (0.5 + severity), width=rng.uniform(0.8, 2.5) * s)
    mask *= fg
    return shade(rgb, mask, _sign(rng, 0.5) * rng.uniform(0.25, 0.6) * (0.4 + 0.6 * severity), rng), mask


def crack(rgb, fg, rng, severity):
    s = _scale(rgb)
    mask = shapes.crack(rgb.shape[:2], rng, length=rng.uniform(25, 90) * s * (0.5 + severity), width=rng.uniform(0.8, 2.0) * s,
                        branches=int(rng.integers(0, 4)))
    mask *= fg
    return shade(rgb, mask, -rng.uniform(0.35, 0.75) * (0.4 + 0.6 * severity), rng), mask


def pit(rgb, fg, rng, severity):
    s = _scale(rgb)
    mask = np.zeros(rgb.shape[:2], np.float32)
    for _ in range(int(rng.integers(1, 4))):
        np.maximum(mask, shapes.blob(rgb.shape[:2], rng, radius=rng.uniform(2, 7) * s * (0.5 + severity), irregular=0.25), out=mask)
    mask *= fg
    out = shade(rgb, mask, -rng.uniform(0.4, 0.85) * (0.4 + 0.6 * severity), rng)
    if rng.random() < 0.4:  # a specular rim around a blowhole
        rim = np.clip(cv2.dilate(mask, np.ones((3, 3), np.uint8)) - mask, 0, 1) * fg
        out = shade(out, rim, rng.uniform(0.1, 0.3), rng)
        mask = np.maximum(mask, rim)
    return out, mask


def stain(rgb, fg, rng, severity):
    s = _scale(rgb)
    mask = shapes.blob(rgb.shape[:2], rng, radius=rng.uniform(10, 40) * s * (0.5 + severity), irregular=0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), 3.0 * s) * fg
    out = shade(rgb, mask, _sign(rng, 0.6) * rng.uniform(0.12, 0.35) * (0.4 + 0.6 * severity), rng)
    if rng.random() < 0.5 and rgb.std(axis=2).mean() > 2:  # colour cast on colour parts
        tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        out = np.clip(out * (1 + (tint - 1) * mask[..., None]), 0, 255).astype(np.uint8)
    return out, (mask > 0.15).astype(np.float32) * mask


def _edge_points(fg: np.ndarray) -> np.ndarray:
    """(x, y) points on the part's outline; the image border for full-frame surfaces."""
    if fg.all():
        h, w = fg.shape
        xs, ys = np.arange(w), np.arange(h)
        return np.concatenate([np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs, np.full_like(xs, h - 1)], 1),
                               np.stack([np.zeros_like(ys), ys], 1), np.stack([np.full_like(ys, w - 1), ys], 1)])
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return np.concatenate([c[:, 0, :] for c in contours])


def _background_value(rgb: np.ndarray, fg: np.ndarray) -> np.ndarray:
    if fg.all():
        return np.percentile(rgb.reshape(-1, 3), 2, axis=0) * 0.5
    return np.median(rgb[~fg], axis=0)


def chip(rgb, fg, rng, severity):
    """A piece broken off at the edge: the part's outline bitten, background showing through."""
    s = _scale(rgb)
    pts = _edge_points(fg)
    x, y = pts[int(rng.integers(len(pts)))]
    radius = rng.uniform(8, 30) * s * (0.5 + severity)
    canvas = np.zeros(rgb.shape[:2], np.uint8)
    n = 12
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * (1 + 0.35 * rng.uniform(-1, 1, n))
    poly = np.stack([x + r * np.cos(ang), y + r * np.sin(ang) * rng.uniform(0.5, 1.0)], 1)
    cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], 1)
    mask = (canvas > 0) & fg
    out = rgb.copy()
    bg = _background_value(rgb, fg)
    out[mask] = np.clip(bg + rng.normal(0, 2, (mask.sum(), 3)), 0, 255).astype(np.uint8)
    edge = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask & fg
    out = shade(out, edge.astype(np.float32), -0.3, rng)  # a darker fracture edge
    return out, (mask | edge).astype(np.float32)


def fray(rgb, fg, rng, severity):
    """Small jagged notches along a stretch of edge."""
    out, total = rgb, np.zeros(rgb.shape[:2], np.float32)
    pts = _edge_points(fg)
    i0 = int(rng.integers(len(pts)))
    span = int(rng.uniform(20, 60) * _scale(rgb) * (0.5 + severity))
    for _ in range(int(rng.integers(4, 9))):
        x, y = pts[(i0 + int(rng.integers(0, max(span, 1)))) % len(pts)]
        r = rng.uniform(1.5, 5) * _scale(rgb) * (0.5 + severity)
        m = np.zeros(rgb.shape[:2], np.uint8)
        tri = np.array([[x + rng.normal(0, r), y + rng.normal(0, r)] for _ in range(3)])
        cv2.fillPoly(m, [np.round(tri).astype(np.int32)], 1)
        cv2.circle(m, (int(x), int(y)), max(1, int(r)), 1, -1)
        m = m.astype(bool) & fg
        out = out.copy()
        out[m] = np.clip(_background_value(rgb, fg) + rng.normal(0, 2, (m.sum(), 3)), 0, 255).astype(np.uint8)
        total = np.maximum(total, m.astype(np.float32))
    return out, total


def texture(rgb, fg, rng, severity):
    """A Perlin-shaped region filled with texture from another place of the part, rotated (DRAEM-style)."""
    h, w = rgb.shape[:2]
    mask = shapes.perlin_mask((h, w), rng, coverage=rng.uniform(0.02, 0.12) * (0.5 + severity)) * fg
    src = np.rot90(rgb, int(rng.integers(1, 4)))
    src = cv2.resize(np.ascontiguousarray(src), (w, h), interpolation=cv2.INTER_LINEAR)
    src = np.roll(src, (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))
    if rng.random() < 0.5:
        src = cv2.convertScaleAbs(src, alpha=rng.uniform(0.7, 1.3), beta=rng.uniform(-25, 25))
    return alpha_blend(rgb, src, mask, rng.uniform(0.4, 0.9) * (0.5 + 0.5 * severity)), mask


def cutpaste(rgb, fg, rng, severity):
    """A patch of the part itself, rotated and re-lit, Poisson-blended somewhere else (CutPaste scar/patch)."""
    h, w = rgb.shape[:2]
    ph = int(np.clip(rng.uniform(0.08, 0.25) * h * (0.5 + severity), 6, h - 8))
    pw = int(np.clip(ph * rng.uniform(0.3, 3.0), 6, w - 8))
    y, x = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    patch = rgb[y : y + ph, x : x + pw]
    angle = rng.uniform(-90, 90)
    rot = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, 1.0)
    patch = cv2.warpAffine(patch, rot, (pw, ph), borderMode=cv2.BORDER_REFLECT)
    patch = cv2.convertScaleAbs(patch, alpha=rng.uniform(0.8, 1.2), beta=rng.uniform(-20, 20))
    ty, tx = int(rng.integers(2, max(3, h - ph - 2))), int(rng.integers(2, max(3, w - pw - 2)))
    src = rgb.copy()
    src[ty : ty + ph, tx : tx + pw] = patch
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (tx + pw // 2, ty + ph // 2), (max(2, pw // 2 - 1), max(2, ph // 2 - 1)), 0, 0, 360, 1.0, -1)
    mask *= fg
    return poisson_paste(rgb, src, mask), mask


def transplant(rgb, fg, rng, severity, donor=None):
    """A large region (a band along a side, or a blob) of another good part's surface, re-lit to this one's level.

    Each side of the seam looks normal on its own; only the mismatch with the rest of the part is a defect,
    as where a surface was ground, coated or lit unevenly. Without a donor, the part itself turned upside down.
    Size and mismatch are drawn over their full range whatever the severity: with them scaled down, the
    whole-image branch learnt from these found real uneven bands less well (model/defect_learning.py).
    """
    h, w = rgb.shape[:2]
    src = np.ascontiguousarray(rgb[::-1, ::-1] if donor is None else donor)
    src = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR) if src.shape[:2] != (h, w) else src
    for axis in (0, 1):
        if rng.random() < 0.5:
            src = np.flip(src, axis)
    coverage = rng.uniform(0.08, 0.45)
    mask = shapes.side_band((h, w), rng, coverage) if rng.random() < 0.5 else shapes.perlin_mask((h, w), rng, coverage)
    mask = mask * fg
    src = src.astype(np.float32)
    gain, shift = rng.uniform(0.6, 1.5), rng.uniform(-30, 30)
    relit = (src - src.mean()) * gain + rgb.mean() + shift
    return alpha_blend(rgb, relit, mask, 1.0), mask


DEFECTS: dict[str, DefectFn] = {
    "scratch": scratch, "crack": crack, "pit": pit, "stain": stain,
    "chip": chip, "fray": fray, "texture": texture, "cutpaste": cutpaste, "transplant": transplant,
}
