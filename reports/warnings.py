"""The inspector's per-part warnings, which records carry in English, read back in a report's language.

A warning is matched whole against the texts the inspector writes (`inspector.api.unlike_training`,
`model.framing.Framing.located`, `model.quality.WARNINGS`); one it does not know is shown as written.
"""

from __future__ import annotations

import re

from model.quality import WARNINGS as QUALITY_WARNINGS
from reports.charts import Gettext


def _(message: str) -> str:
    """Marks a catalog message (source_messages finds it); translated where shown."""
    return message


_SIZE = r"\d+x\d+"
# kind (a metric's label, the shift report's row), the text as the inspector writes it, the catalog message
KNOWN: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("size", re.compile(rf"image (?P<size>{_SIZE}) px is unlike the training images \((?P<lo>{_SIZE})(?: to (?P<hi>{_SIZE}))? px\); "
                        r"check the camera's resolution, crop and orientation, or fit on images like it"),
     _("Image %(size)s px is unlike the training images (%(seen)s px); check the camera's resolution, crop and orientation, or fit on images like it")),
    ("locate", re.compile(r"the part matched the training parts' template only weakly within the --locate margin; it may be missing, "
                          r"turned or out of place"),
     _("The part matched the training parts' template only weakly within the --locate margin; it may be missing, turned or out of place")),
    ("edge", re.compile(r"the part's region reaches past the frame's edge, so part of it was not inspected; check where the part "
                        r"stops and the camera's framing"),
     _("The part's region reaches past the frame's edge, so part of it was not inspected; check where the part stops and the camera's framing")),
    ("damaged", re.compile(r"the stored record of this part could not be read \(changed outside the station\); its verdict, score and "
                           r"threshold come from the store's columns, its defects and images are not known"),  # inspector.store.DAMAGED
     _("The stored record of this part could not be read (changed outside the station); its verdict, score and threshold come from the store's columns, its defects and images are not known")),
    # model.quality's, as the inspector writes them; the catalog has them capitalised (source_messages takes them from here)
    *((kind, re.compile(re.escape(text)), text[0].upper() + text[1:]) for kind, text in QUALITY_WARNINGS.items()),
)


def _known(text: str) -> tuple[str, re.Match[str], str] | None:
    """(kind, match, catalog message) of the KNOWN warning `text` is, None for a text the inspector does not write."""
    for kind, pattern, message in KNOWN:
        if m := pattern.fullmatch(text):
            return kind, m, message
    return None


def warning_kind(text: str) -> str | None:
    """What kind of warning the inspector wrote (`KNOWN`'s first column), None for a text it does not know."""
    known = _known(text)
    return known[0] if known else None


def translate_warning(gettext: Gettext, text: str) -> str:
    """`text` in the report's language where it is a warning the inspector writes, else as it is."""
    if (known := _known(text)) is None:
        return text
    _kind, m, message = known
    found = m.groupdict()
    found["seen"] = "–".join(filter(None, (found.get("lo"), found.get("hi"))))
    return gettext(message) % found
