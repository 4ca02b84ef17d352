"""TensorRT engine (.engine/.plan built by `inspector export --format tensorrt-fp16|tensorrt-int8`).

`tensorrt` and CUDA are needed only here and imported lazily. An engine is tied to the GPU model and
TensorRT version it was built with: both are recorded in its manifest and checked before loading.
Buffers are torch CUDA tensors (torch is a dependency anyway), so no pycuda is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporters import manifest as export_manifest
from inspector.engines.base import HeadOutput, parse_device
from inspector.engines.exported import check_batch, meta_from_export, split_outputs
from model.errors import InspectorError


class TensorRTEngine:
    def __init__(self, path: str | Path, device: str = "cuda", verifying: bool = False) -> None:
        """`verifying`: opened by `export --verify`, which its sidecar waits for."""
        path = Path(path)
        data, manifest = export_manifest.read_export(path, verifying)  # the bytes deserialized are those checked
        _, index = parse_device(device, ("cuda", "tensorrt"), "a TensorRT engine", " (for CPUs export an .onnx)")
        import torch

        self.torch = torch
        self.device = torch.device("cuda", index) if torch.cuda.is_available() else None
        if self.device is not None:
            torch.cuda.set_device(self.device)
        export_manifest.check_tensorrt_target(manifest.get("tensorrt"), export_manifest.tensorrt_target(), path)
        import tensorrt as trt

        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise InspectorError(f"engine {path}: TensorRT cannot deserialize it (corrupt, or built by another version); rebuild it")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in manifest["outputs"] if n in names]  # score, amap[, type_probs]: the manifest's order
        if len(self.inputs) != 1:
            raise InspectorError(f"engine {path}: expected one input, found {self.inputs}; rebuild it with `inspector export`")
        export_manifest.check_input_shape(manifest, list(self.engine.get_tensor_shape(self.inputs[0])), path)
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])
        self.dtypes = {n: getattr(torch, np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))).name) for n in names}
        self.meta = meta_from_export(manifest, path, f"tensorrt:{manifest['tensorrt']['tensorrt']}:{manifest['kind']}")
        self.warmup()

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        torch = self.torch
        inp = torch.from_numpy(x).to(self.device, dtype=self.dtypes[self.inputs[0]])
        self.context.set_input_shape(self.inputs[0], tuple(inp.shape))
        self.context.set_tensor_address(self.inputs[0], inp.data_ptr())
        outs = {}
        for n in self.outputs:
            outs[n] = torch.empty(tuple(self.context.get_tensor_shape(n)), dtype=self.dtypes[n], device=self.device)
            self.context.set_tensor_address(n, outs[n].data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise InspectorError(f"engine {self.meta.path}: TensorRT execution failed")
        stream.synchronize()
        return [outs[n].float().cpu().numpy() for n in self.outputs]

    def infer(self, batch: np.ndarray) -> HeadOutput:
        x = check_batch(batch, self.meta)
        parts = [self._run(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return split_outputs([np.concatenate(arrays) for arrays in zip(*parts, strict=True)])

    def warmup(self) -> None:
        self.infer(np.zeros((1, 3, *self.meta.input_size), dtype=np.float32))

    def close(self) -> None:
        self.context = self.engine = None
