"""ONNX graph surgery shared by the FP16 and INT8 exporters.

Regions come from the module each node was traced in (torch's exporter records it in the node's
`pkg.torch.onnx.name_scopes` metadata): nodes of `InspectorNet.backbone` may run in low precision;
everything else (input standardisation, the head's distances, whitening, blur, fusion, any future
branch) stays float32, whatever ops it holds. Nodes without scope metadata also stay float32.
"""

from __future__ import annotations

import ast
from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LOW_PRECISION_SCOPE = "backbone"  # the InspectorNet attribute whose nodes may be quantised / cast to fp16
COMPUTE_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
# inputs that ONNX requires in float32 whatever the data type (Resize: roi, scales)
ALWAYS_FLOAT_INPUTS = {"Resize": (1, 2)}


def node_scope(node: onnx.NodeProto) -> list[str]:
    """Module path the node was traced in, e.g. ['', 'backbone', 'backbone.blocks.0', ...]; [] if unknown."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                return list(ast.literal_eval(prop.value))
            except (ValueError, SyntaxError):
                return []
    return []


def low_precision_nodes(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if node_scope(n)[1:2] == [LOW_PRECISION_SCOPE]]


def float_nodes(model: onnx.ModelProto) -> set[str]:
    """Nodes that must stay float32: all but the backbone's."""
    low = set(low_precision_nodes(model))
    return {n.name for n in model.graph.node if n.name not in low}


def backbone_stages(model: onnx.ModelProto) -> list[tuple[str, list[str]]]:
    """The backbone's sub-modules in execution order, with their nodes; only stages that hold compute ops."""
    stages: dict[str, list[str]] = {}
    compute: set[str] = set()
    for n in model.graph.node:
        scope = node_scope(n)
        if scope[1:2] != [LOW_PRECISION_SCOPE]:
            continue
        stage = scope[2] if len(scope) > 3 else scope[1]
        stages.setdefault(stage, []).append(n.name)
        if n.op_type in COMPUTE_OPS:
            compute.add(stage)
    return [(name, nodes) for name, nodes in stages.items() if name in compute]


def _consumers(model: onnx.ModelProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    users: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for n in model.graph.node:
        for i, x in enumerate(n.input):
            users[x].append((n, i))
    return users


def _output_axis(name: str, users: dict[str, list[tuple[onnx.NodeProto, int]]]) -> int | None:
    """Axis of an initializer that indexes its consumer's output channels (per-channel scales go along it)."""
    axes = set()
    for node, i in users.get(name, []):
        if node.op_type in ("Conv", "ConvTranspose") and i == 1:
            axes.add(0 if node.op_type == "Conv" else 1)
        elif node.op_type == "MatMul" and i == 1:
            axes.add(-1)
        elif node.op_type == "Gemm" and i == 1:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axes.add(0 if trans_b else -1)
        elif node.op_type == "Transpose" and i == 0:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            inner = {_output_axis(out, users) for out in node.output}
            if perm is None or len(inner) != 1 or None in inner:
                return None
            axes.add(perm[inner.pop()])
        else:
            return None
    return axes.pop() if len(axes) == 1 else None


def compact_initializers(model: onnx.ModelProto, nodes: set[str], to: str, min_elements: int = 16384) -> list[dict]:
    """Store big float32 initializers read only by `nodes` as int8 (symmetric, one scale per output channel,
    then DequantizeLinear) or float16 (then Cast): smaller files, while the ops still compute in float32.

    Returns what was compacted (name, shape, storage, max abs error)."""
    users = _consumers(model)
    graph_inputs = {i.name for i in model.graph.input}
    done, keep, new_nodes = [], [], []
    for init in model.graph.initializer:
        readers = users.get(init.name, [])
        if (init.data_type != TensorProto.FLOAT or np.prod(init.dims) < min_elements or init.name in graph_inputs
                or not readers or any(n.name not in nodes for n, _ in readers)):
            keep.append(init)
            continue
        w = numpy_helper.to_array(init)
        stored = f"{init.name}_{to}"
        if to == "int8":
            axis = _output_axis(init.name, users)
            axis = None if axis is None else axis % w.ndim
            reduce = tuple(d for d in range(w.ndim) if d != axis) if axis is not None else None
            scale = np.maximum(np.abs(w).max(axis=reduce), 1e-12) / 127.0
            shape = [-1 if d == axis else 1 for d in range(w.ndim)] if axis is not None else []
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            keep += [numpy_helper.from_array(q, stored), numpy_helper.from_array(scale.astype(np.float32), stored + "_scale")]
            attrs = {"axis": axis} if axis is not None else {}
            new_nodes.append(helper.make_node("DequantizeLinear", [stored, stored + "_scale"], [init.name], name=f"{stored}_dequantize", **attrs))
            err = float(np.abs(q.astype(np.float32) * scale.reshape(shape) - w).max())
        elif to == "float16":
            h = w.astype(np.float16)
            keep.append(numpy_helper.from_array(h, stored))
            new_nodes.append(helper.make_node("Cast", [stored], [init.name], name=f"{stored}_cast", to=TensorProto.FLOAT))
            err = float(np.abs(h.astype(np.float32) - w).max())
        else:
            raise ValueError(f"unknown storage {to!r}")
        done.append({"name": init.name, "shape": list(w.shape), "storage": to, "max_abs_error": err})
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    nodes_now = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes + nodes_now)
    return done


def to_float16(model: onnx.ModelProto, keep_float: set[str]) -> onnx.ModelProto:
    """Cast every node not in `keep_float` to float16, with Casts at each boundary between the two regions.

    Unlike a whole-graph converter, values passed between two float32 nodes are never rounded to float16.
    Graph inputs and outputs stay float32.
    """
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    inits = {i.name: i for i in g.initializer}
    half = [n for n in g.node if n.name not in keep_float]
    half_out = {o for n in half for o in n.output if types.get(o) == TensorProto.FLOAT}
    # graph outputs computed in fp16: the node writes a renamed tensor, a final Cast restores the name
    renamed = {o.name: o.name + "_fp16" for o in g.output if o.name in half_out}
    for n in g.node:
        n.input[:] = [renamed.get(x, x) for x in n.input]
        n.output[:] = [renamed.get(x, x) for x in n.output]
    half_out = {renamed.get(x, x) for x in half_out}

    nodes, casts, half_inits = [], {}, {}

    def cast(name: str, to: int) -> str:
        if (name, to) not in casts:
            out = f"{name}_to_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=out + "_cast", to=to))
            casts[name, to] = out
        return casts[name, to]

    def half_init(name: str) -> str:
        if name not in half_inits:
            arr = numpy_helper.to_array(inits[name]).astype(np.float16)
            g.initializer.append(numpy_helper.from_array(arr, name + "_fp16"))
            half_inits[name] = name + "_fp16"
        return half_inits[name]

    for n in list(g.node):
        is_half = n.name not in keep_float
        for i, x in enumerate(n.input):
            if not x:
                continue
            if not is_half or i in ALWAYS_FLOAT_INPUTS.get(n.op_type, ()):
                if x in half_out:
                    n.input[i] = cast(x, TensorProto.FLOAT)
            elif x in inits:
                if inits[x].data_type == TensorProto.FLOAT:
                    n.input[i] = half_init(x)
            elif types.get(x) == TensorProto.FLOAT and x not in half_out:
                n.input[i] = cast(x, TensorProto.FLOAT16)
        if is_half:
            _attributes_to_float16(n)
        nodes.append(n)
    for old, new in renamed.items():
        nodes.append(helper.make_node("Cast", [new], [old], name=new + "_cast", to=TensorProto.FLOAT))
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused_initializers(model)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _attributes_to_float16(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
            attr.i = TensorProto.FLOAT16
        elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(attr.t).astype(np.float16)
            attr.t.CopyFrom(numpy_helper.from_array(arr, attr.t.name))


def split_reductions(model: onnx.ModelProto) -> int:
    """Rewrite each ReduceMean/ReduceSum over several axes as a chain of one-axis reductions (same value).

    onnxruntime sums a multi-axis reduction in one float32 pass; over a whole image (3 x 256 x 256) its
    rounding error reaches 1e-5 relative, which per-image standardisation then amplifies into visible
    score differences. Chained one-axis sums (at most a few hundred terms each) match torch.
    Returns the number of nodes rewritten.
    """
    inits = {i.name: i for i in model.graph.initializer}
    nodes, rewritten = [], 0
    for n in model.graph.node:
        axes = None
        if n.op_type in ("ReduceMean", "ReduceSum") and len(n.input) > 1 and n.input[1] in inits:
            axes = [int(a) for a in numpy_helper.to_array(inits[n.input[1]]).ravel()]
        if axes is None or len(axes) < 2 or min(axes) < 0:
            nodes.append(n)
            continue
        keepdims = next((a.i for a in n.attribute if a.name == "keepdims"), 1)
        x = n.input[0]
        for k, axis in enumerate(sorted(axes, reverse=True)):  # innermost first; keeps lower axis numbers valid
            name = f"{n.name}_axis{axis}"
            model.graph.initializer.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), name + "_axes"))
            out = n.output[0] if k == len(axes) - 1 else name + "_out"
            step = helper.make_node(n.op_type, [x, name + "_axes"], [out], name=name, keepdims=keepdims)
            step.metadata_props.extend(n.metadata_props)
            nodes.append(step)
            x = out
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _drop_unused_initializers(model)
    return rewritten


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {x for n in model.graph.node for x in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
