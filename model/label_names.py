"""Label names with a fixed meaning, importable without torch or image libraries (CLI and runtime start-up)."""

import unicodedata

GOOD = "good"  # a defect-free part: the train/good and test/good folders
UNKNOWN = "unknown"  # the type of a defect unlike every known type (reserved)


def type_words(name: str) -> str:
    """A type's name as a person (and a CLIP prompt) reads it: in any case and Unicode form, `_` as a space."""
    return " ".join(unicodedata.normalize("NFKC", name).replace("_", " ").split()).casefold()


def reserved_name(names) -> str | None:
    """The first of `names` that reads as `unknown` or `good` (in any case, `_` as a space), which no type may be called."""
    return next((n for n in names if type_words(n) in (UNKNOWN, GOOD)), None)
