"""Industrial visual inspection: fit a station from good images, inspect parts, report.

`from inspector import Inspector` is loaded lazily so the CLI starts without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspector.api import Inspector
    from inspector.result import InspectionResult

__all__ = ["Inspector", "InspectionResult"]


def __getattr__(name: str):
    if name == "Inspector":
        from inspector.api import Inspector

        return Inspector
    if name == "InspectionResult":
        from inspector.result import InspectionResult

        return InspectionResult
    raise AttributeError(name)
