"""The letterhead of a controlled QA document: the organisation, its logo, and the form's number and revision.

Shown at the top of the first page; in the PDF the organisation and the form number head every later page too,
so a report needs no editing before it is filed.
"""

from __future__ import annotations

import base64
import errno
import io
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image

from model.errors import not_utf8, what_is_wrong_with, write_fix
from model.pillow_policy import load_whole  # and its pixel limit, without Pillow's raw warnings
from reports.errors import ReportError

MAX_LOGO_BYTES = 2 * 1024 * 1024  # an embedded logo is copied into every report
MAX_LOGO_PIXELS = 40_000_000  # beyond any letterhead's need, within what Pillow decodes
MAX_TEXT = 200


@dataclass(frozen=True)
class Letterhead:
    organisation: str | None = None  # company and site, e.g. "ACME Motors, Plant 2"
    document: str | None = None  # the form's number and revision, e.g. "QF-7.5-03 rev. B"
    logo: str | None = None  # a data: URI (see `letterhead`)

    def __bool__(self) -> bool:
        return bool(self.organisation or self.document or self.logo)


def _logo_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith((b"<?xml", b"<!--", b"<!doctype svg")) and b"<svg" in data[:4096].lower()):
        return "image/svg+xml"  # shown as an <img>, so a script inside it never runs
    return None


def _decodes(data: bytes, kind: str) -> bool:
    """Whether a logo file reads whole: a raster one decodes, an SVG one parses with an <svg> root."""
    try:
        if kind == "image/svg+xml":
            return ElementTree.fromstring(data).tag.rsplit("}", 1)[-1] == "svg"
        with Image.open(io.BytesIO(data)) as im:
            load_whole(im)
        return True
    except (ElementTree.ParseError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def _pixels(data: bytes) -> int | None:
    """A raster logo's pixel count, from its header (None if that does not read)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size[0] * im.size[1]
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: refused from the header, the count said
        count = re.search(r"\((\d+) pixels\)", str(exc))
        return int(count.group(1)) if count else MAX_LOGO_PIXELS + 1
    except (OSError, ValueError, SyntaxError):
        return None


def _text(value: str | None, what: str) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    if said := not_utf8(f"report {what}", text):  # a report file holds UTF-8: a traceback at its writing
        raise ReportError(said)
    if len(text) > MAX_TEXT:
        raise ReportError(f"report {what} of {len(text)} characters: keep it to {MAX_TEXT}")
    return text or None


def letterhead(organisation: str | None = None, document: str | None = None, logo: str | Path | None = None) -> Letterhead:
    """A letterhead, its logo file (PNG, JPEG or SVG) read and embedded; ReportError naming what is wrong."""
    uri = None
    if logo is not None and str(logo).strip():
        path = Path(logo).expanduser()
        try:
            if what := what_is_wrong_with(path):  # /dev/zero was read until memory ran out, a FIFO held the report (and `serve`) for good
                raise ReportError(f"report logo {logo}: {what}; give a PNG, JPEG or SVG file")
            if (size := path.stat().st_size) > MAX_LOGO_BYTES:
                raise ReportError(f"report logo {logo}: {size / 1e6:.1f} MB; give a logo file under {MAX_LOGO_BYTES // 2**20} MB")
            data = path.read_bytes()
        except OSError as exc:
            fix = write_fix(exc) if exc.errno == errno.ENAMETOOLONG else "give a PNG, JPEG or SVG file"
            raise ReportError(f"report logo {logo}: cannot be read ({exc.strerror}); {fix}") from None
        kind = _logo_type(data)
        if kind is None:
            raise ReportError(f"report logo {logo}: not a PNG, JPEG or SVG file; convert it to one of these")
        # said from the header, before decoding: a poster's artwork read "damaged or cut short", Pillow's own limit being
        # a setting other modules change
        if kind != "image/svg+xml" and (pixels := _pixels(data) or 0) > MAX_LOGO_PIXELS:
            raise ReportError(f"report logo {logo}: {pixels:,} pixels, too many for a logo; scale it down (a logo needs no more "
                              "than about 1000 px a side)")
        if not _decodes(data, kind):  # found now, not by the PDF renderer after the work the report shows
            raise ReportError(f"report logo {logo}: cannot be decoded (damaged or cut short); export the logo again")
        uri = f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"
    return Letterhead(_text(organisation, "organisation"), _text(document, "document number"), uri)
