"""FP16 ONNX: the backbone in float16, the head (distances, whitening, blur, fusion) in float32.

Inputs and outputs stay float32. The head's memory bank and whitening matrix are stored as float16 and
cast back to float32 in the graph, so the file is about half the size while distances are still computed
in float32 (|x|^2 - 2 x.m + |m|^2 cancels badly in float16).
"""

from __future__ import annotations

import onnx

from exporters.graph import compact_initializers, float_nodes, to_float16


def convert_fp16(fp32: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    keep = float_nodes(fp32)
    model = to_float16(fp32, keep)
    compacted = compact_initializers(model, keep, "float16")
    return model, {"compute": "backbone float16, other nodes float32", "float32_nodes": len(keep), "compacted": compacted}
