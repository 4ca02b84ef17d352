"""Seeded synthetic parts for tests: a striped, noisy texture; defects are dark blobs or bright scratches."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def good_image(seed: int, size: int = 96) -> np.ndarray:
    """RGB uint8 texture with vertical stripes, mild lighting gradient and noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(size)
    stripes = 0.5 + 0.08 * np.sin(2 * np.pi * x / 6.0 + rng.uniform(0, 6.28))
    img = np.tile(stripes, (size, 1))
    img = img + np.linspace(-0.05, 0.05, size)[:, None] * rng.uniform(-1, 1)
    img = img + rng.normal(0, 0.02, (size, size))
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


def defect_image(seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image with a planted dark blob, bool mask of the blob)."""
    rng = np.random.default_rng(10_000 + seed)
    img = good_image(10_000 + seed, size).copy()
    mask = np.zeros((size, size), np.uint8)
    cx, cy = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
    r = int(rng.integers(size // 12, size // 7))
    cv2.circle(mask, (cx, cy), r, 1, -1)
    img[mask > 0] = (img[mask > 0] * 0.25).astype(np.uint8)
    return img, mask > 0


def write_mvtec(root: Path, n_train: int = 12, n_good_test: int = 4, n_defect: int = 4, size: int = 96) -> Path:
    """A small MVTec-AD-layout dataset: train/good, test/good, test/blob, ground_truth/blob."""
    for sub in ("train/good", "test/good", "test/blob", "ground_truth/blob"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        cv2.imwrite(str(root / "train/good" / f"{i:03d}.png"), good_image(i, size))
    for i in range(n_good_test):
        cv2.imwrite(str(root / "test/good" / f"{i:03d}.png"), good_image(500 + i, size))
    for i in range(n_defect):
        img, mask = defect_image(i, size)
        cv2.imwrite(str(root / "test/blob" / f"{i:03d}.png"), img)
        cv2.imwrite(str(root / "ground_truth/blob" / f"{i:03d}_mask.png"), mask.astype(np.uint8) * 255)
    return root
