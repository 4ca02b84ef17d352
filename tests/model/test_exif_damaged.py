"""Pillow before 13 gives no EXIF tags at all where one tag is damaged (an ImageDescription whose length runs past the
file): the orientation is then read from the raw EXIF, and a photo is not inspected sideways."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from model.images import _raw_orientation, orientation, read_image


def _jpeg(tmp_path, turn: int):
    exif = Image.Exif()
    exif[0x0112] = turn
    path = tmp_path / f"turned{turn}.jpg"
    Image.fromarray(np.zeros((40, 24, 3), np.uint8)).save(path, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("turn, shape", [(1, (40, 24, 3)), (3, (40, 24, 3)), (6, (24, 40, 3)), (8, (24, 40, 3))])
def test_an_orientation_pillow_cannot_parse_is_read_from_the_raw_exif(tmp_path, monkeypatch, turn, shape):
    path = _jpeg(tmp_path, turn)
    monkeypatch.setattr(Image.Image, "getexif", lambda self: Image.Exif())  # as Pillow 10.4-12.3 answers a damaged EXIF
    with Image.open(path) as img:
        assert orientation(img) == turn
    assert read_image(path).shape == shape


def test_raw_exif_of_either_byte_order_and_damaged_raw_exif():
    def tiff(order: str, entries: list[tuple[int, int, int, bytes]]) -> bytes:
        head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", len(entries))
        return head + b"".join(struct.pack(order + "HHI", tag, kind, n) + value.ljust(4, b"\0") for tag, kind, n, value in entries)

    for order in "<>":
        described = (0x010E, 2, 10_000, struct.pack(order + "I", 1 << 30))  # a description past the end of the file
        raw = tiff(order, [described, (0x0112, 3, 1, struct.pack(order + "H", 6))])
        assert _raw_orientation(b"Exif\0\0" + raw) == 6 and _raw_orientation(raw) == 6
        assert _raw_orientation(raw[:-6]) is None  # cut inside its entry
        assert _raw_orientation(tiff(order, [described])) is None
    assert _raw_orientation(b"Exif\0\0XX") is None and _raw_orientation(None) is None and _raw_orientation(b"") is None
    with io.BytesIO() as nothing:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(nothing, "PNG")
        assert orientation(Image.open(io.BytesIO(nothing.getvalue()))) == 1
