"""Review fixes (round 53): each test fails without its fix."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.errors import InspectorError


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,cut", [("PNG", 33), ("GIF", 300), ("GIF", 20), ("BMP", 10), ("JPEG", 20)])
def test_a_file_cut_in_its_header_is_named_damaged_by_its_first_bytes(fmt, cut):
    """Cuts that Pillow's readers refuse as UnidentifiedImageError were told to send JPEG or PNG bytes."""
    from model.images import decode_image

    data = _encoded(fmt)[:cut]
    with pytest.raises(InspectorError) as err:
        decode_image(data)
    assert str(err.value).endswith(f"the {fmt} data is damaged or cut short; save or send it again"), err.value
    assert "send JPEG or PNG bytes" not in str(err.value)


def test_bytes_of_no_known_format_are_still_told_what_to_send():
    from model.images import decode_image

    with pytest.raises(InspectorError, match=r"\(UnidentifiedImageError\); send JPEG or PNG bytes$"):
        decode_image(b"hello, this is no image at all")


@pytest.fixture(scope="module")
def insp(tiny_ckpt):
    from inspector import Inspector

    return Inspector.load(tiny_ckpt)


@pytest.mark.parametrize("name,given,match", [
    ("serials", "A7", "serials is one str"),
    ("serials", {"A7": 1, "B8": 2}, "serials is a dict"),
    ("sources", "ab", "sources is one str"),
    ("ids", {"x", "y"}, "ids is a set"),
    ("ids", b"xy", "ids is one bytes"),
])
def test_inspect_batch_refuses_one_string_a_dict_or_a_set_for_serials_sources_or_ids(insp, tiny_data, name, given, match):
    """serials="A7" was split into 'A' and '7', a dict taken as its keys, a set paired in no order."""
    path = tiny_data / "test" / "good" / "000.png"
    with pytest.raises(InspectorError, match=match):
        insp.inspect_batch([path, path], **{name: given})


def test_inspect_batch_takes_a_tuple_or_generator_of_serials(insp, tiny_data):
    path = tiny_data / "test" / "good" / "000.png"
    results = insp.inspect_batch([path, path], serials=(s for s in ["A7", "B8"]), ids=("i1", "i2"))
    assert [r.serial for r in results] == ["A7", "B8"] and [r.inspection_id for r in results] == ["i1", "i2"]
