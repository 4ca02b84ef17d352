"""Industrial visual inspection: fit a station from good images, inspect parts, report.

`from inspector import Inspector` is loaded lazily so the CLI starts without importing torch. Bad input (a path, an
image, a model, an argument) raises `inspector.InspectorError`, its message one line naming the input and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.errors import InspectorError  # what the API raises: an integrator catches it (it lived in model.errors alone)

if TYPE_CHECKING:
    from inspector.api import Inspector, LoadedImage, load_image
    from inspector.result import InspectionResult

__all__ = ["Inspector", "InspectionResult", "InspectorError", "LoadedImage", "load_image"]


def __getattr__(name: str):
    if name in ("Inspector", "LoadedImage", "load_image"):  # load_image: the RGB pixels that overlay() draws on
        from inspector import api

        return getattr(api, name)
    if name == "InspectionResult":
        from inspector.result import InspectionResult

        return InspectionResult
    raise AttributeError(name)
