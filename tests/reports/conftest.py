"""Report fixtures: synthetic records with their image files in the store layout, and system-tool checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reports.sample import make_records

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> tuple[Path, list[dict]]:
    """(store root, 120 records over an 8 h shift, oldest first), images written for every part."""
    root = tmp_path_factory.mktemp("report_store")
    return root, make_records(120, root=root, image_size=128, fail_rate=0.15, seed=7)


@pytest.fixture(scope="session")
def failed_record(sample) -> dict:
    """A failed part with several defect regions and a hostile serial."""
    _, records = sample
    record = next(r for r in records if r["verdict"] == "FAIL" and len(r["defects"]) >= 2)
    return dict(record, serial=XSS)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        package = {"msgfmt": "gettext", "chromium": "chromium"}.get(tool, "poppler-utils")
        pytest.skip(f"{tool} is not installed (apt-get install {package}; see the Makefile's APT_PACKAGES)")
    return path
