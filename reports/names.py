"""File names for ids that come from the outside world."""

from __future__ import annotations

import hashlib


def safe_name(text: object) -> str:
    """A file-name-safe form of an id, distinct for distinct ids: where characters had to be replaced, a hash of the
    id follows (LOT7.P1, LOT7_P1 and LOT7:P1 shared one image file and one report, each overwriting the other's)."""
    text = str(text)
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80]
    if cleaned == text and text:
        return cleaned
    return f"{cleaned[:71]}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
