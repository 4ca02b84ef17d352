"""FP16 ONNX: the backbone in float16, the head (distances, whitening, blur, fusion) in float32.

Inputs and outputs stay float32. The head's memory bank and whitening matrix are stored as float16 and
cast back to float32 in the graph, so the file is about half the size while distances are still computed
in float32 (|x|^2 - 2 x.m + |m|^2 cancels badly in float16).
"""

from __future__ import annotations

import onnx

from exporters.graph import compact_initializers, float_nodes, to_float16


def _transposed_matmuls(model: onnx.ModelProto) -> set[str]:
    """MatMuls fed by a Transpose (a ViT's attention): onnxruntime 1.32's NchwcTransformer segfaults while
    opening a graph where both are float16, so these stay float32 (EfficientNet has none)."""
    transposed = {o for n in model.graph.node if n.op_type == "Transpose" for o in n.output}
    return {n.name for n in model.graph.node if n.op_type == "MatMul" and transposed.intersection(n.input)}


def convert_fp16(fp32: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    keep = float_nodes(fp32) | _transposed_matmuls(fp32)
    model = to_float16(fp32, keep)
    compacted = compact_initializers(model, keep, "float16")
    return model, {"compute": "backbone float16, other nodes float32", "float32_nodes": len(keep), "compacted": compacted}
