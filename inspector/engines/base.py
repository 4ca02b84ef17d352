"""The engine contract: one exported graph, run by one runtime.

`infer(batch)` takes float32 RGB [B, 3, H, W] in [0, 1] at `meta.input_size` and returns HeadOutput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from model.errors import InspectorError
from model.framing import Framing

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
    framing: Framing = field(default_factory=Framing)  # the part of each image the model is given (model.framing)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], path: str, runtime: str, weights_file: str) -> ModelMeta:
        try:
            net = manifest["net"]
            sha = manifest["files"][weights_file]
            image, pixel = thresholds_of(manifest, f"checkpoint {path}")
            return cls(
                model_id=sha[:12],
                backbone=net["backbone"],
                input_size=tuple(int(v) for v in net["input_size"]),
                image_threshold=image,
                pixel_threshold=pixel,
                sha256=sha,
                path=path,
                runtime=runtime,
                class_names=tuple(net.get("class_names") or ()),
                manifest=manifest,
                framing=Framing.of(net),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InspectorError(f"checkpoint {path}: {manifest_problem(exc)}; re-create it with `inspector fit`") from None


def manifest_problem(exc: Exception) -> str:
    return f"its manifest lacks the field {exc}" if isinstance(exc, KeyError) else f"its manifest holds an invalid value ({exc})"


def thresholds_of(manifest: dict[str, Any], where: str) -> tuple[float, float]:
    """The manifest's (image, pixel) thresholds, which may be edited by hand: finite numbers, or one clear line."""
    try:
        image, pixel = float(manifest["thresholds"]["image"]), float(manifest["thresholds"]["pixel"])
    except (KeyError, TypeError, ValueError):
        raise InspectorError(f"{where}: its thresholds (image, pixel) are missing or not numbers; "
                             "set them with `inspector threshold MODEL --set SCORE --pixel VALUE`") from None
    for name, value in (("image", image), ("pixel", pixel)):
        if not math.isfinite(value):  # Infinity passed every part, NaN failed every one
            raise InspectorError(f"{where}: the {name} threshold is {value}, not a finite number; "
                                 f"set it with `inspector threshold MODEL --{'set' if name == 'image' else 'pixel'} VALUE`")
    return image, pixel


class Engine(Protocol):
    meta: ModelMeta

    def infer(self, batch: np.ndarray) -> HeadOutput: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...
