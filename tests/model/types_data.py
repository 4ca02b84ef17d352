"""Seeded synthetic parts with typed defects for the type-head tests: dark blobs, bright scratches, stains,
and a checkerboard patch kept for an `unknown` (never-labelled) type."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.synthetic import good_image

TYPES = ("blob", "scratch", "stain")


def typed_defect(kind: str, seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, bool mask) of one defect of `kind` on a good texture."""
    rng = np.random.default_rng([TYPES.index(kind) if kind in TYPES else 9, seed])
    img = good_image(20_000 + seed, size).astype(np.float32)
    mask = np.zeros((size, size), np.uint8)
    cx, cy = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
    if kind == "blob":
        cv2.circle(mask, (cx, cy), int(rng.integers(size // 12, size // 8)), 1, -1)
        img[mask > 0] *= 0.25
    elif kind == "scratch":
        angle = rng.uniform(0, np.pi)
        dx, dy = int(np.cos(angle) * size / 3), int(np.sin(angle) * size / 3)
        cv2.line(mask, (cx - dx, cy - dy), (cx + dx, cy + dy), 1, 2)
        img[mask > 0] = 250
    elif kind == "stain":
        cv2.ellipse(mask, (cx, cy), (size // 5, size // 8), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        img[mask > 0] = img[mask > 0] * 0.6 + 0.4 * np.array([200, 120, 40], np.float32)
    elif kind == "grid":
        s = size // 5
        x0, y0 = max(cx - s, 0), max(cy - s, 0)
        mask[y0 : y0 + 2 * s, x0 : x0 + 2 * s] = 1
        yy, xx = np.mgrid[0 : 2 * s, 0 : 2 * s]
        img[y0 : y0 + 2 * s, x0 : x0 + 2 * s] = (((yy // 3 + xx // 3) % 2) * 255)[..., None]
    else:
        raise ValueError(kind)
    return np.clip(img, 0, 255).astype(np.uint8), mask > 0


def write_labels(root: Path, n: int, types: tuple[str, ...] = TYPES, start: int = 0, masks: bool = True) -> Path:
    """LABELS_DIR layout: <type>/<id>.png with <id>_mask.png beside it."""
    for kind in types:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n):
            img, mask = typed_defect(kind, i)
            cv2.imwrite(str(root / kind / f"{i:03d}.png"), img[..., ::-1])
            if masks:
                cv2.imwrite(str(root / kind / f"{i:03d}_mask.png"), mask.astype(np.uint8) * 255)
    return root


def write_typed_mvtec(root: Path, n_train: int = 12, n_good: int = 4, n_defect: int = 6, types: tuple[str, ...] = TYPES) -> Path:
    """MVTec layout with several typed defect folders (and their ground truth), for eval."""
    for sub in ("train/good", "test/good"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        cv2.imwrite(str(root / "train/good" / f"{i:03d}.png"), good_image(i))
    for i in range(n_good):
        cv2.imwrite(str(root / "test/good" / f"{i:03d}.png"), good_image(500 + i))
    for kind in types:
        (root / "test" / kind).mkdir(parents=True, exist_ok=True)
        (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(100, 100 + n_defect):
            img, mask = typed_defect(kind, i)
            cv2.imwrite(str(root / "test" / kind / f"{i:03d}.png"), img[..., ::-1])
            cv2.imwrite(str(root / "ground_truth" / kind / f"{i:03d}_mask.png"), mask.astype(np.uint8) * 255)
    return root
