"""PIL images a program hands the API, in the modes Pillow makes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.images import pil_to_rgb


def test_a_grey_image_with_premultiplied_alpha_reads_as_its_grey():
    """Mode La was refused ("conversion from La to L not supported"), though its grey is there to read."""
    grey = np.arange(400, dtype=np.uint8).reshape(20, 20) % 200
    img = Image.merge("La", (Image.fromarray(grey), Image.new("L", (20, 20), 255)))  # opaque: premultiplied = straight
    rgb = pil_to_rgb(img)
    assert rgb.shape == (20, 20, 3) and np.array_equal(rgb[..., 0], grey) and np.array_equal(rgb[..., 2], grey)


def test_a_native_order_16_bit_image_is_stretched_as_the_other_16_bit_modes_are():
    """Mode I;16N (Image.frombuffer(..., "I;16N")) was converted by Pillow, which clips at 255: a 12-bit frame read white."""
    grey = (np.arange(400, dtype=np.uint16).reshape(20, 20) * 10).astype(np.uint16)  # 0-3990, as a 12-bit camera's
    native, little = (Image.frombytes(mode, (20, 20), grey.astype("=u2" if mode == "I;16N" else "<u2").tobytes())
                      for mode in ("I;16N", "I;16L"))
    assert native.mode == "I;16N"
    assert np.array_equal(pil_to_rgb(native), pil_to_rgb(little)) and pil_to_rgb(native).min() < 10
