"""Hostile inputs to the Python API's image intake: each a correct result or one clear InspectorError."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.api import LoadedImage, load_image
from model.errors import InspectorError


def _rgb() -> np.ndarray:
    rng = np.random.default_rng(53)
    return rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("make", [lambda a: Image.fromarray(a), lambda a: Image.fromarray(a).convert("RGBA"),
                                  lambda a: Image.fromarray(a[..., 0]), lambda a: Image.fromarray(a).convert("P")])
def test_a_pil_image_made_in_memory_is_read_like_its_pixels(make):
    """Pillow 13 gives an image made in memory (fromarray, .convert()) no `tile` attribute: every one was an
    AttributeError from deep in the 16-bit colour check, not a result."""
    rgb = _rgb()
    img = make(rgb)
    got = load_image(img).rgb
    assert got.shape == (24, 32, 3) and got.dtype == np.uint8
    assert np.array_equal(got, np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("path", ["/tmp/" + "a" * 5000 + ".png", "iVBORw0KGgo" * 1000])
def test_a_path_too_long_for_a_file_name_is_one_line_not_an_oserror(path):
    """Path.is_dir() raises ENAMETOOLONG (a str of base64 image data given as a path did too): an OSError traceback."""
    with pytest.raises(InspectorError, match=r"the path is too long.*give a shorter path") as info:
        load_image(path)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("url", ["http://example.com/part.png", "https://cam.local/snap.jpg?x=1", "file:///tmp/a.png"])
def test_a_url_is_named_as_one_not_mangled_into_no_such_file(url):
    """Path() made "http://example.com/part.png" "http:/example.com/part.png", and said there was no such file."""
    with pytest.raises(InspectorError, match="a URL, which is not fetched; download") as info:
        load_image(url)
    assert url in str(info.value)


def test_image_data_given_as_str_is_refused_without_printing_it():
    """PNG bytes decoded to str were taken as a path: 'no such file', the whole image in the line, NULs and all."""
    import io

    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, "PNG")
    text = buf.getvalue().decode("latin-1")
    with pytest.raises(InspectorError, match="holding a NUL character.*give encoded image data as bytes") as info:
        load_image(text)
    assert "\x00" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize("rgb", [_rgb().astype(np.float32) / 255, _rgb()[..., 0], _rgb()[:4, :4], None,
                                 np.dstack([_rgb(), _rgb()[..., :1]])])
def test_a_loaded_image_made_by_hand_is_checked(rgb):
    """A LoadedImage went to the model unchecked: float 0-1 pixels were scored as a near-black frame, grey pixels and
    None were tracebacks from preprocess and framing, a 4 x 4 one was inspected under the 8 px least side."""
    with pytest.raises(InspectorError, match=r"image cam1: a LoadedImage of .*make it with load_image\(\)"):
        load_image(LoadedImage(rgb, "0" * 64, "cam1"))
    good = load_image(_rgb())
    assert load_image(good) is good


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # numpy's own, on making an np.matrix
def test_an_array_subclass_is_read_as_its_plain_array():
    """A grey np.matrix raised numpy's AxisError (a matrix stays 2-D when a channel is added)."""
    grey = _rgb()[..., 0]
    assert np.array_equal(load_image(np.asmatrix(grey)).rgb, load_image(grey).rgb)


def test_a_big_endian_16_bit_array_is_read_as_the_same_little_endian_one():
    """dtype('>u2') is uint16 in another byte order, refused as 'dtype >u2; give uint8 or uint16 pixels'."""
    grey = (_rgb()[..., 0].astype(np.uint16) * 200)
    assert np.array_equal(load_image(grey.astype(">u2")).rgb, load_image(grey).rgb)


@pytest.mark.parametrize(("fmt", "keep"), [("WEBP", 0.5), ("WEBP", 20), ("JPEG", 0.1), ("PNG", 20), ("BMP", 20)])
def test_a_file_cut_short_before_pillow_could_open_it_is_named_by_its_format(tmp_path, fmt, keep):
    """A WebP cut short anywhere, or a JPEG, PNG or BMP cut in its header, failed in Pillow's reader of it before it
    named the format: the line asked "is it a PNG/JPEG/BMP/TIFF/WebP/GIF?" (bytes: "send JPEG or PNG bytes")."""
    import io

    from model.images import decode_image, read_image

    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    data = buf.getvalue()
    cut = data[: int(len(data) * keep) if keep < 1 else keep]
    (tmp_path / "part.img").write_bytes(cut)
    for read in (lambda: decode_image(cut), lambda: read_image(tmp_path / "part.img")):
        with pytest.raises(InspectorError, match=f"the {fmt} data is damaged or cut short; save or send it again$") as info:
            read()
        assert "is it a" not in str(info.value) and "send JPEG or PNG" not in str(info.value)


def test_bytes_of_no_image_format_still_get_the_format_hint():
    from model.images import decode_image

    for data in (b"BMW part 7, not an image", b"RIFF", b"\xff\xd8", b"hello"):
        with pytest.raises(InspectorError, match="send JPEG or PNG bytes$"):
            decode_image(data)
    with pytest.raises(InspectorError, match="the GIF data is damaged or cut short; save or send it again$"):  # its first bytes say GIF
        decode_image(b"GIF89a-not-quite")


@pytest.mark.parametrize("source", [b"cam1", 5])
def test_a_loaded_images_own_source_is_checked_as_a_given_source_is(source):
    """LoadedImage(rgb, sha, b"cam1") went into the record as bytes (to_record()'s JSON failed later), 5 as a number."""
    with pytest.raises(InspectorError, match=f"source {source!r}: give a str or None"):
        load_image(LoadedImage(_rgb(), "0" * 64, source))
    assert load_image(LoadedImage(_rgb(), "0" * 64, Path("/cam/1.png"))).source == "/cam/1.png"
    with pytest.raises(InspectorError, match="a LoadedImage whose sha256 is None"):
        load_image(LoadedImage(_rgb(), None, "cam1"))


def test_a_pil_image_closed_with_close_is_named_with_the_fix(tmp_path):
    """Image.close() (not a `with` block's end) made it 'cannot be converted (ValueError: Operation on closed image)'."""
    path = tmp_path / "part.png"
    Image.fromarray(_rgb()).save(path)
    img = Image.open(path)
    img.load()
    img.close()
    with pytest.raises(InspectorError, match=r"image PIL image: the PIL image was closed \(Image.close\(\)\) before it was "
                                             r"given; give it before closing it, or give the path$"):
        load_image(img)


@pytest.mark.parametrize("opener", ["file", "bytes"])
def test_a_pil_image_whose_own_file_object_was_closed_is_named_with_the_fix(tmp_path, opener):
    """`with open(path, "rb") as f: img = Image.open(f)`, inspected after the block: 'cannot be converted (ValueError:
    seek of closed file)', which said no fix."""
    path = tmp_path / "part.png"
    Image.fromarray(_rgb()).save(path)
    with open(path, "rb") if opener == "file" else io.BytesIO(path.read_bytes()) as f:
        img = Image.open(f)
    with pytest.raises(InspectorError, match=r"image PIL image: the file it was opened from was closed before its pixels "
                                             r"were read; call \.load\(\) while the file is open, or give the path$"):
        load_image(img)


@pytest.mark.parametrize("shape, hint", [((3, 32, 48), "; channels first? give a.transpose(1, 2, 0)"),
                                         ((1, 32, 48, 3), "; a batch of one? give a[0]"), ((32, 48, 5), "8x8")])
def test_a_channels_first_or_batched_array_is_told_how_to_give_it(shape, hint):
    """torch's [3, H, W] and a batch's [1, H, W, 3] had only the generic shape error."""
    from model.images import array_to_rgb

    with pytest.raises(InspectorError, match=re.escape(f"shape {shape}; give RGB [H, W, 3], RGBA or grayscale [H, W] of at least ") + ".*" + re.escape(hint) + "$"):
        array_to_rgb(np.zeros(shape, np.uint8))


def test_inspect_batch_refuses_a_dict_or_a_set(tiny_ckpt, tiny_data):
    """A dict's keys were inspected as paths ("image a: no such file"), and a set's results came in no order to pair."""
    from inspector.api import Inspector

    image = next((tiny_data / "test" / "good").iterdir())
    with Inspector.load(tiny_ckpt) as insp:
        with pytest.raises(InspectorError, match=r"not a dict; for \{serial: image\}, give list\(d.values\(\)\) and serials=list\(d\)$"):
            insp.inspect_batch({"A7": image})
        with pytest.raises(InspectorError, match="give a list of images, not a set$"):
            insp.inspect_batch({image})
