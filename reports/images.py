"""Stored part images -> downscaled JPEG data URIs, so a report file carries its own pictures.

Images are always decoded and re-encoded, never copied: whatever a path points at, only pixels
reach the report, and a huge capture does not make a huge report.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from model.pillow_policy import load_whole  # and the station's pixel limit: its stored frames read here too

FULL_PX = 900  # longest side of the part image and overlay on an inspection report
THUMB_PX = 200  # longest side of a thumbnail on a shift report


def resolve(path: str, store_root: str | Path | None) -> Path | None:
    """The file behind a record's image path. With a store root, only paths that name a file under it (None for an
    absolute path or one with `..`). Judged by the path as written, not where links lead: a store whose `images/` is a
    link to a bigger disk (as the daemon writes through it) had every image missing from its reports and never
    deleted by retention."""
    if store_root is None:
        return Path(path)
    rel = Path(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return Path(store_root) / rel


def data_uri(image: str | None, store_root: str | Path | None, max_px: int = FULL_PX, quality: int = 85) -> str | None:
    """A JPEG data URI of a record's image, at most max_px on its longest side; None if missing or unreadable."""
    path = resolve(image, store_root) if image else None
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            im.draft("RGB", (max_px, max_px))  # JPEG sources decode at reduced size directly
            load_whole(im)  # a frame cut short is not available, whether WeasyPrint (a PDF) was imported or not
            # a grey frame shrinks before it is made RGB: a 182-megapixel line-scan frame took 930 MB, now 220 MB
            return _jpeg_uri(im if im.mode in ("L", "RGB") else im.convert("RGB"), max_px, quality)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def array_uri(rgb: np.ndarray, max_px: int = THUMB_PX, quality: int = 85) -> str:
    """A JPEG data URI of an RGB uint8 array [H, W, 3], at most max_px on its longest side."""
    return _jpeg_uri(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)), max_px, quality)


def _jpeg_uri(im: Image.Image, max_px: int, quality: int) -> str:
    im.thumbnail((max_px, max_px), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
