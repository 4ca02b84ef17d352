"""INT8 ONNX: static QDQ quantisation (per-channel int8 weights, uint8 activations) of the backbone,
calibrated on good images, with a self-check that scores stay where float32 puts them.

- The head stays float32: squared distances |x|^2 - 2 x.m + |m|^2 cancel, so int8 there would move every
  score. Its big buffers (memory bank, whitening matrix) are *stored* as int8 with one scale per output
  channel and dequantised in the graph, which keeps the file small; the error this adds is reported.
- The first backbone stages see the raw image and are the most sensitive to 8-bit activations. The
  quantiser starts with the whole backbone in int8 and, while the mean score change on held-out good
  images exceeds the tolerance, keeps one more stage (from the input side) in float32. Calibration
  ranges are computed once and reused for each try.
- On x86 CPUs without VNNI, onnxruntime multiplies uint8 activations by int8 weights with an instruction
  whose 16-bit sums saturate; there full-range weights moved scores by up to 1.7 units. Each stage count
  is therefore tried with full-range weights, then with 7-bit ones (`reduce_range`), which cannot saturate.
  The drift is measured on the machine that exports: a model quantised at full range on a VNNI CPU may
  drift on one without VNNI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import onnx

from exporters import MIN_QUANTISER, quantiser_runs
from exporters.graph import backbone_stages, compact_initializers, float_nodes
from model.errors import InspectorError
from model.folders import scratch_folder

# mean |score change| on held-out good images, in score units (one unit = the spread of good-image scores)
DRIFT_TOLERANCE = 0.25
MAX_FLOAT_STAGES = 0.5  # give up (rather than ship a mostly-float "int8" model) past this share of stages


@dataclass
class Int8Result:
    model: onnx.ModelProto
    float_stages: list[str]
    drift: float
    compacted: list[dict]
    tolerance: float
    tries: list[dict] = field(default_factory=list)

    def describe(self) -> dict:
        return {"compute": "backbone int8 (QDQ, per-channel weights)" + (" except float32 stages" if self.float_stages else "") + "; head float32",
                "weight_bits": self.tries[-1]["weight_bits"], "float32_stages": self.float_stages, "holdout_mean_abs_score_change": round(self.drift, 5),
                "drift_tolerance": self.tolerance, "tries": self.tries, "compacted": self.compacted}


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed images, 8 at a time."""

    def __init__(self, images: np.ndarray) -> None:
        self.batches = [images[i : i + 8] for i in range(0, len(images), 8)]
        self.i = 0

    def get_next(self) -> dict | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {"image": self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def _scores(model: onnx.ModelProto | str, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    src = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["score"], {"image": images[i : i + 8]})[0] for i in range(0, len(images), 8)])


def check_quantiser() -> None:
    """Refuse an INT8 export, before the slow trace, where the installed onnxruntime cannot make one."""
    import onnxruntime

    if not quantiser_runs(onnxruntime.__version__):
        need = ".".join(map(str, MIN_QUANTISER))
        raise InspectorError(f"--format onnx-int8: onnxruntime {onnxruntime.__version__} makes INT8 graphs it cannot run; install "
                             f"onnxruntime {need} or later (pip install -U onnxruntime; Python 3.11 or later), or use onnx-fp16")


def quantize_int8(fp32: onnx.ModelProto, calib: np.ndarray, holdout: np.ndarray, tolerance: float = DRIFT_TOLERANCE,
                  progress=None) -> Int8Result:
    """Quantise `fp32` (from exporters.onnx_export) with calibration images; check on held-out good images."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    keep = float_nodes(fp32)
    stages = backbone_stages(fp32)
    if not stages:
        raise InspectorError("INT8: the graph has no backbone nodes to quantise (was it exported by exporters.onnx_export?)")
    limit = max(1, int(len(stages) * MAX_FLOAT_STAGES))
    reference = _scores(fp32, holdout)
    tries = []
    with scratch_folder("inspector-int8-") as tmp:
        src, out, cache = tmp / "fp32.onnx", tmp / "int8.onnx", tmp / "ranges.json"
        onnx.save(fp32, src)
        for k in range(limit + 1):
            exclude = keep | {n for _, nodes in stages[:k] for n in nodes}
            float_stages = [name for name, _ in stages[:k]]
            for reduce_range in (False, True):
                logging.disable(logging.WARNING)  # the quantiser logs advice on the root logger; library code stays quiet
                try:
                    quantize_static(str(src), str(out), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                    nodes_to_exclude=sorted(exclude), calibrate_method=CalibrationMethod.MinMax,
                                    calibration_cache_path=str(cache))
                finally:
                    logging.disable(logging.NOTSET)
                model = onnx.load(str(out))
                compacted = compact_initializers(model, exclude, "int8")
                drift = float(np.mean(np.abs(_scores(model, holdout) - reference)))
                tries.append({"float32_stages": float_stages, "weight_bits": 7 if reduce_range else 8,
                              "holdout_mean_abs_score_change": round(drift, 5)})
                if progress:
                    progress(tries[-1])
                if drift <= tolerance:
                    return Int8Result(model, float_stages, drift, compacted, tolerance, tries)
    # the least drift of any try: the last one (7-bit weights) may drift more than the try before it, and was said as
    # if it were the closest the search came
    best = min(tries, key=lambda t: t["holdout_mean_abs_score_change"])
    raise InspectorError(f"INT8: scores still move by {best['holdout_mean_abs_score_change']:.3f} at best on held-out good images "
                         f"(tolerance {tolerance}), with up to {limit} of {len(stages)} backbone stages in float32; use --format onnx-fp16 for this model")
