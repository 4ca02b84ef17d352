"""Engines by artefact kind. A runtime whose import fails is unavailable, not fatal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inspector.engines.base import Engine, HeadOutput, ModelMeta
from model.errors import InspectorError


def _torch(path: Path, device: str) -> Engine:
    from inspector.engines.torch_engine import TorchEngine

    return TorchEngine(path, device=device)


# artefact kind -> factory; exported formats register here (see exporters/)
FACTORIES: dict[str, Callable[[Path, str], Engine]] = {"checkpoint": _torch}


def artefact_kind(path: Path) -> str:
    """Which engine runs this path: a checkpoint directory, or an exported model file by its suffix."""
    if path.is_dir():
        return "checkpoint"
    return path.suffix.lower().lstrip(".")


def open_engine(path: str | Path, device: str = "cpu") -> Engine:
    """Open a checkpoint directory or exported model with the matching runtime."""
    path = Path(path)
    if not path.exists():
        raise InspectorError(f"model {path}: no such file or directory; give a checkpoint from `inspector fit` or an exported model")
    kind = artefact_kind(path)
    if kind not in FACTORIES:
        known = ", ".join(sorted(FACTORIES))
        raise InspectorError(f"model {path}: unknown model kind {kind!r}; give one of: {known}")
    return FACTORIES[kind](path, device)


__all__ = ["Engine", "HeadOutput", "ModelMeta", "open_engine", "FACTORIES"]
