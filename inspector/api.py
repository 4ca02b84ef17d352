"""The Python API: `Inspector.load(model).inspect(image)`."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from inspector.decision import FAIL, DecisionConfig, apply_type, decide, name_defect
from inspector.engines import Engine, open_engine
from inspector.result import InspectionResult
from model.errors import InspectorError
from model.framing import box_in_frame, ignored_in, place_map
from model.images import array_to_rgb, decode_image, pil_to_rgb, preprocess, read_image_bytes, resize_map
from model.quality import WARNINGS, quality_causes, quality_stats

ImageInput = "str | Path | bytes | np.ndarray | LoadedImage"


class LoadedImage(NamedTuple):
    """An image decoded once: its RGB pixels, the sha256 of its source bytes (or pixels) and its source's name."""

    rgb: np.ndarray
    sha256: str
    source: str


def load_image(image, name: str | None = None) -> LoadedImage:
    """Decode a path, encoded bytes, a PIL image or a uint8/uint16 array (grey, RGB or RGBA); a LoadedImage is returned as it is (under `name`, if given)."""
    if isinstance(image, LoadedImage):
        return image._replace(source=name) if name else image
    if isinstance(image, (str, Path)):
        if not str(image):
            raise InspectorError("image '': an empty path; give an image file")
        rgb, data = read_image_bytes(image)
        return LoadedImage(rgb, hashlib.sha256(data).hexdigest(), name or str(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return LoadedImage(decode_image(data, name or "payload"), hashlib.sha256(data).hexdigest(), name or "bytes")
    if isinstance(image, np.ndarray):
        return LoadedImage(array_to_rgb(image), hashlib.sha256(image.tobytes()).hexdigest(), name or "array")
    if isinstance(image, Image.Image):
        rgb = pil_to_rgb(image, name or "PIL image")
        return LoadedImage(rgb, hashlib.sha256(rgb.tobytes()).hexdigest(), name or "PIL image")
    raise InspectorError(f"image of type {type(image).__name__}: give a path, encoded bytes, a PIL image or a uint8/uint16 array")


class Inspector:
    """Scores images with an engine and turns scores into verdicts and defect regions."""

    def __init__(self, engine: Engine, decision: DecisionConfig | None = None, station: str | None = None) -> None:
        self.engine = engine
        self.decision = decision or DecisionConfig()
        self.station = station

    @classmethod
    def load(cls, model: str | Path, device: str = "cpu", decision: DecisionConfig | None = None, station: str | None = None) -> Inspector:
        """Open a checkpoint directory or an exported model."""
        return cls(open_engine(model, device=device), decision, station)

    @property
    def image_threshold(self) -> float:
        t = self.decision.image_threshold
        return self.engine.meta.image_threshold if t is None else t

    @property
    def pixel_threshold(self) -> float:
        t = self.decision.pixel_threshold
        return self.engine.meta.pixel_threshold if t is None else t

    def with_thresholds(self, image: float | None = None, pixel: float | None = None) -> Inspector:
        """A copy that uses other thresholds (the graph is unchanged); None keeps the current one."""
        for name, value in (("image", image), ("pixel", pixel)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
                raise InspectorError(f"{name} threshold {value!r}: give a number")
            if value is not None and not math.isfinite(value):  # NaN would PASS every part
                raise InspectorError(f"{name} threshold {value}: give a finite score")
        d = self.decision
        image = d.image_threshold if image is None else image
        pixel = d.pixel_threshold if pixel is None else pixel
        return Inspector(self.engine, replace(d, image_threshold=image, pixel_threshold=pixel), self.station)

    def inspect(self, image, *, serial: str | None = None, source: str | None = None, inspection_id: str | None = None) -> InspectionResult:
        """Inspect one image: a path, encoded bytes, a PIL image, a uint8/uint16 array (grey, RGB or RGBA) or a LoadedImage."""
        return self.inspect_batch([image], serials=[serial], sources=[source], ids=[inspection_id])[0]

    def inspect_batch(self, images: list, serials=None, sources=None, ids=None) -> list[InspectionResult]:
        """Inspect several images in one forward pass (none: no results)."""
        if isinstance(images, (str, Path, bytes, np.ndarray, Image.Image)):  # one image, iterated by character or row
            raise InspectorError(f"inspect_batch: give a list of images, not one {type(images).__name__}; or call inspect()")
        n = len(images)
        if not n:
            return []
        for name, given in (("serials", serials), ("sources", sources), ("ids", ids)):
            if given is not None and len(given) != n:
                raise InspectorError(f"inspect_batch: {len(given)} {name} for {n} images; give one for each image, or none")
        serials, sources, ids = serials or [None] * n, sources or [None] * n, ids or [None] * n
        t0 = time.perf_counter()
        loaded = [load_image(img, src) for img, src in zip(images, sources, strict=True)]
        t1 = time.perf_counter()
        meta = self.engine.meta
        located = [meta.framing.located(rgb, src) for rgb, _, src in loaded]
        batch = np.stack([preprocess(rgb, meta.input_size, box, src) for (rgb, _, src), (box, _) in zip(loaded, located, strict=True)])
        training = meta.manifest.get("training") or {}
        sizes, quality = training.get("image_size"), training.get("image_quality")
        stats = quality_stats(batch) if quality else None
        t2 = time.perf_counter()
        out = self.engine.infer(batch)
        t3 = time.perf_counter()
        results = []
        for i, (rgb, digest, src) in enumerate(loaded):
            box, weak = located[i]
            seen = [WARNINGS[c] for c in quality_causes(stats[i], quality)] if quality else []
            warnings = [w for w in (unlike_training(rgb.shape[:2], sizes), weak, *seen) if w]
            td = time.perf_counter()
            amap = resize_map(out.amap[i].astype(np.float32), rgb.shape[:2] if box is None else (box[3], box[2]))
            score = float(out.score[i])
            verdict, regions = decide(score, judged(amap, meta.framing.ignored), self.image_threshold, self.pixel_threshold, self.decision)
            if box is not None:  # regions were found within the region of interest, as the model saw it
                regions = [replace(r, box=box_in_frame(r.box, box, rgb.shape[:2])) for r in regions]
                amap = place_map(amap, rgb.shape[:2], box)
            probs_i = out.type_probs[i] if out.type_probs is not None and verdict == FAIL else None
            defect_type, type_conf, type_probs = name_defect(probs_i, meta.class_names, self.decision)
            apply_type(regions, defect_type, type_conf)
            timings = {"decode": (t1 - t0) * 1000 / n, "preprocess": (t2 - t1) * 1000 / n, "infer": (t3 - t2) * 1000 / n,
                       "decision": (time.perf_counter() - td) * 1000}
            results.append(InspectionResult(
                inspection_id=ids[i] or uuid.uuid4().hex,
                verdict=verdict,
                score=score,
                threshold=self.image_threshold,
                pixel_threshold=self.pixel_threshold,
                regions=regions,
                anomaly_map=amap,
                image_shape=rgb.shape[:2],
                image_sha256=digest,
                model={"id": meta.model_id, "backbone": meta.backbone, "sha256": meta.sha256, "runtime": meta.runtime},
                timings_ms=timings,
                station=self.station,
                serial=serials[i],
                source=src,
                defect_type=defect_type,
                type_confidence=type_conf,
                type_probs=type_probs,
                warnings=warnings,
                roi=box,
                ignored=meta.framing.ignored,
            ))
        return results


def judged(amap: np.ndarray, ignored: np.ndarray | None) -> np.ndarray:
    """The map as regions are found in it: don't-care pixels (`--ignore`, at the input size) never part of one. They
    hold the map's least value, which a part failed all over (a missing part) still has above the pixel threshold."""
    if ignored is None:
        return amap
    return np.where(ignored_in(ignored, amap.shape, None), -np.inf, amap).astype(np.float32)


def unlike_training(shape: tuple[int, int], sizes: dict | None) -> str | None:
    """A warning when an image's size or shape is far from every training image's (more than twice or half their
    sides, or a width/height ratio 25 % beyond theirs): a camera's resolution, crop or orientation has changed,
    and the model judges a part it was never shown. None for checkpoints that record no sizes."""
    if not sizes:
        return None
    h, w = shape
    (w_lo, h_lo), (w_hi, h_hi), (a_lo, a_hi) = sizes["min"], sizes["max"], sizes["aspect"]
    if w_lo / 2 <= w <= w_hi * 2 and h_lo / 2 <= h <= h_hi * 2 and a_lo / 1.25 <= w / h <= a_hi * 1.25:
        return None
    seen = f"{w_lo}x{h_lo}" if (w_lo, h_lo) == (w_hi, h_hi) else f"{w_lo}x{h_lo} to {w_hi}x{h_hi}"
    return (f"image {w}x{h} px is unlike the training images ({seen} px); check the camera's resolution, crop and "
            "orientation, or fit on images like it")
