"""Exports of the session's tiny checkpoint, made once per test process and shared by the test modules."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import INT8_RUNS

ONNX_FORMATS = ["onnx", "onnx-fp16", *(["onnx-int8"] if INT8_RUNS else [])]
INT8_TOLERANCE = 1.0
_CACHE: dict[str, dict[str, Path]] = {}


def exported(ckpt: Path, root: Path) -> dict[str, Path]:
    """kind -> model file, for the three ONNX formats of `ckpt` (one trace, one calibration)."""
    from exporters.export import export

    if str(ckpt) not in _CACHE:
        # 12 training images give 3 held-out ones: a looser INT8 drift tolerance than the default 0.25
        _CACHE[str(ckpt)] = {r.manifest["kind"]: r.path for r in export(ckpt, ONNX_FORMATS, root, int8_tolerance=INT8_TOLERANCE)}
    return _CACHE[str(ckpt)]


def copy_export(model: Path, folder: Path) -> Path:
    """A private copy of a model file and its sidecar, safe to damage."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model, folder / model.name)
    shutil.copy2(model.with_name(model.name + ".json"), folder / (model.name + ".json"))
    return folder / model.name
