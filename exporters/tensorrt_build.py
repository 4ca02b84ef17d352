"""ONNX -> TensorRT engine with the `tensorrt` Python API (imported only here, only when asked for).

- FP16: the backbone runs in float16; nodes outside it (the head's distances, whitening, blur) are
  pinned to float32 (not TF32) with precision constraints, as in the ONNX FP16 export.
- INT8: implicit quantisation calibrated on good images (entropy calibrator) with a calibration cache
  next to the engine, named by the model's weights hash so it is reused only for the same model; the
  head is again pinned to float32, and FP16 is allowed for layers without an INT8 kernel.
- A precision the GPU cannot run fast is an error, never a silent float32 build.
- Dynamic batch: one optimisation profile, batch 1..MAX_BATCH, tuned for OPT_BATCH.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from exporters.graph import float_nodes
from exporters.manifest import tensorrt_target
from model.errors import InspectorError
from model.folders import replace_files

MAX_BATCH, OPT_BATCH = 16, 8
WORKSPACE_BYTES = 4 << 30


def _calibrator(trt, images: np.ndarray, cache: Path, batch: int = 8):
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)] or [images]
            self.i = 0
            self.device = None

        def get_batch_size(self) -> int:
            return int(self.batches[0].shape[0])

        def get_batch(self, names):
            if self.i >= len(self.batches):
                return None
            self.device = torch.from_numpy(np.ascontiguousarray(self.batches[self.i])).cuda()
            self.i += 1
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            # whole or not at all: TensorRT takes a cache it finds over calibrating, and one cut short by a stopped or
            # full-disk export was read by every later build from the same images
            replace_files({cache: bytes(data)})

    return EntropyCalibrator()


def _pin_float32(trt, network, keep: set[str], tensors: set[str]) -> int:
    """Pin layers that come from float32 ONNX nodes (matched by node name or output tensor) to float32."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if layer.name in keep or any(o.name in tensors for o in outputs):
            if layer.type in (trt.LayerType.SHAPE, trt.LayerType.CONSTANT) or any(o.dtype not in (trt.float32, trt.float16) for o in outputs):
                continue
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


def build_engine(onnx_path: Path, precision: str, input_size: tuple[int, int],
                 calib_images: np.ndarray | None, cache: Path, log: Callable[[str], None] = lambda _: None) -> tuple[bytes, dict]:
    """Build the engine -> (its bytes, what was built: precision details and the GPU/TensorRT target); the caller
    writes the bytes together with their sidecar."""
    target = tensorrt_target()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise InspectorError(f"TensorRT {trt.__version__} cannot parse the ONNX graph: {errors[0] if errors else 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    h, w = input_size
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 3, h, w), (OPT_BATCH, 3, h, w), (MAX_BATCH, 3, h, w))
    config.add_optimization_profile(profile)

    if not getattr(builder, "platform_has_fast_fp16", True):  # the query is deprecated in recent TensorRT
        raise InspectorError(f"GPU {target['gpu']} has no fast FP16; TensorRT {precision} would not be faster than float32")
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if not getattr(builder, "platform_has_fast_int8", True):
            raise InspectorError(f"GPU {target['gpu']} has no fast INT8; use --format tensorrt-fp16")
        if calib_images is None or len(calib_images) == 0:
            raise InspectorError("TensorRT INT8 needs calibration images (--calib DIR)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, calib_images, cache)
        config.set_calibration_profile(profile)
    elif precision != "fp16":
        raise InspectorError(f"TensorRT precision {precision!r}: choose fp16 or int8")

    model = onnx.load(str(onnx_path), load_external_data=False)
    keep = float_nodes(model)
    tensors = {o for n in model.graph.node if n.name in keep for o in n.output}
    pinned = _pin_float32(trt, network, keep, tensors)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    if hasattr(trt.BuilderFlag, "TF32"):  # float32 layers may run as TF32 by default: pinned means float32, as on CUDA
        config.clear_flag(trt.BuilderFlag.TF32)
    log(f"  building TensorRT {trt.__version__} {precision} engine on {target['gpu']} ({pinned} layers pinned to float32)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise InspectorError(f"TensorRT could not build the {precision} engine (see the TensorRT log above)")
    return bytes(serialized), {"compute": f"backbone {precision}, {pinned} head layers float32", "max_batch": MAX_BATCH, "opt_batch": OPT_BATCH,
            "calibration_cache": cache.name if precision == "int8" else None, "target": target}
