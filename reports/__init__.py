"""Inspection, shift and validation reports (Jinja2 -> HTML, WeasyPrint -> PDF). Never imports torch.

    render_inspection(record, out_dir, formats=("html", "pdf"), lang="en", store_root=None, tz="UTC", letterhead=None) -> {format: Path}
    render_shift(records, meta, out_dir, formats=("html", "pdf"), lang="en", store_root=None, tz="UTC", letterhead=None) -> {format: Path}
    render_validation(run, out_dir, formats=("html", "pdf"), lang="en", tz="UTC", letterhead=None) -> {format: Path}

`tz` is the zone times are shown in (an IANA name, "UTC" or "local"; the API's default is UTC, the CLI's and the
daemon's the machine's zone); `letterhead` a `reports.letterhead.letterhead(organisation, document, logo)`.

Records are InspectionResult.to_record() dicts (as the store returns them); image paths in
record["images"] are relative to `store_root`. Bad input raises ReportError with a one-line message.
"""

from __future__ import annotations

import importlib
from typing import Any

from reports.errors import ReportError

__all__ = ["FORMATS", "LANGUAGES", "ReportError", "render_inspection", "render_shift", "render_validation"]
_LAZY = {"FORMATS": "reports.render", "render_inspection": "reports.render", "render_shift": "reports.render", "LANGUAGES": "reports.i18n",
         "render_validation": "reports.validation"}


def __getattr__(name: str) -> Any:
    """The renderers (Jinja2 and the charts) are imported on first use: the daemon's config and time parsing use
    `reports.zones` alone."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    try:
        return importlib.import_module(f"reports.{name}")  # a submodule, e.g. reports.records
    except ModuleNotFoundError:
        raise AttributeError(f"module 'reports' has no attribute {name!r}") from None
