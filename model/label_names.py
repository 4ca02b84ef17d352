"""Label names with a fixed meaning, importable without torch or image libraries (CLI and runtime start-up)."""

import unicodedata

GOOD = "good"  # a defect-free part: the train/good and test/good folders
UNKNOWN = "unknown"  # the type of a defect unlike every known type (reserved)


def type_words(name: str) -> str:
    """A type's name as a person (and a CLIP prompt) reads it: in any case and Unicode form, `_` as a space."""
    return " ".join(unicodedata.normalize("NFKC", name).replace("_", " ").split()).casefold()
