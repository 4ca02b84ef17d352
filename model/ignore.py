"""Don't-care regions (`fit --ignore`): parts of the inspected view that the model neither learns nor judges, such as a
printed date code, a label or a hole the background shows through. Given as rectangles or mask images in the
training images' pixels; kept as one mask at the model's input size (model.framing), which the graph fills from the
pixels around it before its backbone sees it (model.net.fill_around), and in whose pixels its map reads its least value."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from model.errors import InspectorError, file_problem
from model.framing import Roi, crop
from model.images import read_mask, upright

IGNORE_HINT = ("give X,Y,W,H (a rectangle: left, top, width, height in pixels of the training images) or the path of a "
               "mask image of their size (white: ignore), e.g. 20,300,120,40")
MIN_KEPT = 0.05  # of the view: below this there is too little left to judge a part by


def parse_ignore(text: str) -> tuple[int, int, int, int] | Path:
    """One --ignore value: a rectangle X,Y,W,H (W, H at least 1) or a mask image's path; else one line."""
    parts = text.split(",")
    if len(parts) == 4 and all(p.strip().lstrip("-").isdigit() for p in parts):
        x, y, w, h = (int(p) for p in parts)
        if x < 0 or y < 0 or w < 1 or h < 1:
            raise InspectorError(f"--ignore {text}: {IGNORE_HINT}")
        return x, y, w, h
    path = Path(text)
    if what := file_problem(path, "mask image"):  # a folder or a FIFO was "no such mask image"
        raise InspectorError(f"--ignore {text}: {what}; {IGNORE_HINT}")
    return path


MAX_GREY = 0.05  # of a mask, light grey (not white) yet ignored: more, and it is a picture (a training image painted on)


def _read(path: Path, text: str) -> np.ndarray:
    """The mask image `path` (given as `text`), bool; a file that is no image is named as the --ignore it came from,
    and so is a picture rather than a black-and-white mask. Transparent pixels are never ignored."""
    try:
        mask = read_mask(path, None)
    except InspectorError as exc:  # "mask PATH: cannot be decoded (...)": the reason, under the option's name
        reason = str(exc).removeprefix(f"mask {path}: ")
        raise InspectorError(f"--ignore {text}: {reason}; give a mask image (PNG, BMP or TIFF; white: ignore) of the training "
                             "images' size, or a rectangle X,Y,W,H") from None
    with Image.open(path) as img:  # read_mask decoded it: again for its grey levels and transparency
        img = upright(img)
        grey = np.asarray(img.convert("L"), dtype=np.float32)
        see_through = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
        alpha = np.asarray(img.convert("RGBA").getchannel("A")) if see_through else None
    if alpha is not None:  # painted on a transparent layer: what was left transparent (whatever its colour) is inspected
        mask &= alpha > 127
        grey = np.where(alpha > 127, grey, 0.0)
    top = float(grey.max())  # a 0/255 mask's ignored pixels are white; light grey ones are a picture's (0/1 masks: none)
    share = float((mask & (grey < 0.875 * top)).mean()) if top > 127 else 0.0
    if share > MAX_GREY:
        raise InspectorError(f"--ignore {text}: {share:.0%} of it is light grey, not white, as in a picture of the part, and "
                             "would be ignored; give a mask image of the training images' size, white where to ignore and black "
                             "elsewhere (a training image painted on is not one), or a rectangle X,Y,W,H")
    return mask


def ignore_mask(specs: Sequence[str], frame_shape: tuple[int, int], roi: Roi | None, size: tuple[int, int]) -> np.ndarray:
    """The don't-care regions `specs`, drawn on frames of `frame_shape` (H, W), as a bool mask [h, w] at the input
    `size` of the view the model is given (the region `roi`, else the frame). An input pixel any part of which is
    ignored, or next to one, is ignored."""
    height, width = frame_shape
    full = np.zeros(frame_shape, bool)
    for text in specs:
        spec = parse_ignore(text)
        if isinstance(spec, Path):
            mask = _read(spec, text)
            if mask.shape != frame_shape:
                region = roi is not None and mask.shape == (roi[3], roi[2])  # drawn on the cut region, not the image
                raise InspectorError(f"--ignore {text}: {mask.shape[1]}x{mask.shape[0]} px"
                                     + (", the --roi's size" if region else "") + f", but the training images are "
                                     f"{width}x{height} px; draw the mask on a whole training image"
                                     + (" (the --roi is cut from it as from the images)" if region else ""))
            full |= mask
            continue
        x, y, w, h = spec
        if x + w > width or y + h > height:
            raise InspectorError(f"--ignore {text}: the rectangle reaches beyond the {width}x{height} px training images; {IGNORE_HINT}")
        full[y : y + h, x : x + w] = True
    view = crop(full, roi, "--ignore mask")
    small = cv2.resize(view.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA) > 0
    # one input pixel more all round: resizing a frame by interpolation reads its neighbours too (model.images.preprocess)
    small = cv2.dilate(small.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    where = "the region of interest" if roi is not None else "the image"
    if not small.any():
        raise InspectorError(f"--ignore {' '.join(specs)}: covers nothing of {where}; give regions inside it")
    if 1.0 - small.mean() < MIN_KEPT:
        raise InspectorError(f"--ignore {' '.join(specs)}: leaves {1.0 - small.mean():.1%} of {where} to inspect; "
                             f"ignore less (at least {MIN_KEPT:.0%} must stay)")
    return small
