"""The engine contract: one exported graph, run by one runtime.

`infer(batch)` takes float32 RGB [B, 3, H, W] in [0, 1] at `meta.input_size` and returns HeadOutput.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from model.errors import InspectorError

DEVICES = ("cpu", "cuda", "tensorrt")


def parse_device(device: str, allowed: tuple[str, ...] = DEVICES, what: str = "a model", hint: str = "") -> tuple[str, int]:
    """`--device` text -> (name, index), or one line naming the devices `allowed` (e.g. "cuda:1" -> ("cuda", 1))."""
    name, colon, index = device.partition(":")
    if name not in allowed or (colon and not index.isdigit()):
        choices = " or ".join(a if a == "cpu" else f"{a}[:N]" for a in allowed)
        raise InspectorError(f"--device {device!r}: {what} runs on {choices}{hint}")
    return name, int(index or 0)


@dataclass
class HeadOutput:
    score: np.ndarray  # [B] image scores
    amap: np.ndarray  # [B, H, W] anomaly maps at the input size
    type_probs: np.ndarray | None = None  # [B, K] defect-type probabilities, when the model names types


@dataclass(frozen=True)
class ModelMeta:
    """What a runtime needs to know about the model it runs, read from the manifest."""

    model_id: str
    backbone: str
    input_size: tuple[int, int]
    image_threshold: float
    pixel_threshold: float
    sha256: str
    path: str
    runtime: str
    class_names: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], path: str, runtime: str, weights_file: str) -> ModelMeta:
        net = manifest["net"]
        sha = manifest["files"][weights_file]
        return cls(
            model_id=sha[:12],
            backbone=net["backbone"],
            input_size=tuple(net["input_size"]),
            image_threshold=float(manifest["thresholds"]["image"]),
            pixel_threshold=float(manifest["thresholds"]["pixel"]),
            sha256=sha,
            path=path,
            runtime=runtime,
            class_names=tuple(net.get("class_names") or ()),
            manifest=manifest,
        )


class Engine(Protocol):
    meta: ModelMeta

    def infer(self, batch: np.ndarray) -> HeadOutput: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...
