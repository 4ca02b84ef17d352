"""Engines by artefact kind. A runtime whose import fails is unavailable, not fatal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inspector.engines.base import Engine, HeadOutput, ModelMeta
from model.errors import InspectorError, denied, what_is_wrong_with


def _torch(path: Path, device: str) -> Engine:
    from inspector.engines.torch_engine import TorchEngine

    return TorchEngine(path, device=device)


def _onnx(path: Path, device: str, verifying: bool = False) -> Engine:
    from inspector.engines.onnx_engine import OnnxEngine

    return OnnxEngine(path, device=device, verifying=verifying)


def _tensorrt(path: Path, device: str, verifying: bool = False) -> Engine:
    from inspector.engines.tensorrt_engine import TensorRTEngine

    # "cpu" is the CLI default; engines only run on GPUs
    return TensorRTEngine(path, device="cuda" if device == "cpu" else device, verifying=verifying)


# artefact kind -> factory; exported formats (see exporters/) by file suffix
FACTORIES: dict[str, Callable[[Path, str], Engine]] = {"checkpoint": _torch, "onnx": _onnx, "engine": _tensorrt, "plan": _tensorrt}


def artefact_kind(path: Path) -> str:
    """Which engine runs this path: a checkpoint directory, or an exported model file by its suffix."""
    if path.is_dir():
        return "checkpoint"
    return path.suffix.lower().lstrip(".")


def model_of_manifest(path: Path) -> Path:
    """An export's manifest (`model.onnx.json`) names its model, as a checkpoint's manifest names its checkpoint: it was
    "unknown model kind 'json'" to inspect, and "its manifest model.onnx.json.json is missing" to threshold."""
    if path.suffix != ".json":  # first: "." (the folder one is in) and "/" have no name, which with_suffix raised on
        return path
    model = path.with_suffix("")
    if artefact_kind(model) not in FACTORIES:
        return path
    if not model.exists():  # a sidecar copied without its model: "unknown model kind 'json'" named neither
        raise InspectorError(f"model {model}: missing beside its manifest {path.name}; copy the model file along, or export again")
    return model


def runs_as_model(path: Path) -> bool:
    """Whether an engine runs `path` (a checkpoint folder, an exported model file); a hidden file never: macOS writes
    `._model.onnx` (its AppleDouble metadata) beside each file it copies onto a USB stick or share, and an export folder
    read "holds several exported models (._model.onnx, model.onnx)"."""
    return not path.name.startswith(".") and artefact_kind(path) in FACTORIES


def _exported_in(folder: Path) -> Path:
    """A folder written by `inspector export` (no checkpoint manifest): its one exported model."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and runs_as_model(p))
    if not found:
        for side in sorted(folder.glob("*.json")):  # an export folder whose model is gone: said so, not "no manifest.json"
            model_of_manifest(side)
        return folder  # not an export folder either: the checkpoint loader says what is missing
    if len(found) > 1:
        raise InspectorError(f"model {folder}: holds several exported models ({', '.join(p.name for p in found)}); give one file")
    return found[0]


def locate_model(path: str | Path) -> tuple[Path, str]:
    """A checkpoint directory or exported model (or a folder holding one export) -> (its path, its kind), without
    loading it: the cheap checks, so that a daemon can make them before it connects to anything."""
    path = Path(path)
    try:
        if not path.exists():
            raise InspectorError(f"model {path}: no such file or directory; give a checkpoint from `inspector fit` or an exported model")
        if not path.is_dir() and (why := what_is_wrong_with(path, "model")):  # a FIFO named model.onnx: inspect waited for good
            raise InspectorError(f"model {path}: {why}; give a checkpoint from `inspector fit` or an exported model")
        if path.is_file() and path.name == "manifest.json":  # a checkpoint's manifest names its checkpoint, as `threshold` takes it
            path = path.parent
        path = model_of_manifest(path)
        if path.is_dir() and not (path / "manifest.json").exists():
            path = _exported_in(path)
    except PermissionError as exc:  # Path.exists raises it, unlike os.path.exists
        raise InspectorError(denied(exc, f"model {path}")) from None
    kind = artefact_kind(path)
    from model.images import IMAGE_SUFFIXES  # here: importing the engines loads no image libraries

    if kind not in FACTORIES and path.suffix.lower() in IMAGE_SUFFIXES:
        raise InspectorError(f"model {path}: is an image, not a model; give a checkpoint from `inspector fit` or an exported model")
    if kind not in FACTORIES and path.is_file() and (path.parent / "manifest.json").is_file():  # its weights: "unknown model kind 'safetensors'"
        raise InspectorError(f"model {path}: is a file inside the checkpoint {path.parent}; give the checkpoint folder {path.parent} instead")
    if kind not in FACTORIES:
        known = ", ".join(sorted(FACTORIES))
        raise InspectorError(f"model {path}: unknown model kind {kind!r}; give one of: {known}")
    return path, kind


def open_engine(path: str | Path, device: str = "cpu", verifying: bool = False) -> Engine:
    """Open a checkpoint directory or exported model with the matching runtime; `verifying`: an export that waits for
    `export --verify`'s outcome, opened by it."""
    path, kind = locate_model(path)
    if verifying and kind == "checkpoint":  # the Python API's verify_export(ckpt, ckpt, data): a TypeError
        raise InspectorError(f"model {path}: is a checkpoint, not an export; verify an exported model (model.onnx, "
                             "model.engine) against the checkpoint it came from")
    return FACTORIES[kind](path, device, verifying=True) if verifying else FACTORIES[kind](path, device)


__all__ = ["Engine", "HeadOutput", "ModelMeta", "locate_model", "open_engine", "FACTORIES"]
