"""InspectorNet -> one float32 ONNX graph: normalisation, backbone and head; dynamic batch axis.

Uses torch's maintained exporter (torch.export + onnxscript). The example batch has 2 images: a batch-1
example lets the exporter specialise the batch size to 1 in places (attention layers among them).
Multi-axis mean/sum reductions are then split into one-axis chains (exporters.graph.split_reductions),
which onnxruntime computes as accurately as torch. Nothing depends on which layers the head holds: the
graph is accepted only when it reproduces torch (`check_parity` on random inputs at batch 1 and 3 here;
on real images with `inspector export --verify`).
"""

from __future__ import annotations

import io
import json
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import onnx
import torch

from exporters.graph import split_reductions
from exporters.manifest import METADATA_KEY
from model.errors import InspectorError

OPSET = 18
OUTPUT_NAMES = ("score", "amap", "type_probs")  # the third only when the model names defect types
EXPORT_BATCH = 2


def output_names(net: torch.nn.Module) -> list[str]:
    """Names of the graph outputs: as many as the model returns (2, or 3 with defect-type probabilities)."""
    h, w = net.config.input_size
    with torch.no_grad():
        out = net(torch.zeros(1, 3, h, w))
    if not isinstance(out, (tuple, list)) or not 2 <= len(out) <= len(OUTPUT_NAMES):
        raise InspectorError(f"model returns {type(out).__name__}; the exporter expects (score, amap[, type_probs])")
    return list(OUTPUT_NAMES[: len(out)])


def toolchain() -> dict[str, str]:
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": str(OPSET)}


def export_onnx(net: torch.nn.Module) -> onnx.ModelProto:
    """Trace `net` (eval mode, CPU) to an ONNX model with a dynamic batch axis."""
    net = net.eval().cpu()
    names = output_names(net)
    h, w = net.config.input_size
    example = torch.rand(EXPORT_BATCH, 3, h, w, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):  # the exporter prints progress
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), input_names=["image"], output_names=names, opset_version=OPSET,
                                        dynamo=True, dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; one line is what the user needs
        cause = exc
        while cause is not None:  # Ctrl-C inside the tracer comes back wrapped in the exporter's own error
            if isinstance(cause, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            cause = cause.__cause__ or cause.__context__
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # the exporter colours its messages even into a file
        raise InspectorError(f"ONNX export of {net.config.backbone} failed: {text.splitlines()[0] if text else exc.__class__.__name__}") from None
    model = program.model_proto
    split_reductions(model)
    return model


def embed_manifest(model: onnx.ModelProto, manifest: dict) -> None:
    """Write the export manifest into the model's metadata_props, replacing the tracer's per-node notes
    (stack traces with local paths, ~0.4 MB; the region split needs them only before this step)."""
    for node in model.graph.node:
        del node.metadata_props[:]
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    # the checkpoint's path stays in the sidecar only: the same checkpoint exported from another folder gives the same bytes
    source = {k: v for k, v in manifest.get("source", {}).items() if k != "checkpoint"}
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps({**manifest, "source": source}, sort_keys=True))
    model.producer_name, model.doc_string = "inspector", "anomaly score, map (and defect types); thresholds are in the manifest"


def check_parity(net: torch.nn.Module, model: onnx.ModelProto, batches: tuple[int, ...] = (1, 3), rtol: float = 1e-4) -> float:
    """Run torch and ONNX Runtime (CPU) on the same random inputs; return the worst relative difference."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    h, w = net.config.input_size
    worst = 0.0
    for b in batches:
        x = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = [t.numpy() for t in net(x)]
        got = session.run(None, {"image": x.numpy()})
        if len(got) != len(ref):
            raise InspectorError(f"ONNX export: the graph has {len(got)} outputs, torch returns {len(ref)}")
        for name, r, g in zip(OUTPUT_NAMES[: len(ref)], ref, got, strict=True):
            if r.shape != g.shape:
                raise InspectorError(f"ONNX export: output {name} has shape {list(g.shape)} at batch {b}, torch gives {list(r.shape)}")
            worst = max(worst, float(np.max(np.abs(r - g) / np.maximum(np.abs(r), 1.0))))
    if worst > rtol:
        raise InspectorError(f"ONNX export disagrees with torch by {worst:.2e} (relative) on random inputs; "
                             "this model holds an op the exporter translates wrongly, please report it")
    return worst
