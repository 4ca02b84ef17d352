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
