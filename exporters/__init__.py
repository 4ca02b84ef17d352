"""Model -> ONNX / INT8 / FP16 / TensorRT, with parity checks."""

from __future__ import annotations

import re

# onnxruntime before 1.28 quantises this graph into one it refuses (a QuantizeLinear's int8 output where uint8 is expected:
# 1.19, 1.23 and 1.27 were tried); 1.28 has no wheels for Python 3.10
MIN_QUANTISER = (1, 28)


def quantiser_runs(version: str) -> bool:
    """Whether onnxruntime `version` makes INT8 graphs it can run."""
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2]) >= MIN_QUANTISER
