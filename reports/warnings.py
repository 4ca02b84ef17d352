"""The inspector's per-part warnings, which records carry in English, read back in a report's language.

A warning is matched whole against the texts the inspector writes (`inspector.api.unlike_training`,
`model.framing.Framing.located`); one it does not know is shown as written.
"""

from __future__ import annotations

import re

from reports.charts import Gettext


def _(message: str) -> str:
    """Marks a catalog message (source_messages finds it); translated where shown."""
    return message


_SIZE = r"\d+x\d+"
KNOWN: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"image (?P<size>{_SIZE}) px is unlike the training images \((?P<lo>{_SIZE})(?: to (?P<hi>{_SIZE}))? px\); "
                r"check the camera's resolution, crop and orientation, or fit on images like it"),
     _("Image %(size)s px is unlike the training images (%(seen)s px); check the camera's resolution, crop and orientation, or fit on images like it")),
    (re.compile(r"the part matched the training parts' template only weakly within the --locate margin; it may be missing, "
                r"turned or out of place"),
     _("The part matched the training parts' template only weakly within the --locate margin; it may be missing, turned or out of place")),
)


def translate_warning(gettext: Gettext, text: str) -> str:
    """`text` in the report's language where it is a warning the inspector writes, else as it is."""
    for pattern, message in KNOWN:
        if m := pattern.fullmatch(text):
            found = m.groupdict()
            found["seen"] = "–".join(filter(None, (found.get("lo"), found.get("hi"))))
            return gettext(message) % found
    return text
