"""Inspection and shift reports from plain result records (Jinja2 -> HTML, WeasyPrint -> PDF). Never imports torch."""
