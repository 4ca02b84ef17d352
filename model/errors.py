"""The one error type for bad user input: the CLI prints its message on one line and exits 2."""


from __future__ import annotations

import importlib
from types import ModuleType

DIST = "inspector-edge"  # the distribution's name on PyPI (`inspector` there is another project)


class InspectorError(Exception):
    """A problem with something the user gave us (a path, an image, a checkpoint, an option).

    The message names the input and says what to do; it is shown without a traceback.
    """


def need(module: str, extra: str, purpose: str) -> ModuleType:
    """`module` imported, or an InspectorError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        also = " (or [gpu] on a machine with an NVIDIA GPU)" if extra == "cpu" else ""
        raise InspectorError(f"{purpose} needs the {module} package: pip install '{DIST}[{extra}]'{also}") from None


def need_onnx(purpose: str) -> None:
    """What exporting to ONNX and running it take (the cpu or gpu extra), checked before long work starts."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        need(module, "cpu", purpose)
