"""Inspection and shift reports from plain result records (Jinja2 -> HTML, WeasyPrint -> PDF). Never imports torch.

    render_inspection(record, out_dir, formats=("html", "pdf"), lang="en", store_root=None) -> {format: Path}
    render_shift(records, meta, out_dir, formats=("html", "pdf"), lang="en", store_root=None) -> {format: Path}

Records are InspectionResult.to_record() dicts (as the store returns them); image paths in
record["images"] are relative to `store_root`. Bad input raises ReportError with a one-line message.
"""

from reports.errors import ReportError
from reports.i18n import LANGUAGES
from reports.render import FORMATS, render_inspection, render_shift

__all__ = ["FORMATS", "LANGUAGES", "ReportError", "render_inspection", "render_shift"]
