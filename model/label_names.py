"""Label names with a fixed meaning, importable without torch or image libraries (CLI and runtime start-up)."""

GOOD = "good"  # a defect-free part: the train/good and test/good folders
UNKNOWN = "unknown"  # the type of a defect unlike every known type (reserved)
