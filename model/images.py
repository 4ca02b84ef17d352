"""Reading images from disk or bytes, and the one preprocessing used in fitting and serving."""

from __future__ import annotations

import errno
import io
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError, features

from model.errors import InspectorError, what_is_wrong_with, write_fix
from model.framing import Roi, crop
from model.pillow_policy import load_whole  # and its pixel limit and warnings

# AVIF (cameras' and phones' newer format) where the running Pillow reads it: its wheels do from 11.3 (11.2.1 only when
# built from source with libavif); decided here, from the Pillow installed, as pyproject allows older ones
AVIF_READ = "avif" in features.modules and features.check_module("avif")
AVIF_PILLOW = "11.3"  # the first Pillow whose wheels read AVIF (its release notes: "AVIF support in wheels")
# a still GIF, WebP or AVIF is read as any image, in a folder as when named (an animated one is refused: _one_page);
# JPEG's other names, Netpbm (8/16-bit grey PGM, 1-bit PBM, 8/16-bit PPM, raw and plain) and JPEG 2000 read as
# faithfully: a folder of them was skipped unsaid
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif",
                  ".jfif", ".jpe", ".pgm", ".ppm", ".pnm", ".pbm", ".jp2", ".j2k") + ((".avif", ".avifs") if AVIF_READ else ())
# image files no decoder here reads as what they are (Pillow reads a camera raw as its TIFF thumbnail): refused when
# named, said of when a folder's are left out (scan_images), never skipped unsaid
UNREAD_SUFFIXES = {".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".exr": "OpenEXR",
                   **dict.fromkeys((".dng", ".raw", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"), "camera raw"),
                   **({} if AVIF_READ else dict.fromkeys((".avif", ".avifs"), "AVIF"))}
DNG_VERSION = 50706  # the TIFF tag that makes a TIFF a DNG
UNREAD_FIX = "convert it to PNG or TIFF (16-bit keeps a deeper image's levels)"
# AVIF not read by this Pillow, though another would: an older one is upgraded; a newer one built without libavif (a
# distribution's, or one built from source) is replaced by PyPI's wheel, as "install 11.3 or later" told its user nothing
_OLD_PILLOW = tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in Image.__version__.split(".")[:2]) < (11, 3)
AVIF_GET = (f"install Pillow {AVIF_PILLOW} or later (pip install -U pillow)" if _OLD_PILLOW else
            f"install PyPI's wheel of Pillow (pip install --force-reinstall pillow; this Pillow {Image.__version__} was built without AVIF)")
AVIF_FIX = f"{AVIF_GET}, which reads it, or convert it to PNG or TIFF"
# Pillow's modes of a 16-bit or float grey image, stretched to 8 bits over its own range (its RGB conversion clips at 255)
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# Pillow's formats whose further frames are further images (pages, animation; an AVIF image sequence)
PAGED_FORMATS = ("TIFF", "GIF", "WEBP", "PNG", "AVIF")


class NoPixelValue(ValueError):
    """A float image whose every pixel is NaN: nothing to inspect (the format was read; the camera wrote no value)."""


def _no_value(name: str, fmt: str | None) -> InspectorError:
    what = f"a float {fmt}" if fmt else "a float image"
    return InspectorError(f"image {name}: {what} with no pixel value (all NaN); check the camera's export")


def _stretch(arr: np.ndarray) -> np.ndarray:
    """A high-bit-depth image spread over 0-255 by its own range, as uint8. The range leaves out the most extreme
    0.01 % of pixels at each end, so that a hot or dead sensor pixel does not squeeze the part into a few grey levels;
    NaN (a height map's missing points) is drawn black. A flat one has no range: it keeps its level within its type's
    (a float's within 0-1, else black), as a saturated or unlit sensor's frame all 0 read "dark" to the quality check."""
    full = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    values = arr[finite] if not finite.all() else arr.ravel()
    if values.size == 0:
        raise NoPixelValue("no pixel has a value (all NaN)")
    k = values.size // 10_000
    lo, hi = (float(values.min()), float(values.max())) if k == 0 else np.partition(values, (k, values.size - 1 - k))[[k, -1 - k]]
    if hi <= lo:  # a flat part whose only detail is in those few pixels (a small defect): keep it
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        out = np.full_like(arr, lo / full * 255.0 if 0.0 <= lo <= full else 0.0)
    else:
        out = np.clip((arr - lo) / (hi - lo) * 255.0, 0.0, 255.0)
    return np.where(finite, out, 0.0).astype(np.uint8)


def array_to_rgb(arr: np.ndarray, name: str = "array") -> np.ndarray:
    """An image array read as its file would be: uint8, or uint16 stretched like 16-bit files; grayscale [H, W] or
    [H, W, 1] replicated, an alpha channel dropped -> RGB uint8 [H, W, 3]."""
    shape = arr.shape
    if arr.dtype not in (np.uint8, np.uint16):
        raise InspectorError(f"image {name}: dtype {arr.dtype}; give uint8 or uint16 pixels (scale floats to 0-255 first)")
    if arr.ndim == 3 and arr.shape[2] in (1, 4):
        arr = arr[..., 0] if arr.shape[2] == 1 else arr[..., :3]  # before the stretch: alpha is no brightness
    if arr.dtype == np.uint16:
        arr = _stretch(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 8:
        # torch's and a batch's layouts, the usual two ways to get here
        hint = ("; channels first? give a.transpose(1, 2, 0)" if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4)
                else "; a batch of one? give a[0]" if len(shape) == 4 and shape[0] == 1 else "")
        raise InspectorError(f"image {name}: shape {shape}; give RGB [H, W, 3], RGBA or grayscale [H, W] of at least 8x8{hint}")
    return np.ascontiguousarray(arr)


# EXIF orientation -> the turn that shows the image upright, as ImageOps.exif_transpose makes it
_UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
            6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1)}
SIDEWAYS = (5, 6, 7, 8)  # the orientations among them that swap width and height
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 where none). Where one other tag is damaged, Pillow before 13 gives no tags at all,
    and a photo was inspected sideways: the tag is then read from the first IFD of the raw EXIF itself."""
    found = img.getexif().get(ExifTags.Base.Orientation)
    if found is None:
        found = _raw_orientation(img.info.get("exif"))
    return found if found in range(1, 9) else 1


def _raw_orientation(raw: object) -> int | None:
    if not isinstance(raw, bytes):
        return None
    raw = raw.removeprefix(b"Exif\x00\x00")
    order = {b"II": "<", b"MM": ">"}.get(raw[:2])
    if order is None:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", raw, 4)
        (count,) = struct.unpack_from(order + "H", raw, ifd)
        for at in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", raw, at)
            if tag == ExifTags.Base.Orientation and kind == 3:  # SHORT, its value in the entry's first two bytes
                return struct.unpack_from(order + "H", raw, at + 8)[0]
    except struct.error:  # cut short: as if it had none
        return None
    return None


def upright(img: Image.Image) -> Image.Image:
    """The image turned upright by its EXIF orientation, as ImageOps.exif_transpose turns it (reading the orientation
    as `orientation` does)."""
    method = _TRANSPOSE.get(orientation(img))
    return img if method is None else img.transpose(method)


def upright_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an image as read (upright by its EXIF orientation), from its header alone; None where it
    cannot be opened (reading it names why)."""
    try:
        with Image.open(path) as img:
            size, turn = img.size, orientation(img)
    except Exception:  # anything Pillow raises on a damaged file
        return None
    return (size[1], size[0]) if turn in SIDEWAYS else size


def high_bit_depth(path: str | Path) -> bool:
    """A 16-bit or float image file, which read_image stretches to 8 bits over its own range; False for one Pillow
    cannot open (reading it says what is wrong)."""
    try:
        with Image.open(path) as img:
            return img.mode in DEEP_MODES or _sixteen_bit_colour(img)
    except Exception:  # anything Pillow raises on a damaged file
        return False


def _sixteen_bit_colour(img: Image.Image) -> bool:
    """Colour with 16 bits per channel, which Pillow decodes to its top 8 bits (a 12-bit camera's frame reads
    nearly black); asked before decoding, while the tiles still name their raw mode."""
    # (codec, extents, offset, args): a named tuple from Pillow 11, a plain one before; an image made in memory
    # (Image.fromarray, .convert()) has no tiles, and from Pillow 13 no `tile` attribute at all (AttributeError)
    args = [t[3] for t in getattr(img, "tile", None) or ()]
    raw = [a[0] if isinstance(a, tuple) and a else a for a in args]
    # a PPM's is told by its maxval over 255 (RGB;16 is no raw mode of it): Pillow scaled it to 8 bits, a 12-bit camera's
    # frame in a 16-bit PPM read almost black
    deep_ppm = img.format == "PPM" and any(isinstance(a, tuple) and len(a) > 1 and isinstance(a[1], int) and a[1] > 255 for a in args)
    return img.mode in ("RGB", "RGBA") and (deep_ppm or any(";16" in str(r) for r in raw))


def _sixteen_bit_rgb(data: bytes, img: Image.Image) -> np.ndarray | None:
    """A 16-bit colour PNG/TIFF decoded whole by OpenCV, upright, alpha dropped, stretched as 16-bit grey is."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # IMREAD_UNCHANGED ignores EXIF orientation
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return None
    arr = _UPRIGHT.get(orientation(img), lambda a: a)(arr[..., 2::-1])
    return _stretch(arr)


def _to_rgb(img: Image.Image, name: str, sixteen_bit_data: bytes | None = None) -> np.ndarray:
    arr = _sixteen_bit_rgb(sixteen_bit_data, img) if sixteen_bit_data else None
    if arr is None:
        img = upright(img)
        if img.mode == "La":  # grey with premultiplied alpha: Pillow converts it to nothing else ("from La to L not supported")
            img = img.convert("LA")
        if img.mode in DEEP_MODES:
            arr = np.repeat(_stretch(np.asarray(img))[..., None], 3, axis=2)
        else:
            arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
    return _checked(arr, name)


MIN_SIDE = 8  # px: the least width and height an image may have


def _big_enough(width: int, height: int, name: str) -> None:
    """Refuse an image under MIN_SIDE px wide or high, naming the side (a 2 x 40000 px line was "too small (needs
    at least 8x8)", which read as if it were small all round)."""
    short = [f"{n} px {side}" for n, side in ((width, "wide"), (height, "high")) if n < MIN_SIDE]
    if short:
        raise InspectorError(f"image {name}: {width}x{height} px (width x height) is too small: it is {' and '.join(short)}; "
                             f"needs at least {MIN_SIDE} px each side")


def _checked(arr: np.ndarray, name: str) -> np.ndarray:
    _big_enough(arr.shape[1] if arr.ndim > 1 else 0, arr.shape[0], name)
    if arr.ndim != 3:
        raise InspectorError(f"image {name}: shape {arr.shape}; give RGB or grayscale pixels")
    return np.ascontiguousarray(arr)


TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def _first_directory(data: bytes) -> tuple[str, int, int] | None:
    """(byte order, offset, entry count) of a classic TIFF's first directory (the page a decoder reads), None for another
    format; struct.error where the file ends before its count."""
    if not data.startswith(TIFF_MAGIC):
        return None
    order = "<" if data.startswith(b"II") else ">"
    (at,) = struct.unpack_from(order + "I", data, 4)
    (n,) = struct.unpack_from(order + "H", data, at)
    return order, at, n


def tiff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a classic TIFF's first directory, None for anything else."""
    size: dict[int, int] = {}
    try:
        if (first := _first_directory(data)) is None:
            return None
        order, at, n = first
        for i in range(n):
            tag, kind, count = struct.unpack_from(order + "HHI", data, at + 2 + 12 * i)
            if tag in (256, 257) and count == 1 and kind in (3, 4):  # ImageWidth, ImageLength: SHORT or LONG
                size[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), data, at + 10 + 12 * i)[0]
    except struct.error:  # cut short: decoding it says so
        return None
    return (size[256], size[257]) if len(size) == 2 else None


def _tiff_cut_short(data: bytes) -> bool:
    """A classic TIFF whose first directory (where most writers put it: after the pixels) does not lie wholly within
    `data`: a file cut short in a copy or a transfer, which Pillow does not recognise at all."""
    try:
        first = _first_directory(data)
    except struct.error:
        return True
    return first is not None and first[1] + 2 + 12 * first[2] + 4 > len(data)


def _float_colour_tiff(data: bytes, name: str, max_pixels: int | None) -> np.ndarray | None:
    """A colour TIFF of float samples (a measuring camera's, or a processed image), which Pillow cannot open, read by
    OpenCV and stretched as a float grey one is -> RGB uint8; None for anything else. Its size is checked from its
    header first: 0.3 MB of deflated zeros took 1.4 GB to decode, and only then was refused."""
    if not data.startswith(TIFF_MAGIC):
        return None
    if max_pixels is not None and (size := tiff_size(data)) is not None:
        _within(*size, max_pixels, name)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype not in (np.float32, np.float64):
        return None
    return _stretch(arr[..., 2::-1])


def _one_page(img: Image.Image, name: str) -> None:
    """Refuse an image of several pages: only the first would be inspected, and a defect on another passed
    unseen. A camera's MPO JPEG (an HDR gain map, a preview) is one picture with extras: its first frame is it."""
    if img.format not in PAGED_FORMATS:
        return
    try:  # is there a second page? (n_frames read all 20,000 pages of a 3.8 MB TIFF first: 2.4 s)
        img.seek(1)
    except EOFError:
        return
    img.seek(0)
    raise InspectorError(f"image {name}: holds several frames or pages; save each as its own image")


def _encoded(img: Image.Image) -> bytes | None:
    """The bytes of the file an opened, not yet loaded, Pillow image reads (its position kept), or None: Pillow
    decodes 16-bit colour to its top 8 bits, and only the file holds the rest."""
    fp = getattr(img, "fp", None)
    try:
        at = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(at)
    except Exception:  # no file (an image made in memory), or one that cannot seek: Pillow's 8 bits, as before
        return None
    return data if isinstance(data, bytes) else None


def pil_to_rgb(img: Image.Image, name: str = "PIL image") -> np.ndarray:
    """A Pillow image as a file of it is read: upright by its EXIF orientation, 16-bit grey stretched -> RGB uint8."""
    _one_page(img, name)
    if _sixteen_bit_colour(img) and (data := _encoded(img)) is not None:
        try:  # read as its file is: Pillow keeps 8 of the 16 bits (a 12-bit camera's frame came out in 8 grey levels)
            arr = _decode(data, name, FILE_HINT)
        except InspectorError:  # the stream holds more than this image: Pillow's 8 bits, as before
            arr = None
        if arr is not None and sorted(arr.shape[:2]) == sorted(img.size):
            return arr
    try:
        return _to_rgb(img, name)
    except NoPixelValue:
        raise _no_value(name, img.format) from None
    except (OSError, ValueError) as exc:
        if str(exc) == "Operation on closed image":  # Image.close() frees the pixels too, loaded or not
            raise InspectorError(f"image {name}: the PIL image was closed (Image.close()) before it was given; give it "
                                 "before closing it, or give the path") from None
        if getattr(getattr(img, "fp", None), "closed", False):  # Image.open(f) in a `with open(...) as f` block that ended
            raise InspectorError(f"image {name}: the file it was opened from was closed before its pixels were read; call "
                                 ".load() while the file is open, or give the path") from None
        raise InspectorError(f"image {name}: cannot be converted ({exc.__class__.__name__}: {' '.join(str(exc).split())[:100]})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 [H, W, 3], honouring EXIF orientation; grayscale is replicated."""
    return read_image_bytes(path)[0]


FORMATS = "PNG/JPEG/BMP/TIFF/WebP/GIF/PGM/PPM/JPEG 2000" + ("/AVIF" if AVIF_READ else "")  # the formats read, as errors name them
FILE_HINT = f"is it a {FORMATS}?"  # ends the error line of a file whose format is not recognised


def read_image_bytes(path: str | Path) -> tuple[np.ndarray, bytes]:
    """read_image's RGB and the file's bytes as decoded, read once: a file replaced meanwhile cannot mismatch its hash."""
    data = _file_bytes(path)
    return _decode(data, str(path), FILE_HINT), data


def read_image_header(path: str | Path) -> bytes:
    """The file's bytes, once what its header tells is checked as read_image checks it (the same one-line
    InspectorError: not an image format, empty, under 8 px a side, several pages, over the pixel limit), without
    decoding its pixels: a damaged body is found only when it is read. For checking many files cheaply."""
    data = _file_bytes(path)
    _decode(data, str(path), FILE_HINT, header_only=True)
    return data


LOOK_FIRST = 1 << 26  # bytes: a file over this is read whole only once its header shows an image format


def _looks_like_an_image(path: Path) -> None:
    """Refuse a big file whose header is no image format's, unread: 20 GB named .png (a disk image, a sparse file) was
    read whole first, a MemoryError traceback (exit 70), or 25 s and 4 GB of memory for 3 GB."""
    with path.open("rb") as f:
        if f.read(4) in TIFF_MAGIC:  # perhaps a colour TIFF of float samples, which Pillow does not open (_float_colour_tiff)
            return
    try:
        with Image.open(path):  # reads the header alone
            pass
    except UnidentifiedImageError:
        raise InspectorError(f"image {path}: cannot be decoded ({path.stat().st_size / 1e9:.1f} GB, and no image format's "
                             f"header); {FILE_HINT}") from None


def _file_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        if what := what_is_wrong_with(path, "image file"):
            raise InspectorError(f"image {path}: {what}" + ("" if what == "no such file" else "; give an image file"))
        if kind := UNREAD_SUFFIXES.get(path.suffix.lower()):  # a DNG was inspected as its thumbnail, HEIC refused as "a PNG?"
            raise InspectorError(f"image {path}: {unread_file(kind)}; {AVIF_FIX if kind == 'AVIF' else UNREAD_FIX}")
        if path.stat().st_size > LOOK_FIRST:
            _looks_like_an_image(path)
        data = path.read_bytes()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # is_dir() raised it: a traceback, the path (base64 data?) printed whole
            text = str(path)
            raise InspectorError(f"image {text[:60]}... ({len(text)} characters): the path is too long for a file name; "
                                 f"{write_fix(exc)}") from None
        raise InspectorError(f"image {path}: cannot be read ({exc.strerror or exc}); check the file's permissions") from None
    if not data:
        raise InspectorError(f"image {path}: the file is empty")
    return data


def decode_image(data: bytes, name: str = "payload", hint: str = "send JPEG or PNG bytes", max_pixels: int | None = None) -> np.ndarray:
    """Decode image bytes (JPEG/PNG/...) as RGB uint8 [H, W, 3]; `hint` ends the error line of bytes that are none;
    an image of more than `max_pixels` is refused from its header, before it is decoded."""
    if not data:
        raise InspectorError(f"image {name}: empty payload (0 bytes); {hint}")
    return _decode(data, name, hint, max_pixels)


def _sniffed(data: bytes) -> str | None:
    """The format its first bytes name, where Pillow failed before it named the format (a reader's error, or no reader
    taking it at all: UnidentifiedImageError): a JPEG, PNG, GIF or BMP cut short in its header (a WebP almost anywhere)
    was asked "is it a PNG/JPEG/...?", or told to send JPEG or PNG bytes. None for bytes no format's magic starts."""
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):  # an AVIF image or image sequence (its ISO box's brand)
        return "AVIF"
    if data.startswith(b"BM") and len(data) >= 10 and data[6:10] == b"\0\0\0\0":  # a BMP's reserved bytes: "BM..." text is none
        return "BMP"
    magic = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF", b"GIF89a": "GIF"}
    return next((fmt for m, fmt in magic.items() if data.startswith(m)), None)


def _decode(data: bytes, name: str, hint: str, max_pixels: int | None = None, header_only: bool = False) -> np.ndarray | None:
    """Encoded image bytes, fully and strictly decoded -> RGB uint8; one line naming `name` if they cannot be.
    `hint` ends the line only where the format is not recognised; header_only: only the header is checked (None)."""
    fmt = None  # Pillow's name of the format, once recognised
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            _within(img.width, img.height, max_pixels, name)  # from the header: a 0.4 MB PNG decoded to 1.2 GB
            if fmt == "TIFF" and DNG_VERSION in img.tag_v2:  # sent as bytes, or named .tif: its first page is a thumbnail
                raise InspectorError(f"image {name}: a camera raw (DNG) file, which is not read; {UNREAD_FIX}")
            _one_page(img, name)
            if header_only:
                _big_enough(*_header_size(img), name)
                return None
            # Pillow reads a 16-bit colour JPEG 2000 as its top 8 bits and names no depth: OpenCV's decoding tells
            deep = _sixteen_bit_colour(img) or (img.format == "JPEG2000" and img.mode in ("RGB", "RGBA"))
            load_whole(img)  # also for a 16-bit colour file: a truncated one is refused the same way
            return _to_rgb(img, name, data if deep else None)
    except Image.DecompressionBombError:
        raise InspectorError(f"image {name}: over {2 * Image.MAX_IMAGE_PIXELS // 1_000_000} million pixels, the most "
                             "it decodes; crop or downscale it") from None
    except InspectorError:
        raise
    except NoPixelValue:
        raise _no_value(name, fmt) from None
    except UnidentifiedImageError:
        if _tiff_cut_short(data):  # not FILE_HINT (it is one), nor OpenCV's errors printed raw first
            raise InspectorError(f"image {name}: cannot be decoded (its TIFF directory lies beyond the end of its {len(data)} "
                                 "bytes); the TIFF data is damaged or cut short; save or send it again") from None
        if header_only and data.startswith(TIFF_MAGIC):
            return None  # perhaps a colour TIFF of float samples, which only decoding tells (_float_colour_tiff)
        try:
            arr = _float_colour_tiff(data, name, max_pixels)
        except NoPixelValue:
            raise _no_value(name, "TIFF") from None
        if arr is None:  # where most header cuts land: a PNG cut in its IHDR, a GIF in its colour table, a JPEG in its markers
            sniffed = _sniffed(data)
            if sniffed == "AVIF" and not AVIF_READ:  # a payload, or a file not named .avif: "is it a PNG/...?" misled
                raise InspectorError(f"image {name}: an AVIF image, which is not read; {AVIF_FIX}") from None
            fix = f"the {sniffed} data is damaged or cut short; save or send it again" if sniffed else hint
            raise InspectorError(f"image {name}: cannot be decoded (UnidentifiedImageError); {fix}") from None
        _within(arr.shape[1], arr.shape[0], max_pixels, name)
        return _checked(arr, name)
    except Exception as exc:  # a damaged file makes Pillow's decoders raise almost anything (struct.error, IndexError, ...)
        why = " ".join(str(exc).split())[:100]  # Pillow's reason ("image file is truncated"), on one line
        # a format recognised but not decoded is a damaged file of it: asking which format it is would mislead
        fmt = fmt or _sniffed(data)
        fix = f"the {fmt} data is damaged or cut short; save or send it again" if fmt else hint
        raise InspectorError(f"image {name}: cannot be decoded ({exc.__class__.__name__}{': ' + why if why else ''}); {fix}") from None


def _header_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) upright by the EXIF orientation, from the header: a PNG whose EXIF comes after its pixels
    would be decoded whole to find it, and is taken as stored (decoding it names the sides upright)."""
    if img.format == "PNG" and "exif" not in img.info:
        return img.size
    return (img.size[1], img.size[0]) if orientation(img) in SIDEWAYS else img.size


def _within(width: int, height: int, max_pixels: int | None, name: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise InspectorError(f"image {name}: {width} x {height} px is over the {max_pixels / 1e6:g} million pixels "
                             "this station takes (model.max_image_pixels); send a smaller image or raise the limit")


def read_mask(path: str | Path, shape: tuple[int, int] | None) -> np.ndarray:
    """Read a ground-truth mask as bool [H, W], checking it matches its image (of `shape`, unless None). Defect: above mid-grey in a 0/255
    mask (a JPEG's compression noise around 0 and 255 stays on its side), non-zero in a 0/1 or label-index one."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            load_whole(img)
            grey = np.asarray(upright(img).convert("L"))
            mask = grey > (127 if grey.max() > 127 else 0)
    except InspectorError:
        raise
    except Exception as exc:  # a damaged file makes Pillow's decoders raise almost anything (struct.error, IndexError, ...)
        raise InspectorError(f"mask {path}: cannot be decoded ({exc.__class__.__name__})") from None
    if shape is not None and mask.shape != shape:
        raise InspectorError(f"mask {path}: {mask.shape[1]}x{mask.shape[0]} px but its image is {shape[1]}x{shape[0]}; masks must match their image")
    return mask


def preprocess(rgb: np.ndarray, size: tuple[int, int], box: Roi | None = None, name: str = "array") -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [3, h, w] in [0, 1] at the model's input size (h, w), of the region `box` (the
    model's region of interest in this image, model.framing) when given."""
    rgb = crop(rgb, box, name)
    h, w = size
    interp = cv2.INTER_AREA if rgb.shape[0] > h and rgb.shape[1] > w else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (w, h), interpolation=interp)
    return np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def resize_map(amap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an anomaly map [h, w] back to an image's (H, W)."""
    if amap.shape == shape:
        return amap
    return cv2.resize(amap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def is_mask_name(path: Path) -> bool:
    """`<id>_mask.png`: a ground-truth mask (MVTec AD), beside its image in a labels folder."""
    return path.stem.lower().endswith("_mask")


# any image read is a mask read (read_mask, checked on each): `000_mask.pbm` (1-bit, a natural mask) or `.jpeg` was no
# mask of 000.png, and its image was taken as unmasked, unsaid; the first ones are looked for first
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg") + tuple(s for s in IMAGE_SUFFIXES if s not in (".png", ".bmp", ".tif", ".tiff", ".jpg"))


def files_by_lower_name(folder: Path) -> dict[str, Path]:
    """A folder's files by lower-case name, to find a mask or box file whatever its case: `000_mask.PNG` or `001.XML`
    (a Windows tool's) beside 000.png was dropped unsaid when only the lower-case name was looked for."""
    return {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_file()}


def named_like(files: dict[str, Path], image: Path, stem_suffix: str, suffixes: tuple[str, ...]) -> Path | None:
    """The first `<image stem><stem_suffix><suffix>` among `files` (files_by_lower_name), in any case."""
    for suffix in suffixes:
        if (found := files.get(f"{image.stem}{stem_suffix}{suffix}".lower())) is not None:
            return found
    return None


@dataclass
class Scan:
    """A folder's image files, and its symbolic links that lead nowhere (left out, to be said)."""

    images: list[Path] = field(default_factory=list)
    broken_links: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)  # images in hidden or system folders (left out, to be said)
    unread: list[Path] = field(default_factory=list)  # image files of UNREAD_SUFFIXES (left out, to be said)
    # folders below it that cannot be listed, with the line saying so (scan_images' skip_unreadable; else they stop it)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def _unreadable_text(exc: OSError) -> str:
    return (f"folder {exc.filename}: cannot be read ({exc.strerror}); give this user read access to it, or move it out of "
            "the folder given")


def _unreadable_folder(exc: OSError) -> None:
    """os.walk skips a folder it cannot list, unsaid: a fit or an evaluation then ran on part of the data."""
    raise InspectorError(_unreadable_text(exc))


def walk_folders(folder: str | Path, unreadable: list[tuple[Path, str]] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk top-down, sorted, following linked folders (a station's folder often links its days' folders), each
    real folder once, so a link back up the tree is no loop. A folder below `folder` that cannot be listed stops it
    (InspectorError), or goes to `unreadable` where one is given (its path, and the line saying so); `folder` itself
    always stops it."""
    def onerror(exc: OSError) -> None:
        below = exc.filename and os.path.abspath(exc.filename) != os.path.abspath(folder)
        # a hidden folder's images are not read (scan_images): another user's .Trash-1000/ (mode 700 on a shared stick) stopped a fit
        if below and hidden_folder(os.path.basename(exc.filename)):
            return
        if below and unreadable is not None:
            unreadable.append((Path(exc.filename), _unreadable_text(exc)))
            return
        _unreadable_folder(exc)

    seen = set()
    for here, subs, files in _walk_down(folder, onerror):
        try:  # the folder itself, not its realpath(): that took O(depth) a level, 35 s in a tree 1,500 deep
            real = os.stat(here)[1:3]  # inode, device
        except OSError:
            real = os.path.realpath(here)
        if real in seen:
            subs.clear()
            continue
        seen.add(real)
        subs.sort()  # a folder reached twice (itself and by a link) is read by the path met first
        yield here, subs, files


def _walk_down(top: str | Path, onerror: Callable[[OSError], None]) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk(top, followlinks=True, onerror=onerror), top-down (its caller may edit `subs`), without recursion: Python
    3.10 and 3.11's recursed once a level, and a tree some 1,000 folders deep was a RecursionError traceback."""
    stack = [os.fspath(top)]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = list(it)
        except OSError as exc:
            onerror(exc)
            continue
        subs, files = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # a link to a folder counts as one, as os.walk's followlinks
            except OSError:
                is_dir = False
            (subs if is_dir else files).append(entry.name)
        yield here, subs, files
        stack.extend(os.path.join(here, name) for name in reversed(subs))


def _apple_double(path: Path) -> bool:
    """macOS's metadata file `._<name>` beside each file copied to a USB stick or network share: no image, though
    named like one (a fit refused every one of them as undecodable)."""
    if not path.name.startswith("._"):
        return False
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x00\x05\x16\x07"
    except OSError:
        return False


# Folders no one files images in on purpose: a desktop's or USB stick's trash (.Trash-1000/, .Trashes/), a notebook's
# copies (.ipynb_checkpoints/), a NAS's thumbnails of every image (Synology's @eaDir/), a macOS zip's metadata (__MACOSX/)
SYSTEM_FOLDERS = frozenset({"@eaDir", "__MACOSX"})


def hidden_folder(name: str) -> bool:
    """A folder not read for images: hidden (a leading dot), or one of SYSTEM_FOLDERS."""
    return name.startswith(".") or name in SYSTEM_FOLDERS


def scan_images(folder: str | Path, recursive: bool = False, masks: bool = False, skip_unreadable: bool = False) -> Scan:
    """Image files in a folder (sorted; by suffix, case-insensitive), masks (is_mask_name) only with `masks`;
    recursively as walk_folders reads it. Those in hidden or system folders below it go to `hidden`: a deleted defect in a
    stick's .Trash-1000/ was fitted as a good part, and a NAS's thumbnails as more. A file named with a leading dot is
    read (`._<name>` that is an image): only folders are hidden. Image files not read (UNREAD_SUFFIXES) go to `unread`;
    with `skip_unreadable`, a folder below it that cannot be listed goes to `unreadable` rather than stopping the scan."""
    scan = Scan()
    for here, _, files in walk_folders(folder, scan.unreadable if skip_unreadable else None):
        below_hidden = any(hidden_folder(part) for part in Path(here).relative_to(folder).parts)
        try:
            for name in files:
                p = Path(here) / name
                if p.is_symlink() and not p.exists():  # an image's, or a folder's (no suffix); not an editor's lock file
                    if not name.startswith(".") and not below_hidden and (p.suffix.lower() in IMAGE_SUFFIXES or not p.suffix):
                        scan.broken_links.append(p)
                elif p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and (masks or not is_mask_name(p)) and not _apple_double(p):
                    (scan.hidden if below_hidden else scan.images).append(p)
                elif p.suffix.lower() in UNREAD_SUFFIXES and not below_hidden and p.is_file() and not _apple_double(p):
                    scan.unread.append(p)
        except PermissionError as exc:  # a folder listed but not entered (mode r--): no file in it can be looked at
            if below_hidden:  # its images are not read anyway, as walk_folders passes one it cannot list
                continue
            denied = OSError(exc.errno, exc.strerror, here)
            if not (skip_unreadable and os.path.abspath(here) != os.path.abspath(folder)):
                _unreadable_folder(denied)  # as one that cannot be listed, not a traceback or its first file's name
            scan.unreadable.append((Path(here), _unreadable_text(denied)))
        if not recursive:
            break
    scan.images.sort()
    scan.broken_links.sort()
    scan.hidden.sort()
    scan.unread.sort()
    return scan


def list_images(folder: str | Path, recursive: bool = False, masks: bool = False) -> list[Path]:
    """scan_images' image files."""
    return scan_images(folder, recursive, masks).images


def only_dead_links(scan: Scan) -> str | None:
    """What to say of a folder with no images but links leading nowhere ("no images found" sent its user looking for
    files that were there, as links to a share gone), image files not read, or hidden images alone (scan_images); None
    where it has images or none of those."""
    if scan.images:
        return None
    if scan.unread and not scan.broken_links:  # "no images found" of a folder of a phone's HEIC photos
        return (f"its {len(scan.unread)} image file(s) are {_unread_kinds(scan)} (e.g. {scan.unread[0]}), which are not read; "
                f"{_avif_fix(scan)}convert them to PNG or TIFF")
    if scan.hidden and not scan.broken_links:
        return (f"its {len(scan.hidden)} image(s) are in hidden or system folders (e.g. {scan.hidden[0]}; named with a leading "
                "dot, as .Trash-1000/, or @eaDir/, __MACOSX/), which are not read; move them out of there")
    if not scan.broken_links:
        return None
    first = scan.broken_links[0]
    return f"its {len(scan.broken_links)} image link(s) lead nowhere (e.g. {first} -> {os.readlink(first)}); mount or copy what they point to"


def broken_links_note(scan: Scan, folder: str | Path) -> list[str]:
    """The notes (without a "note: " prefix) that say what was left out of a folder's images, if anything: links that
    lead nowhere, hidden images, and image files not read (scan_images)."""
    notes = []
    if scan.broken_links:
        n, first = len(scan.broken_links), scan.broken_links[0]
        notes.append(f"{n} link(s) in {folder} lead nowhere and were left out (e.g. {first} -> {os.readlink(first)})")
    if scan.hidden:
        notes.append(f"{len(scan.hidden)} image(s) in {folder} were left out (e.g. {scan.hidden[0]}): they are in hidden or "
                     "system folders (named with a leading dot, as .Trash-1000/ or .ipynb_checkpoints/, or @eaDir/ thumbnails, "
                     "__MACOSX/); move one out of there to read it")
    if scan.unread:
        notes.append(f"{len(scan.unread)} image file(s) in {folder} were left out (e.g. {scan.unread[0]}): {_unread_kinds(scan)} "
                     f"files are not read; {_avif_fix(scan)}convert them to PNG or TIFF to read them")
    return notes


def unread_file(kind: str) -> str:
    """`a HEIC file, which is not read` (`an AVIF file, ...`): a file of one of UNREAD_SUFFIXES' kinds, as errors say it."""
    return f"a{'n' if kind == 'AVIF' else ''} {kind} file, which is not read"


def _avif_fix(scan: Scan) -> str:
    """The first half of the fix where a scan's unread files include AVIF, which a newer Pillow reads; else nothing."""
    if not any(UNREAD_SUFFIXES.get(p.suffix.lower()) == "AVIF" for p in scan.unread):
        return ""
    return f"{AVIF_GET} to read the AVIF ones, or "


def _unread_kinds(scan: Scan) -> str:
    """The suffixes of a scan's unread files, as found: `.heic` or `.heic, .dng`."""
    return ", ".join(dict.fromkeys(p.suffix.lower() for p in scan.unread))
