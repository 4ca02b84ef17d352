"""Label names with a fixed meaning, importable without torch or image libraries (CLI and runtime start-up)."""

import unicodedata

GOOD = "good"  # a defect-free part: the train/good and test/good folders
UNKNOWN = "unknown"  # the type of a defect unlike every known type (reserved)
# what a defect of no type is called (a region's type without a type head; a report's part): a type so named was described
# as "an unclassified anomaly", translated as that in reports, and refused by `review --type`
UNTYPED = ("anomaly", "unclassified")
RESERVED = (GOOD, UNKNOWN, *UNTYPED)  # what the model or the reports call parts: no type may be called so


def type_words(name: str) -> str:
    """A type's name as a person (and a CLIP prompt) reads it: in any case and Unicode form, `_` as a space."""
    return " ".join(unicodedata.normalize("NFKC", name).replace("_", " ").split()).casefold()


def reserved_name(names) -> str | None:
    """The first of `names` that reads as `unknown`, `good`, `anomaly` or `unclassified` (in any case, `_` as a space),
    which no type may be called."""
    return next((n for n in names if type_words(n) in RESERVED), None)
