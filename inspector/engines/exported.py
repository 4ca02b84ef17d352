"""What the ONNX Runtime and TensorRT engines share: model metadata from the export manifest, input checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspector.engines.base import HeadOutput, ModelMeta, manifest_problem, thresholds_of
from model.errors import InspectorError
from model.framing import Framing


def meta_from_export(manifest: dict[str, Any], path: Path, runtime: str) -> ModelMeta:
    image, pixel = thresholds_of(manifest, f"model {path}")
    try:
        net = manifest["net"]
        return ModelMeta(
            model_id=manifest["source"]["weights_sha256"][:12],  # same id as the checkpoint it came from
            backbone=net["backbone"],
            input_size=tuple(int(v) for v in net["input_size"]),
            image_threshold=image,
            pixel_threshold=pixel,
            sha256=manifest.get("file_sha256", ""),
            path=str(path),
            runtime=runtime,
            class_names=tuple(net.get("class_names") or ()),
            manifest=manifest,
            framing=Framing.of(net),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InspectorError(f"model {path}: {manifest_problem(exc)}; export it again with `inspector export`") from None


def check_batch(batch: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """float32 [B, 3, H, W] at the model's input size, contiguous; else one clear error."""
    h, w = meta.input_size
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1:] != (3, h, w) or batch.shape[0] < 1:
        shape = list(batch.shape) if isinstance(batch, np.ndarray) else type(batch).__name__
        raise InspectorError(f"model {Path(meta.path).name}: input {shape} does not fit [batch, 3, {h}, {w}]; "
                             f"resize images to {w}x{h} first (model.images.preprocess)")
    return np.ascontiguousarray(batch, dtype=np.float32)


def split_outputs(arrays: list[np.ndarray]) -> HeadOutput:
    """Graph outputs in manifest order (score, amap[, type_probs]) -> HeadOutput, float32."""
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    return HeadOutput(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None)
