"""File names for ids that come from the outside world."""

from __future__ import annotations

from model.folders import shortened

MAX_BYTES = 80  # of a name's UTF-8: a worst part's page holds two names (the part's, its shift's station) in 255 bytes
# DOS device names, whatever their case or extension: a FAT stick (vfat refuses them, EINVAL) or a Windows share
# could not take a part `CON`'s image or a type `aux`'s export folder
RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"{d}{n}" for d in ("COM", "LPT") for n in range(1, 10))})


def safe_name(text: object) -> str:
    """A file-name-safe form of an id, distinct for distinct ids: where characters had to be replaced, a hash of the
    id follows (LOT7.P1, LOT7_P1 and LOT7:P1 shared one image file and one report, each overwriting the other's).
    At most MAX_BYTES bytes of UTF-8: 80 letters of 4 bytes each (𝐀, 𠀀) were a name too long for any file system, and
    the part's image, report and export failed."""
    text = str(text)
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80]
    if cleaned == text and text and len(text.encode("utf-8")) <= MAX_BYTES and text.upper() not in RESERVED:
        return cleaned
    return shortened(cleaned[:71], MAX_BYTES, text.encode("utf-8", "surrogatepass"))
