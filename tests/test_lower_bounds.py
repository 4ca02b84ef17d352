"""The declared lower bounds stay at least the versions the code was found to need (a venv with every direct dependency
at its declared minimum): a bound below one of these installs a version that breaks the station."""

from __future__ import annotations

import re

import pytest

# package -> the least version that works, and why; a bound may be raised past these, never lowered below them
NEEDED = {
    "opencv-python-headless": ("4.10.0.84", "4.8/4.9 wheels fail `import cv2` under NumPy 2, which numpy>=1.24 admits"),
    "onnx": ("1.17", "onnxscript 0.6 (the torch 2.14 exporter) needs it"),
    "onnxruntime": ("1.28", "quantize_static(calibration_cache_path=) from 1.27; 1.27.0 refuses its own QDQ graph"),
    "onnxruntime-gpu": ("1.28", "the same quantiser as onnxruntime"),
    "open_clip_torch": ("3.0", "create_model(weights_only=) and constants.HF_SAFE_WEIGHTS_NAME"),
    "scikit-learn": ("1.4.2", "the first built for NumPy 2"),
    "scikit-image": ("0.23", "0.22 fails `import skimage` under NumPy 2"),
    "weasyprint": ("68.1", "68.0 lays a wide failed-parts table past the A4 page edge"),
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def _lower_bounds(pyproject: dict) -> dict[str, list[str]]:
    """package -> the `>=` bound of each place it is required (dependencies and every extra)."""
    project = pyproject["project"]
    found: dict[str, list[str]] = {}
    for req in [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]:
        if "python_version < '3.11'" in req:  # Python 3.10's own bound, below the others where its wheels stop
            continue
        name = re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower()
        bound = re.search(r">=\s*([0-9][0-9.]*)", req)
        if bound:
            found.setdefault(name, []).append(bound.group(1))
    return found


@pytest.mark.parametrize("package", sorted(NEEDED))
def test_no_bound_is_below_the_version_the_code_needs(pyproject, package):
    needed, why = NEEDED[package]
    bounds = _lower_bounds(pyproject).get(package)
    assert bounds, f"{package} is no longer required with a >= bound; drop it from NEEDED if that is meant"
    for bound in bounds:
        assert _version(bound) >= _version(needed), f"{package}>={bound} admits a version that breaks: needs {needed} ({why})"


def test_versions_compare_by_number_not_by_text():
    assert _version("4.10.0.84") > _version("4.9") and _version("1.28") > _version("1.3") and _version("3.0") == (3, 0)
