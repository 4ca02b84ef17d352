"""The demo product: ceramic-tile parts cut from a texture shipped inside scikit-image (CC0), with defects.

Nothing is downloaded: `skimage.data.brick()` is a file inside the scikit-image wheel. Each part is a crop
with a little position, rotation, scale and lighting jitter, as parts on a conveyor look under one camera;
defective parts are good parts with a procedural defect from `model.synth` and its exact pixel mask.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from model.errors import InspectorError
from model.synth import DEFECT_TYPES, NEEDS_DONOR, synthesize

TEXTURE = "skimage.data.brick (CC0)"
# the demo's kinds of defect: a transplant (another part's surface) is left out, as each part is made alone
DEMO_DEFECTS = tuple(t for t in DEFECT_TYPES if t not in NEEDS_DONOR)
MIN_CONTRAST = 15.0  # mean grey-level change under a defect's mask: fainter draws are not "visible defects"
TINT = np.array([1.0, 0.95, 0.86], np.float32)  # a warm glaze, so the parts are colour images


@dataclass(frozen=True)
class Sizes:
    """How many parts of each kind, and their size in px."""

    part_px: int
    train: int  # good parts the model is fitted on
    calib_good: int  # held out from fitting, used to calibrate the threshold
    calib_per_type: int  # defective parts per defect type, for calibration
    line_good: int  # the parts that run down the line (held out from fitting and calibration)
    line_per_type: int


@dataclass
class LinePart:
    """One part on the line: its serial, its truth and, for defects, the mask file."""

    index: int
    serial: str
    truth: str  # "good" or the defect type
    image: str
    mask: str | None = None

    @property
    def is_defect(self) -> bool:
        return self.truth != "good"


def load_texture() -> np.ndarray:
    """The source texture as float32 grey in [0, 255]."""
    try:
        from skimage import data
    except ImportError:
        raise InspectorError("the demo needs scikit-image (its CC0 texture images): pip install 'inspector-edge[demo]'") from None
    return data.brick().astype(np.float32)


class PartMaker:
    """Good parts: seeded crops of the texture under slightly different placement and light."""

    def __init__(self, texture: np.ndarray, part_px: int, seed: int, shift: float = 0.03) -> None:
        self.texture, self.part_px, self.shift = texture, part_px, shift
        self.rng = np.random.default_rng(seed)
        self.crop = min(texture.shape) * 0.4  # a part spans 40% of the texture: several bricks and joints

    def good(self) -> np.ndarray:
        rng, h = self.rng, self.texture.shape[0]
        # every part is the same tile design, placed a little differently under the camera
        cx, cy = h / 2 + rng.uniform(-1, 1, 2) * self.shift * self.crop
        scale = self.part_px / self.crop * rng.uniform(0.98, 1.02)
        m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(rng.uniform(-2, 2)), scale)
        m[:, 2] += self.part_px / 2 - np.array([cx, cy])
        grey = cv2.warpAffine(self.texture, m, (self.part_px, self.part_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        ramp = np.linspace(-1, 1, self.part_px, dtype=np.float32)
        light = 1 + rng.uniform(-0.05, 0.05) * ramp[None, :] + rng.uniform(-0.05, 0.05) * ramp[:, None]
        grey = grey * rng.uniform(0.92, 1.08) * light + rng.uniform(-8, 8) + rng.normal(0, 2.0, grey.shape)
        return np.clip(grey[..., None] * TINT, 0, 255).astype(np.uint8)

    def defect(self, defect_type: str) -> tuple[np.ndarray, np.ndarray]:
        """A good part with one defect an inspector would see: a draw too small or too faint is drawn again."""
        min_px = max(6, int(0.002 * self.part_px**2))
        for _ in range(20):
            good = self.good()
            image, mask = synthesize(good, defect_type, self.rng, severity=float(self.rng.uniform(0.6, 1.0)), min_pixels=min_px)
            change = np.abs(image.astype(np.int16) - good.astype(np.int16)).max(axis=2)[mask]
            if mask.sum() >= min_px and change.mean() >= MIN_CONTRAST:
                return image, mask
        return image, mask


def _write(path: Path, rgb: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb):
        raise InspectorError(f"demo output {path.parent}: cannot write {path.name}; is the disk full or the folder read-only?")
    return str(path)


def write_training_set(maker: PartMaker, root: Path, sizes: Sizes) -> Path:
    """An MVTec-AD-layout folder: train/good (fitting), test/good + test/<type> with ground_truth masks (calibration)."""
    for i in range(sizes.train):
        _write(root / "train" / "good" / f"{i:04d}.png", maker.good())
    for i in range(sizes.calib_good):
        _write(root / "test" / "good" / f"{i:04d}.png", maker.good())
    for t in DEMO_DEFECTS:
        for i in range(sizes.calib_per_type):
            image, mask = maker.defect(t)
            _write(root / "test" / t / f"{i:04d}.png", image)
            _write(root / "ground_truth" / t / f"{i:04d}_mask.png", mask.astype(np.uint8) * 255)
    return root


def write_line_parts(maker: PartMaker, root: Path, sizes: Sizes, seed: int) -> list[LinePart]:
    """The held-out parts that run down the line, in a shuffled order, with serials and truth (labels.json)."""
    truths = ["good"] * sizes.line_good + [t for t in DEMO_DEFECTS for _ in range(sizes.line_per_type)]
    np.random.default_rng(seed + 1).shuffle(truths)
    parts = []
    for i, truth in enumerate(truths):
        serial = f"T{i + 1:05d}"
        if truth == "good":
            image, mask = maker.good(), None
        else:
            image, mask = maker.defect(truth)
        part = LinePart(i, serial, truth, _write(root / f"{serial}.png", image))
        if mask is not None:
            part.mask = _write(root / "masks" / f"{serial}_mask.png", mask.astype(np.uint8) * 255)
        parts.append(part)
    (root / "labels.json").write_text(json.dumps([asdict(p) for p in parts], indent=1), encoding="utf-8")
    return parts


def write_video(parts: list[LinePart], path: Path, fps: float = 5.0) -> tuple[Path, str]:
    """The line as a camera saw it, one frame per part -> (path, codec).

    Lossless FFV1 where OpenCV's FFmpeg has it, so the station sees the very pixels the parts were made
    with (the model was fitted on lossless images; JPEG artefacts alone would raise every score);
    otherwise Motion-JPEG, which every OpenCV build writes.
    """
    first = cv2.imread(parts[0].image)
    h, w = first.shape[:2]
    for codec in ("FFV1", "MJPG"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
        if writer.isOpened():
            break
    else:
        raise InspectorError(f"video {path}: OpenCV cannot write FFV1 or Motion-JPEG here; check the opencv-python-headless install")
    for p in parts:
        writer.write(cv2.imread(p.image))
    writer.release()
    return path, codec


def contact_sheet(parts: list[LinePart], path: Path, n: int = 8) -> Path:
    """Good parts over defective ones (each defect outlined in red), two rows, for the README and the curious."""
    first_of_type = {p.truth: p for p in reversed(parts) if p.is_defect}  # the first part of each defect type
    chosen = [p for p in parts if not p.is_defect][: n // 2] + sorted(first_of_type.values(), key=lambda p: p.index)[: n - n // 2]
    tiles = []
    for p in chosen:
        bgr = cv2.imread(p.image)
        if p.mask:
            mask = cv2.imread(p.mask, cv2.IMREAD_GRAYSCALE)
            contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(bgr, contours, -1, (0, 0, 255), 1)
        cv2.putText(bgr, p.truth, (4, bgr.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(cv2.copyMakeBorder(bgr, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    while len(tiles) % 2:
        tiles.append(np.full_like(tiles[0], 255))
    half = len(tiles) // 2
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])]))
    return path
