"""Random shapes for defects: strokes, cracks, blobs, Perlin masks. All take a numpy Generator."""

from __future__ import annotations

import cv2
import numpy as np


def perlin(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin noise in about [-1, 1]; `res` = number of noise periods along each axis."""
    h, w = shape
    ry, rx = max(1, res[0]), max(1, res[1])
    gy, gx = ry + 1, rx + 1
    angles = rng.uniform(0, 2 * np.pi, (gy, gx))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    ys = np.linspace(0, ry, h, endpoint=False)
    xs = np.linspace(0, rx, w, endpoint=False)
    yi, xi = ys.astype(int), xs.astype(int)
    yf, xf = (ys - yi)[:, None], (xs - xi)[None, :]

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grads[yi[:, None] + oy, xi[None, :] + ox]
        return g[..., 0] * (yf - oy) + g[..., 1] * (xf - ox)

    fade = lambda t: t * t * t * (t * (t * 6 - 15) + 10)  # noqa: E731
    u, v = fade(xf), fade(yf)
    top = dot(0, 0) * (1 - u) + dot(0, 1) * u
    bottom = dot(1, 0) * (1 - u) + dot(1, 1) * u
    return (top * (1 - v) + bottom * v) * np.sqrt(2)


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator, coverage: float) -> np.ndarray:
    """A blobby Perlin region covering roughly `coverage` of the image (float mask in [0, 1], soft edge)."""
    scale = int(rng.integers(1, 4))
    noise = perlin(shape, (2**scale, 2**scale), rng)
    thr = np.quantile(noise, 1.0 - coverage)
    mask = (noise > thr).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 1.0)


def bezier_stroke(shape: tuple[int, int], rng: np.random.Generator, length: float, width: float) -> np.ndarray:
    """A thin curved stroke (a cubic Bezier with random control points), anti-aliased float mask."""
    h, w = shape
    start = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    end = start + direction * length
    normal = np.array([-direction[1], direction[0]])
    c1 = start + direction * length / 3 + normal * rng.normal(0, length / 5)
    c2 = start + direction * 2 * length / 3 + normal * rng.normal(0, length / 5)
    t = np.linspace(0, 1, max(8, int(length)))[:, None]
    pts = (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end
    return _polyline(shape, pts, width)


def _polyline(shape: tuple[int, int], pts: np.ndarray, width: float) -> np.ndarray:
    scale = 4  # draw at 4x and downsample for anti-aliasing
    canvas = np.zeros((shape[0] * scale, shape[1] * scale), np.uint8)
    cv2.polylines(canvas, [np.round(pts * scale).astype(np.int32)], False, 255, max(1, int(round(width * scale))), cv2.LINE_AA)
    return cv2.resize(canvas, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def crack(shape: tuple[int, int], rng: np.random.Generator, length: float, width: float, branches: int = 2) -> np.ndarray:
    """A branching random walk: a main path with a few thinner side branches."""
    h, w = shape
    mask = np.zeros(shape, np.float32)

    def walk(p: np.ndarray, heading: float, steps: int, wd: float) -> None:
        pts = [p.copy()]
        for _ in range(steps):
            heading += rng.normal(0, 0.35)
            p = p + 2.0 * np.array([np.cos(heading), np.sin(heading)])
            pts.append(p.copy())
        arr = np.array(pts)
        np.maximum(mask, _polyline(shape, arr, wd), out=mask)
        return arr

    start = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    main = walk(start, rng.uniform(0, 2 * np.pi), max(4, int(length / 2)), width)
    for _ in range(branches):
        k = int(rng.integers(len(main) // 4, max(len(main) // 4 + 1, 3 * len(main) // 4)))
        walk(main[k], rng.uniform(0, 2 * np.pi), max(3, int(length / 6)), max(0.6, width * 0.6))
    return mask


def blob(shape: tuple[int, int], rng: np.random.Generator, radius: float, irregular: float = 0.3) -> np.ndarray:
    """An irregular filled ellipse with a soft edge (float mask)."""
    h, w = shape
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    n = 16
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    aspect = rng.uniform(0.5, 1.0)
    rot = rng.uniform(0, np.pi)
    r = radius * (1 + irregular * rng.uniform(-1, 1, n))
    x, y = r * np.cos(angles), r * np.sin(angles) * aspect
    pts = np.stack([cx + x * np.cos(rot) - y * np.sin(rot), cy + x * np.sin(rot) + y * np.cos(rot)], axis=1)
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    soft = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), max(0.5, radius * 0.15))
    return np.clip(soft, 0, 1)


def side_band(shape: tuple[int, int], rng: np.random.Generator, depth: float) -> np.ndarray:
    """A band along one random side, `depth` (fraction of the image) deep, with a gently wavy inner edge."""
    h, w = shape
    side = int(rng.integers(4))
    long_, across = (w, h) if side % 2 == 0 else (h, w)
    knots = int(rng.integers(2, 6))
    edge = np.interp(np.arange(long_), np.linspace(0, long_, knots), (depth + rng.uniform(-0.1, 0.1, knots)) * across)
    band = (np.arange(across)[:, None] < edge[None, :]).astype(np.float32)  # [across, long]: side at row 0
    band = band if side % 2 == 0 else band.T
    if side >= 2:
        band = band[::-1, ::-1]
    return cv2.GaussianBlur(np.ascontiguousarray(band), (0, 0), rng.uniform(0.5, 2.5))
