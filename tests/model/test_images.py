"""Reading images: formats, bit depths, EXIF orientation, bad files; masks; preprocessing."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from model.errors import InspectorError
from model.images import (
    FORMATS,
    array_to_rgb,
    broken_links_note,
    decode_image,
    list_images,
    pil_to_rgb,
    preprocess,
    read_image,
    read_image_header,
    read_mask,
    resize_map,
    scan_images,
)


def quadrants(h: int = 40, w: int = 24) -> np.ndarray:
    """RGB image with four flat, very different quadrants, so orientation survives JPEG."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2 :] = (0, 255, 0)
    img[h // 2 :, : w // 2] = (0, 0, 255)
    img[h // 2 :, w // 2 :] = (255, 255, 255)
    return img


def assert_close(a: np.ndarray, b: np.ndarray, tol: float) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < tol


@pytest.mark.parametrize("orientation, expected", [
    (1, lambda a: a),
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),  # stored image must be turned 90 deg clockwise for display
    (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied(tmp_path, orientation, expected):
    stored = quadrants()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as check:  # the tag really is in the file
        assert check.getexif().get(0x0112) == orientation
    assert_close(read_image(path), expected(stored), tol=12)


def test_damaged_exif_is_read_without_pillows_warning_on_stderr(tmp_path):
    exif = Image.Exif()
    exif[0x0112], exif[0x010E] = 6, "part 17, line 3"
    buf = io.BytesIO()
    Image.fromarray(quadrants()).save(buf, "JPEG", exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    tiff = data.index(b"Exif\x00\x00") + 6
    order = "<" if data[tiff:tiff + 2] == b"II" else ">"
    ifd = tiff + struct.unpack(order + "I", data[tiff + 4:tiff + 8])[0]
    for k in range(struct.unpack(order + "H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack(order + "H", data[entry:entry + 2])[0] == 0x010E:
            data[entry + 4:entry + 8] = struct.pack(order + "I", 100_000)  # the description's length: past the file's end
    path = tmp_path / "damaged_exif.jpg"
    path.write_bytes(data)
    code = f"from model.images import read_image; print(read_image({str(path)!r}).shape)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert run.stdout.split() == ["(24,", "40,", "3)"]  # still turned upright


def test_sixteen_bit_png_keeps_its_gradient(tmp_path):
    ramp = np.tile(np.linspace(1000, 4000, 64), (16, 1)).astype(np.uint16)  # 12-bit data in a 16-bit file
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), ramp)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 64, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    row = rgb[0, :, 0].astype(int)
    assert (np.diff(row) >= 0).all() and row[0] <= 5 and row[-1] >= 250  # full range used, order kept
    assert len(np.unique(row)) > 40  # not quantised to a handful of levels


def png_with_orientation(encoded: bytes, orientation: int) -> bytes:
    """A PNG with an eXIf chunk after IHDR (OpenCV writes 16-bit colour but no EXIF)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[6:]  # the chunk holds the TIFF structure without the "Exif\0\0" prefix
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    return encoded[:33] + chunk + encoded[33:]  # signature (8) + IHDR (25)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_keeps_every_bit(tmp_path, suffix, channels):
    rgb12 = (quadrants().astype(np.uint16) * 16)  # 12-bit colour data in a 16-bit file: at most 4080
    rgb12[0, 0] = (7, 9, 11)
    stored = rgb12 if channels == 3 else np.dstack([rgb12, np.full(rgb12.shape[:2], 65535, np.uint16)])
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(stored[..., [2, 1, 0, 3][:channels]]))  # OpenCV writes BGR(A)
    rgb = decode_image(buf.tobytes())
    expected = ((rgb12 - 7.0) / (4080 - 7.0) * 255.0).astype(np.uint8)  # stretched over all channels, like 16-bit grey
    assert np.array_equal(rgb, expected)  # Pillow alone read the top 8 bits: every pixel 0-15


@pytest.mark.parametrize("orientation", range(1, 9))
def test_sixteen_bit_colour_is_turned_upright_as_eight_bit_is(orientation):
    stored = quadrants()
    stored[0, 0] = (0, 0, 0)  # the stretch maps 0..255 x 257 back onto 0..255
    ok, buf8 = cv2.imencode(".png", stored[..., ::-1])
    ok, buf16 = cv2.imencode(".png", np.ascontiguousarray(stored[..., ::-1].astype(np.uint16) * 257))
    upright8 = decode_image(png_with_orientation(buf8.tobytes(), orientation))  # Pillow's exif_transpose
    upright16 = decode_image(png_with_orientation(buf16.tobytes(), orientation))
    assert upright16.shape == upright8.shape and np.abs(upright16.astype(int) - upright8).max() <= 1


def test_a_sixteen_bit_rgba_array_is_stretched_without_its_alpha():
    rgb = quadrants().astype(np.uint16) * 16
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 65535, np.uint16)])
    assert np.array_equal(array_to_rgb(rgba), array_to_rgb(rgb))  # alpha at 65535 compressed the colours to 0-15


def test_tiny_sixteen_bit_image_is_refused(tmp_path):
    path = tmp_path / "tiny16.png"
    cv2.imwrite(str(path), np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000)
    with pytest.raises(InspectorError, match="too small"):
        read_image(path)


def test_grayscale_is_replicated(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), gray)
    rgb = read_image(path)
    assert rgb.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".tiff", ".png"])
def test_lossless_formats_round_trip(tmp_path, suffix):
    rgb = np.random.default_rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    path = tmp_path / f"img{suffix}"
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_image(path), rgb)


def test_rgba_and_palette_become_rgb(tmp_path):
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]
    Image.fromarray(quadrants()).convert("P").save(tmp_path / "p.png")
    assert_close(read_image(tmp_path / "p.png"), quadrants(), tol=3)


@pytest.mark.parametrize("content", [b"", b"this is not an image", "truncated"])
def test_unreadable_files_raise_inspector_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    if content == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(InspectorError) as exc:
        read_image(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_a_huge_file_of_no_image_format_is_refused_unread(tmp_path, monkeypatch):
    """20 GB named .png (sparse: no disk used) was read whole first: a MemoryError traceback, or minutes and all memory."""
    from pathlib import Path

    path = tmp_path / "disk.png"
    with path.open("wb") as f:
        f.truncate(20 * 2**30)
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: pytest.fail(f"read whole: {p}") if p == path else real(p))
    with pytest.raises(InspectorError, match=r"^image .*disk.png: cannot be decoded \(21.5 GB, and no image format's header\); is it a PNG"):
        read_image(path)


def test_missing_file_and_too_small_image(tmp_path):
    with pytest.raises(InspectorError, match="no such file"):
        read_image(tmp_path / "nope.png")
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InspectorError, match="too small"):
        read_image(tmp_path / "small.png")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "camera.png")  # reading it would wait for a writer forever
    with pytest.raises(InspectorError, match="camera.png: not a regular file"):
        read_image(tmp_path / "camera.png")


def test_decode_image_bytes():
    buf = io.BytesIO()
    Image.fromarray(quadrants()).save(buf, "PNG")
    np.testing.assert_array_equal(decode_image(buf.getvalue()), quadrants())
    with pytest.raises(InspectorError, match=r"empty payload \(0 bytes\); send JPEG or PNG bytes"):  # with the fix, as every error
        decode_image(b"")
    with pytest.raises(InspectorError, match="frame-7"):
        decode_image(b"garbage", name="frame-7")


def test_read_mask(tmp_path):
    mask = np.zeros((10, 14), np.uint8)
    mask[2:5, 3:9] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", (10, 14)), mask > 0)
    with pytest.raises(InspectorError) as exc:
        read_mask(tmp_path / "m.png", (20, 28))  # a mask of another size than its image
    assert "m.png" in str(exc.value) and "14x10" in str(exc.value)
    (tmp_path / "bad_mask.png").write_bytes(b"nope")
    with pytest.raises(InspectorError, match="bad_mask.png"):
        read_mask(tmp_path / "bad_mask.png", (10, 14))


def test_a_jpeg_mask_keeps_its_shape_and_index_masks_their_labels(tmp_path):
    from scipy import ndimage

    mask = np.zeros((128, 128), np.uint8)
    mask[20:60, 30:90] = 255
    mask[80:100, 10:40] = 255
    cv2.imwrite(str(tmp_path / "m.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 90])
    got = read_mask(tmp_path / "m.jpg", mask.shape)
    assert (got != (mask > 0)).mean() < 0.002  # compression noise read as defect before: 16 regions, not 2
    assert ndimage.label(got, np.ones((3, 3)))[1] == 2
    labels = np.zeros((10, 14), np.uint8)
    labels[1:3, 1:3], labels[5:8, 5:9] = 1, 2  # a label-index mask: every non-zero pixel is a defect
    cv2.imwrite(str(tmp_path / "index.png"), labels)
    np.testing.assert_array_equal(read_mask(tmp_path / "index.png", (10, 14)), labels > 0)


def _encoded(fmt: str, *frames: np.ndarray) -> bytes:
    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buf, fmt, save_all=len(images) > 1, append_images=images[1:])
    return buf.getvalue()


def test_pages_missing_points_and_hot_pixels():
    good, bad = np.full((16, 16), 100, np.uint8), np.full((16, 16), 250, np.uint8)
    for fmt in ("TIFF", "GIF", "PNG"):  # only the first page was inspected before: a defect on the second passed
        with pytest.raises(InspectorError, match="holds several frames or pages; save each as its own image"):
            decode_image(_encoded(fmt, good, bad), "pages")
    rgb = decode_image(_encoded("MPO", np.dstack([good] * 3), np.dstack([bad] * 3)), "camera.jpg")  # a JPEG with a gain map
    assert abs(int(rgb[8, 8, 0]) - 100) <= 2  # its first frame is the picture
    height = np.tile(np.linspace(0.0, 50.0, 64, dtype=np.float32), (16, 1))
    height[3, 5] = np.nan  # a 3D sensor's missing point: it made the whole image one flat value before
    rgb = decode_image(_encoded("TIFF", height), "height")
    assert rgb[3, 5, 0] == 0 and rgb[0, -1, 0] == 255 and len(np.unique(rgb[..., 0])) > 50
    with pytest.raises(InspectorError, match=r"blank: a float TIFF with no pixel value \(all NaN\); check the camera's export"):
        decode_image(_encoded("TIFF", np.full((16, 16), np.nan, np.float32)), "blank")
    with Image.open(io.BytesIO(_encoded("TIFF", good, bad))) as paged:  # the same as a PIL image: page 1 was inspected
        with pytest.raises(InspectorError, match="holds several frames"):
            pil_to_rgb(paged, "paged")
    flat = np.full((100, 200), 1000, np.uint16)
    flat[50:53, 50:53] = 3000  # a 9-pixel defect, under 0.01 % of the pixels: the trimmed range was empty, all black
    assert array_to_rgb(flat)[51, 51, 0] == 255 and array_to_rgb(flat)[0, 0, 0] == 0
    twelve = np.tile(np.linspace(200, 800, 200), (100, 1)).astype(np.uint16)
    twelve[50, 50] = 65535  # one hot pixel squeezed the part into 3 grey levels before
    assert len(np.unique(array_to_rgb(twelve)[..., 0])) >= 190


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns of the damage the test makes
def test_a_truncated_file_says_why(tmp_path):
    data = _encoded("PNG", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    with pytest.raises(InspectorError, match=r"cannot be decoded \(OSError: image file is truncated\)"):
        decode_image(data[: len(data) // 2], "half")
    rng = np.random.default_rng(0)
    pages = [rng.integers(0, 255, (64, 64, 3), np.uint8) for _ in range(3)]
    for fmt in ("GIF", "TIFF", "WEBP", "PNG"):  # struct.error, IndexError or TypeError tracebacks before, depending on the cut
        whole = _encoded(fmt, *pages)
        for cut in range(20, len(whole), max(1, len(whole) // 200)):
            with pytest.raises(InspectorError):
                decode_image(whole[:cut], f"cut.{fmt.lower()}")


def test_preprocess_and_resize_map():
    rgb = np.full((50, 70, 3), 255, np.uint8)
    rgb[:, :35] = 0
    x = preprocess(rgb, (32, 48))
    assert x.shape == (3, 32, 48) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert x[:, :, :20].max() == 0.0 and x[:, :, 28:].min() == 1.0  # left half dark, right half bright
    small = preprocess(rgb[:10, :10], (32, 32))  # upsampling path
    assert small.shape == (3, 32, 32)
    amap = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert resize_map(amap, (4, 4)) is amap
    assert resize_map(amap, (40, 20)).shape == (40, 20)


def test_list_images(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.tif", "x_mask.png", "notes.txt", "d.JPEG"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.bmp").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tif", "d.JPEG"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.jpg", "b.PNG", "c.tif", "d.JPEG", "e.bmp"]


def test_a_tree_deeper_than_pythons_recursion_limit_is_read_and_fast(tmp_path):
    """os.walk recursed once a level on Python 3.10 and 3.11: 1,100 folders deep was a RecursionError traceback (exit 70),
    and realpath() of each folder made 1,500 deep take 35 s."""
    import time

    folders = [tmp_path / "top"]
    for _ in range(1100):  # os.mkdir one at a time: os.makedirs recursed too
        folders[-1].mkdir()
        folders.append(folders[-1] / "a")
    deepest = folders[-2]
    try:
        (tmp_path / "top" / "t.png").write_bytes(b"x")
        (deepest / "d.png").write_bytes(b"x")
        (deepest / "up").symlink_to("../../..")  # a link back up: no endless walk
        started = time.monotonic()
        assert list_images(tmp_path / "top", recursive=True) == [deepest / "d.png", tmp_path / "top" / "t.png"]
        assert time.monotonic() - started < 10
    finally:  # pytest's clean-up (shutil.rmtree) recurses once a level as well
        (deepest / "up").unlink()
        for path in (deepest / "d.png", tmp_path / "top" / "t.png"):
            path.unlink()
        for folder in reversed(folders[:-1]):
            folder.rmdir()


def test_linked_folders_are_read_once_and_links_to_nothing_are_said(tmp_path):
    days, station = tmp_path / "nas" / "monday", tmp_path / "station"
    days.mkdir(parents=True)
    station.mkdir()
    (days / "m.png").write_bytes(b"x")
    (station / "own.png").write_bytes(b"x")
    (station / "monday").symlink_to(days)  # a station's folder linking its days' folders: its images were skipped
    (station / "again").symlink_to(days)
    (days / "up").symlink_to(station)  # a link back up the tree: no endless walk
    (station / "gone.png").symlink_to(tmp_path / "deleted.png")
    (station / "old_day").symlink_to(tmp_path / "unmounted")
    (station / ".#own.png").symlink_to("root@host.1234")  # an editor's lock, not an image
    (station / "notes.txt").symlink_to(tmp_path / "gone.txt")
    scan = scan_images(station, recursive=True)
    assert [p.relative_to(station).as_posix() for p in scan.images] == ["again/m.png", "own.png"]
    assert [p.name for p in scan.broken_links] == ["gone.png", "old_day"]
    note = broken_links_note(scan, station)[0]
    assert note.startswith(f"2 link(s) in {station} lead nowhere") and "deleted.png" in note
    assert broken_links_note(scan_images(days), days) == [] and [p.name for p in list_images(days)] == ["m.png"]


def test_an_image_over_the_pixel_limit_is_refused_from_its_header():
    """A 0.4 MB PNG decoded to 1.2 GB before anything looked at its size."""
    buf = io.BytesIO()
    Image.new("L", (6000, 5000)).save(buf, "PNG")
    data = buf.getvalue()
    assert len(data) < 100_000
    with pytest.raises(InspectorError, match=r"image bomb.png: 6000 x 5000 px is over the 20 million pixels this station takes "
                                             r"\(model.max_image_pixels\)"):
        decode_image(data, "bomb.png", max_pixels=20_000_000)
    assert decode_image(data, "ok.png", max_pixels=30_000_000).shape == (5000, 6000, 3)


def test_a_colour_tiff_of_float_samples_is_read_as_a_grey_one_is():
    """Pillow cannot open one: 'cannot be decoded' though the README reads float images, grey or colour."""
    rgb = np.zeros((16, 24, 3), np.float32)
    rgb[..., 0] = np.linspace(0.0, 4.0, 24, dtype=np.float32)  # red rises left to right, green and blue stay 0
    ok, data = cv2.imencode(".tiff", rgb[..., ::-1])  # OpenCV writes BGR
    assert ok
    out = decode_image(data.tobytes(), "measured.tif")
    assert out.dtype == np.uint8 and out.shape == (16, 24, 3)
    assert out[0, -1, 0] == 255 and out[0, 0, 0] == 0 and out[..., 1:].max() == 0  # its own range, channels in order
    with pytest.raises(InspectorError, match="cannot be decoded"):
        decode_image(b"II*\x00" + bytes(40), "broken.tif")


def test_an_all_nan_tiff_is_named_a_tiff_not_asked_whether_it_is_one(tmp_path):
    """It said "cannot be decoded (ValueError: no pixel has a value (all NaN)); is it a PNG/JPEG/BMP/TIFF?" of a
    TIFF; a colour one raised a bare ValueError (a traceback)."""
    grey = tmp_path / "grey.tif"
    grey.write_bytes(_encoded("TIFF", np.full((16, 16), np.nan, np.float32)))
    ok, colour = cv2.imencode(".tiff", np.full((16, 16, 3), np.nan, np.float32), [cv2.IMWRITE_TIFF_COMPRESSION, 1])  # OpenCV < 4.13 zeroes NaN otherwise
    assert ok
    (tmp_path / "colour.tif").write_bytes(colour.tobytes())
    for path in (grey, tmp_path / "colour.tif"):
        with pytest.raises(InspectorError) as exc:
            read_image(path)
        assert str(exc.value) == f"image {path}: a float TIFF with no pixel value (all NaN); check the camera's export"


def test_the_format_hint_is_given_only_where_the_format_is_not_recognised(tmp_path):
    (tmp_path / "text.png").write_bytes(b"hello, not an image")
    with pytest.raises(InspectorError, match=r"text.png: cannot be decoded \(UnidentifiedImageError\); is it a " + re.escape(FORMATS) + r"\?$"):
        read_image(tmp_path / "text.png")
    data = _encoded("PNG", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InspectorError, match=r"half.png: cannot be decoded \(OSError: image file is truncated\); the PNG data is "
                                             r"damaged or cut short") as exc:
        read_image(tmp_path / "half.png")
    assert "is it a" not in str(exc.value)


@pytest.mark.parametrize(("shape", "side"), [((40000, 2), "it is 2 px wide;"), ((3, 500), "it is 3 px high;"),
                                              ((1, 1), "it is 1 px wide and 1 px high;")])
def test_a_too_small_image_names_the_side_that_is(tmp_path, shape, side):
    """A 2 x 40000 px image was "2x40000 px is too small (needs at least 8x8)", as if it were small all round."""
    path = tmp_path / "line.png"
    Image.fromarray(np.zeros(shape, np.uint8)).save(path)
    w, h = shape[1], shape[0]
    for read in (read_image, read_image_header):
        with pytest.raises(InspectorError) as exc:
            read(path)
        assert str(exc.value) == (f"image {path}: {w}x{h} px (width x height) is too small: {side} needs at least 8 px each side")


def test_the_header_check_refuses_what_reading_refuses_without_decoding(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(good)
    assert read_image_header(good) == good.read_bytes()
    (tmp_path / "text.png").write_bytes(b"hello")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, why in (("text.png", "cannot be decoded"), ("empty.png", "the file is empty"), ("nope.png", "no such file")):
        with pytest.raises(InspectorError, match=f"{name}: {why}"):
            read_image_header(tmp_path / name)
    (tmp_path / "pages.tif").write_bytes(_encoded("TIFF", np.zeros((16, 16), np.uint8), np.ones((16, 16), np.uint8)))
    with pytest.raises(InspectorError, match="pages.tif: holds several frames"):
        read_image_header(tmp_path / "pages.tif")
    nan = tmp_path / "nan.tif"  # what only decoding finds passes the header check
    nan.write_bytes(_encoded("TIFF", np.full((16, 16), np.nan, np.float32)))
    assert read_image_header(nan) == nan.read_bytes()


def test_a_gif_in_a_folder_is_read_as_when_it_is_named(tmp_path):
    """A .gif named directly was inspected, but left out of a folder scan (6 of 7 images inspected); an animated
    one is refused either way (README: PNG/JPEG/BMP/TIFF, an animated GIF/WebP refused)."""
    still = tmp_path / "still.gif"
    Image.fromarray(quadrants()).save(still)
    (tmp_path / "a.png").write_bytes(_encoded("PNG", quadrants()))
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "still.gif"]
    assert read_image(still).shape == (40, 24, 3)
    (tmp_path / "moving.gif").write_bytes(_encoded("GIF", np.zeros((16, 16), np.uint8), np.full((16, 16), 255, np.uint8)))
    assert "moving.gif" in [p.name for p in list_images(tmp_path)]
    with pytest.raises(InspectorError, match="moving.gif: holds several frames or pages"):
        read_image(tmp_path / "moving.gif")


def test_a_flat_high_bit_depth_frame_keeps_its_level():
    """A flat 16-bit frame has no range to stretch over, and every one came out black: a saturated sensor's frame was
    warned about as 'dark'. It keeps its level within its type's range now."""
    from model.images import array_to_rgb

    assert array_to_rgb(np.full((20, 30), 65535, np.uint16))[0, 0, 0] == 255
    assert array_to_rgb(np.full((20, 30), 0, np.uint16))[0, 0, 0] == 0
    assert array_to_rgb(np.full((20, 30), 32768, np.uint16))[0, 0, 0] == 127
    from model.images import _stretch

    assert _stretch(np.full((20, 30), 0.5, np.float32))[0, 0] == 127  # a float file's: within 0-1
    assert _stretch(np.full((20, 30), 37.5, np.float32))[0, 0] == 0  # a height map's level is no brightness
