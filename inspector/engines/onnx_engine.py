"""ONNX Runtime engine: CPU, CUDA or TensorRT execution provider, chosen by `device`.

device: "cpu", "cuda[:N]" or "tensorrt[:N]". The provider asked for must be the one that runs:
onnxruntime-gpu falls back to CPU silently when CUDA libraries are missing, so the session's real
providers are checked and a fallback is an error. `meta.runtime` names the provider in use.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from exporters import manifest as export_manifest
from inspector.engines.base import HeadOutput, parse_device
from inspector.engines.exported import check_batch, meta_from_export, split_outputs
from model.errors import InspectorError, need

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}

# a session left as garbage in a reference cycle, collected in a forked child (a multiprocessing worker), waited in its
# destructor on a lock a thread of the parent held at the fork, for ever (a test run hung so): the parent collects first
os.register_at_fork(before=gc.collect)


def trt_cache(model: Path, digest: str = "") -> Path:
    """TensorRT's engine cache for the model file with sha256 `digest`: a folder per content under `<model>.trt-cache`.
    onnxruntime names a cached engine by the file's name, its tensor names and versions, not by its weights: a model
    exported again (or copied) under the same name ran the engine built from the weights before it."""
    top = model.with_name(model.name + ".trt-cache")
    return top / digest[:16] if digest else top


def _providers(device: str, model: Path, kind: str, digest: str = "") -> list:
    name, index = parse_device(device, tuple(PROVIDERS), "an ONNX model")
    if name == "cpu":
        return ["CPUExecutionProvider"]
    gpu = {"device_id": index}
    # float32, not TF32 (onnxruntime's default for float32 convolutions and matrix products): with TF32, scores on an
    # H200 were up to 0.34 (mean 0.006) from torch's on the CPU, where the thresholds were calibrated
    cuda = ("CUDAExecutionProvider", {**gpu, "use_tf32": "0"})
    if name == "cuda":
        return [cuda]
    if kind == "onnx-int8":
        raise InspectorError(f"model {model}: the INT8 ONNX is quantised for CPUs (uint8 activations, which TensorRT does not take); "
                             "for TensorRT export --format tensorrt-int8")
    # made once the provider is known to be there; kernel timings hold no weights, so all versions share them
    trt = {**gpu, "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(trt_cache(model, digest)),
           "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(trt_cache(model))}
    return [("TensorrtExecutionProvider", trt), cuda]


def providers_for(device: str, model: Path, kind: str, digest: str = "") -> list:
    """The onnxruntime providers that run `kind` (sha256 `digest`) on `device`, or one line saying why this machine
    cannot: also asked by `export --verify --device` before it spends minutes on exports it then could not verify."""
    ort = need("onnxruntime", "cpu", f"ONNX model {model.name}")
    providers = _providers(device, model, kind, digest)
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted not in ort.get_available_providers():
        raise InspectorError(f"--device {device}: this onnxruntime has no {wanted} (available: {', '.join(ort.get_available_providers())}); "
                             "install onnxruntime-gpu for cuda/tensorrt, or use --device cpu")
    return providers


def _session(ort, path: Path, options, providers: list, wanted: str, data: bytes | None = None):
    """An InferenceSession of the model's bytes `data` (its file where None) that runs `wanted` first, or one line
    saying why not."""
    # onnxruntime's Python side print()s its warnings and a provider's failure to start; stdout may be carrying --json
    with contextlib.redirect_stdout(sys.stderr):
        if wanted != PROVIDERS["cpu"] and hasattr(ort, "preload_dlls"):  # onnxruntime-gpu 1.21+
            ort.preload_dlls()  # CUDA and cuDNN from pip's nvidia-* wheels are found only once loaded
        try:
            session = ort.InferenceSession(str(path) if data is None else data, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
            raise InspectorError(f"model {path}: onnxruntime cannot load it ({first}); is the file complete? re-export it") from None
    used = session.get_providers()
    if used[0] == wanted:
        return session
    if wanted == PROVIDERS["tensorrt"] and used[0] == PROVIDERS["cuda"]:  # onnxruntime-gpu without libnvinfer
        raise InspectorError(f"model {path}: onnxruntime cannot start its TensorrtExecutionProvider here (it runs {', '.join(used)} instead); "
                             "install TensorRT (pip install tensorrt, whose CUDA major version matches onnxruntime-gpu's) or use --device cuda")
    raise InspectorError(f"model {path}: asked for {wanted} but onnxruntime runs {', '.join(used)} (a silent fallback); "
                         "fix the CUDA/TensorRT installation or use --device cpu")


class OnnxEngine:
    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None, verifying: bool = False) -> None:
        """`verifying`: opened by `export --verify`, which its sidecar waits for."""
        ort = need("onnxruntime", "cpu", f"ONNX model {Path(path).name}")

        path = Path(path)
        self._opened = (str(path), device, threads)  # what a copy in another process opens again (__reduce__)
        data, sidecar = export_manifest.read_export(path, verifying)
        providers = providers_for(device, path, sidecar.get("kind", ""), str(sidecar.get("file_sha256", "")))
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        made = None  # the engine cache folder made here, removed again if TensorRT does not run after all
        if wanted == PROVIDERS["tensorrt"]:
            folders = dict.fromkeys((trt_cache(path), Path(providers[0][1]["trt_engine_cache_path"])))
            made = next((f for f in folders if not f.exists()), None)
            try:
                for cache in folders:
                    cache.mkdir(exist_ok=True)
            except OSError as exc:  # e.g. a model under /opt, read-only to the daemon (ProtectSystem=strict)
                raise InspectorError(f"model {path}: TensorRT's engine cache {cache} cannot be made ({exc.strerror or exc}); "
                                     "put the model in a folder the station can write, or make that folder once, owned by the station's user "
                                     "(e.g. install -d -o inspector CACHE)") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between calls: on a small shared CPU, spinning threads slow down everything else
        # (decoding, MQTT, another engine) for little gain here; measured with `inspector bench`
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            # the checked bytes are run; TensorRT's provider is given the path, by which it names its cached engines (one
            # folder per content: trt_cache)
            self.session = _session(ort, path, options, providers, wanted, None if wanted == PROVIDERS["tensorrt"] else data)
        except InspectorError:
            if made is not None:  # onnxruntime-gpu lists TensorRT even where libnvinfer is missing
                shutil.rmtree(made, ignore_errors=True)
            raise
        embedded = export_manifest.from_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        manifest = export_manifest.resolve(path, sidecar, embedded)
        graph_input = self.session.get_inputs()[0]
        export_manifest.check_input_shape(manifest, graph_input.shape, path)
        self.input_name = graph_input.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()
        self.meta = meta_from_export(manifest, path, f"onnxruntime:{self.providers[0]}:{manifest['kind']}")
        self.warmup()

    def infer(self, batch: np.ndarray) -> HeadOutput:
        x = check_batch(batch, self.meta)
        return split_outputs(self.session.run(self.output_names, {self.input_name: x}))

    def warmup(self) -> None:
        self.infer(np.zeros((1, 3, *self.meta.input_size), dtype=np.float32))

    def close(self) -> None:
        self.session = None

    def __reduce__(self) -> tuple:
        # an onnxruntime session does not pickle: an Inspector sent to a multiprocessing worker was a TypeError naming
        # InferenceSession; the worker opens the same file again, as a checkpoint's Inspector carries its weights along
        return _reopened, (*self._opened, self.meta.sha256)


def _reopened(path: str, device: str, threads: int | None, sha256: str) -> OnnxEngine:
    """The OnnxEngine of a pickled one, in another process: its model file opened again, refused if it has changed."""
    engine = OnnxEngine(path, device=device, threads=threads)
    if engine.meta.sha256 != sha256:
        raise InspectorError(f"model {path}: exported again since the Inspector sent to this process loaded it; "
                             "load it in the worker (Inspector.load) or send the Inspector again")
    return engine
