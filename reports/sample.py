"""Realistic fake result records (and their images) for the report bench, tests and documentation.

Records follow InspectionResult.to_record(); images are synthetic machined-metal textures drawn with
numpy and Pillow, written in the store's layout (images/<day>/<id>_<kind>.png) under a root folder.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

DEFECT_TYPES = ("scratch", "dent", "stain", "crack", "pit")
DEFECT_WEIGHTS = (0.38, 0.24, 0.18, 0.12, 0.08)  # a Pareto-like mix
MODEL = {"id": "station3-efficientnet-lite0-64b8c1e2", "backbone": "efficientnet-lite0",
         "sha256": hashlib.sha256(b"sample model").hexdigest(), "runtime": "onnxruntime-cpu"}
THRESHOLD = 4.2


def _textures(rng: np.random.Generator, size: int, k: int = 8) -> list[np.ndarray]:
    """A few brushed-metal disc images (RGB uint8) that the parts are drawn from."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - size / 2, yy - size / 2) / (size / 2)
    out = []
    for _ in range(k):
        brushed = rng.normal(0, 1, (size, 1)).astype(np.float32).repeat(size, axis=1) * 6
        base = 150 + 40 * (1 - r) + brushed + rng.normal(0, 4, (size, size)).astype(np.float32)
        base = np.where(r < 0.92, base, 60 + rng.normal(0, 3, (size, size)))
        base = np.where(np.abs(r - 0.3) < 0.02, base - 45, base)  # a machined groove
        img = np.clip(base, 0, 255).astype(np.uint8)
        out.append(np.stack([img, img, (img * 0.97).astype(np.uint8)], axis=-1))
    return out


def _draw_defect(img: Image.Image, kind: str, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    x, y, w, h = box
    d = ImageDraw.Draw(img)
    if kind in ("scratch", "crack"):
        pts = [(x + w * t, y + h * (t + rng.uniform(-0.15, 0.15))) for t in np.linspace(0, 1, 6)]
        d.line(pts, fill=(235, 235, 235) if kind == "scratch" else (25, 25, 25), width=2 if kind == "scratch" else 3)
    elif kind == "stain":
        d.ellipse((x, y, x + w, y + h), fill=(120, 95, 60))
    else:
        d.ellipse((x, y, x + w, y + h), fill=(45, 45, 45), outline=(200, 200, 200))


def _overlay(img: Image.Image, boxes: list[tuple[int, int, int, int]], verdict: str) -> Image.Image:
    """A heat-map-like overlay: red glow over the regions, outlined boxes and a verdict banner."""
    out = img.copy()
    if boxes:
        arr = np.asarray(img).astype(np.float32)
        yy, xx = np.indices(arr.shape[:2])
        heat = np.zeros(arr.shape[:2], np.float32)
        for x, y, w, h in boxes:
            heat = np.maximum(heat, np.exp(-(((xx - x - w / 2) / (w / 1.5 + 2)) ** 2 + ((yy - y - h / 2) / (h / 1.5 + 2)) ** 2)))
        arr = arr * (1 - 0.6 * heat[..., None]) + np.array([230, 40, 20], np.float32) * 0.6 * heat[..., None]
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    size = out.width
    d = ImageDraw.Draw(out)
    colour = (220, 40, 40) if verdict == "FAIL" else (40, 160, 40)
    for x, y, w, h in boxes:
        d.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=2)
    d.rectangle((0, 0, size, 18), fill=colour)
    d.text((4, 3), verdict, fill=(255, 255, 255))
    return out


def make_records(n: int, root: str | Path | None = None, start: datetime | None = None, hours: float = 8.0,
                 station: str = "line1-station3", seed: int = 0, image_size: int = 256, fail_rate: float = 0.06,
                 images_for: str = "all") -> list[dict[str, Any]]:
    """n records spread over `hours` from `start`, oldest first; with `root`, their image and overlay files too
    (for every part, or with images_for="fail" only for failed ones: a shift report shows no passed part's image
    unless fewer parts failed than it has thumbnails, and writing 2,000 PNGs takes a while).

    One hour in the middle of the shift runs at three times the failure rate, so the p-chart has something to show.
    """
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    textures = _textures(rng, image_size) if root is not None else []
    step = hours * 3600.0 / max(n, 1)
    records = []
    for k in range(n):
        t = start + timedelta(seconds=k * step + rng.uniform(0, step * 0.8))
        bad_hour = abs((t - start).total_seconds() / 3600.0 - hours / 2) < 0.5
        fail = rng.random() < fail_rate * (3 if bad_hour else 1)
        score = float(THRESHOLD * (1.05 + rng.gamma(2.0, 0.25)) if fail else THRESHOLD * rng.beta(4, 3) * 0.95)
        defects, kinds = [], []
        if fail:
            main = str(rng.choice(DEFECT_TYPES, p=DEFECT_WEIGHTS))
            for j in range(int(rng.integers(1, 4))):
                kind = main if j == 0 else str(rng.choice(DEFECT_TYPES, p=DEFECT_WEIGHTS))
                w, h = (int(v) for v in rng.integers(image_size // 16, image_size // 5, 2))
                x, y = (int(v) for v in rng.integers(image_size // 6, image_size - image_size // 6 - max(w, h), 2))
                area = int(w * h * rng.uniform(0.35, 0.8))
                defects.append({"type": kind, "confidence": round(float(rng.uniform(0.55, 0.99)), 3), "box": [x, y, w, h],
                                "area_px": area, "area_mm2": round(area * 0.0025, 3),
                                "severity": "low" if j or score < 1.2 * THRESHOLD else "medium" if score < 1.5 * THRESHOLD else "high",
                                "peak": round(score * rng.uniform(0.9, 1.4), 4)})
                kinds.append(kind)
        iid = f"{t:%Y%m%d%H%M%S}-{int(rng.integers(0, 16**8)):08x}"
        record = {
            "inspection_id": iid, "station": station, "serial": f"SN-{t:%y%m%d}-{k:05d}",
            "timestamp": t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "verdict": "FAIL" if fail else "PASS", "score": round(score, 6), "threshold": THRESHOLD, "pixel_threshold": THRESHOLD,
            "defect_type": kinds[0] if kinds else None, "type_confidence": defects[0]["confidence"] if defects else None,
            "defects": defects,
            "image": {"width": image_size, "height": image_size, "sha256": hashlib.sha256(iid.encode()).hexdigest()},  # of the image file, when one is written
            "model": dict(MODEL),
            "timings_ms": {"decode": round(float(rng.gamma(9, 0.3)), 3), "preprocess": round(float(rng.gamma(8, 0.25)), 3),
                           "infer": round(float(rng.gamma(30, 0.8) * (1.4 if bad_hour else 1)), 3),
                           "decision": round(float(rng.gamma(4, 0.2)), 3)},
            "images": {}, "source": "camera:0",
        }
        if root is not None and (fail or images_for == "all"):
            record["images"] = write_images(Path(root), record, textures[k % len(textures)], rng)
        records.append(record)
    return records


def write_images(root: Path, record: dict[str, Any], texture: np.ndarray, rng: np.random.Generator) -> dict[str, str]:
    """Write <id>_image.png and <id>_overlay.png in the store layout (and the image's sha256 into the record); returns their paths relative to root."""
    img = Image.fromarray(texture)
    boxes = [tuple(d["box"]) for d in record["defects"]]
    for d in record["defects"]:
        _draw_defect(img, d["type"], tuple(d["box"]), rng)
    folder = root / "images" / record["timestamp"][:10]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, picture in (("image", img), ("overlay", _overlay(img, boxes, record["verdict"]))):
        path = folder / f"{record['inspection_id']}_{kind}.png"
        picture.save(path, compress_level=1)
        paths[kind] = str(path.relative_to(root))
    record["image"]["sha256"] = hashlib.sha256((folder / f"{record['inspection_id']}_image.png").read_bytes()).hexdigest()
    return paths
