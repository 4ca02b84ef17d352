"""Pillow's process-wide reading policy, imported by every module that reads images with it: a station's frames, and
its reports' stored images and logo, read by one pixel limit and without Pillow's raw warnings (`inspector report`,
which loads no model code, printed a DecompressionBombWarning before its one-line error, and left a stored
line-scan frame the station had read out of the report)."""

from __future__ import annotations

import warnings

from PIL import Image, ImageFile

Image.MAX_IMAGE_PIXELS = 200_000_000  # large line-scan frames are legitimate; beyond this is a decompression bomb
# Pillow's warnings were printed raw before a verdict: a frame up to 2 x MAX_IMAGE_PIXELS is read on purpose, and
# its UserWarnings say it read a damaged file's metadata as far as it could (a corrupt EXIF reads upright as stored).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def load_whole(img: Image.Image) -> None:
    """Decode img's pixels, an OSError for a file cut short. WeasyPrint, once imported (a PDF report, `eval --report`,
    the daemon), turns Pillow's truncated-image tolerance on process-wide: a file cut short was padded with grey there
    (a mask passed eval's check, a stored frame was shown in a report) and refused in a process without it."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    img.load()
