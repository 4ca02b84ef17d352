"""Export: ONNX FP32 / FP16 / INT8 of a real (tiny) model against torch, dynamic batch, manifests, graph surgery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from exporters.manifest import METADATA_KEY, sidecar_path
from model.framing import Framing
from tests.exporters.helpers import INT8_TOLERANCE, exported
from tests.synthetic import defect_image, good_image


@pytest.fixture(scope="session")
def exports(tiny_ckpt, tmp_path_factory):
    return exported(tiny_ckpt, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="session")
def batch8() -> np.ndarray:
    """4 good and 4 defect images, preprocessed as in serving (64 px)."""
    from model.images import preprocess

    images = [good_image(900 + i) for i in range(4)] + [defect_image(900 + i)[0] for i in range(4)]
    return np.stack([preprocess(im, (64, 64)) for im in images])


@pytest.fixture(scope="session")
def torch_out(tiny_ckpt, batch8):
    from inspector.engines import open_engine

    return open_engine(tiny_ckpt).infer(batch8)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0)))


def test_fp32_matches_torch_at_batch_1_and_8(exports, batch8, torch_out):
    from inspector.engines import open_engine

    engine = open_engine(exports["onnx"])
    assert engine.meta.runtime == "onnxruntime:CPUExecutionProvider:onnx"
    out8 = engine.infer(batch8)
    assert out8.score.shape == (8,) and out8.amap.shape == (8, 64, 64)
    assert _rel(torch_out.score, out8.score) < 1e-4
    assert _rel(torch_out.amap, out8.amap) < 1e-3
    for i in (0, 5):  # batch 1 gives the same as the same image inside a batch of 8
        out1 = engine.infer(batch8[i : i + 1])
        assert _rel(torch_out.score[i : i + 1], out1.score) < 1e-4
    dim0 = onnx.load(str(exports["onnx"])).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value  # a symbolic (dynamic) batch axis


def test_fp32_matches_torch_on_a_blank_frame(tiny_ckpt, exports):
    """A blank frame of grey 100 (a missing part on a plain belt, a driver's placeholder frame) scored 2.2e-4 apart
    (relative) in torch and the float32 export of a 128 px magnetic-tile model, past verify's 1e-4, and `export --verify`
    failed a sound export: the per-image standardisation magnified the rounding of the frame's mean, which each runtime
    sums otherwise, into noise that differed with the grey level too. A blank frame is now one input at any grey."""
    from inspector.engines import open_engine

    blank = np.stack([np.full((3, 64, 64), v / 255, np.float32) for v in range(256)])
    ours, theirs = open_engine(tiny_ckpt).infer(blank), open_engine(exports["onnx"]).infer(blank)
    assert _rel(ours.score, np.full_like(ours.score, ours.score[0])) < 1e-6
    assert _rel(ours.score, theirs.score) < 1e-5 and _rel(ours.amap, theirs.amap) < 1e-4


@pytest.mark.parametrize("kind", ["onnx-fp16", pytest.param("onnx-int8", marks=pytest.mark.int8)])
def test_reduced_precision_keeps_scores_and_ranking(kind, exports, batch8, torch_out):
    from inspector.engines import open_engine

    engine = open_engine(exports[kind])
    out = engine.infer(batch8)
    # mean score change in score units (good-image spread): FP16 moves it 0.005, INT8 0.66, under the export's looser bound
    tolerance = INT8_TOLERANCE if kind == "onnx-int8" else 0.05
    assert np.abs(out.score - torch_out.score).mean() < tolerance
    threshold = engine.meta.image_threshold  # and every part keeps its verdict at the stored threshold
    assert ((out.score >= threshold) == (torch_out.score >= threshold)).all() and (torch_out.score >= threshold).sum() == 4
    # planted defects still outrank good parts, as with torch
    assert out.score[4:].min() > out.score[:4].max()
    assert torch_out.score[4:].min() > torch_out.score[:4].max()


def test_fp16_graph_keeps_head_in_float32(exports):
    model = onnx.load(str(exports["onnx-fp16"]))
    g = model.graph
    assert g.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in g.output)
    types = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    convs = [n for n in g.node if n.op_type == "Conv" and not n.name.endswith("_cast")]
    backbone = [n for n in convs if any(i.startswith("backbone.") for i in n.input)]
    assert len(backbone) > 20 and all(types.get(n.output[0]) == TensorProto.FLOAT16 for n in backbone)
    # the head has no convolution: its upsampling and blur are matrix products (model/head.py `to_map`)
    assert len(convs) == len(backbone)
    for n in g.node:  # every matmul (patch distances, whitening, the map's upsampling and blur) runs in float32
        if n.op_type == "MatMul":
            assert types.get(n.output[0]) == TensorProto.FLOAT, n.name


@pytest.mark.int8
def test_int8_graph_is_quantised_and_small(exports):
    model = onnx.load(str(exports["onnx-int8"]))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 10
    assert not [n for n in model.graph.node if n.op_type in ("MatMulInteger", "QLinearMatMul")]
    fp32_bytes = exports["onnx"].stat().st_size
    assert exports["onnx-int8"].stat().st_size < 0.4 * fp32_bytes
    info = json.loads(sidecar_path(exports["onnx-int8"]).read_text())["precision"]
    assert info["holdout_mean_abs_score_change"] <= info["drift_tolerance"]
    assert {c["name"] for c in info["compacted"]} >= {"head.bank"}  # stored as int8, computed in float32
    # "except float32 stages" only where some are (it was said of none)
    assert ("except float32 stages" in info["compute"]) == bool(info["float32_stages"])


@pytest.mark.int8
def test_int8_tries_7_bit_weights_where_full_range_drifts(tiny_ckpt, batch8, monkeypatch):
    """Full-range weights saturate on x86 CPUs without VNNI: the quantiser must then try 7-bit ones before
    keeping more stages in float32."""
    import onnxruntime.quantization as ortq

    from exporters import quantize
    from exporters.onnx_export import export_onnx
    from model.checkpoint import load_checkpoint

    fp32 = export_onnx(load_checkpoint(tiny_ckpt)[0])
    asked, real_quantize, real_scores = [], ortq.quantize_static, quantize._scores

    def spy(*args, **kwargs):
        asked.append(kwargs["reduce_range"])
        return real_quantize(*args, **kwargs)

    def scores(model, images):  # as on such a CPU: the full-range model drifts far
        return real_scores(model, images) + (5.0 if asked and not asked[-1] else 0.0)

    monkeypatch.setattr(ortq, "quantize_static", spy)
    monkeypatch.setattr(quantize, "_scores", scores)
    result = quantize.quantize_int8(fp32, batch8, batch8, INT8_TOLERANCE)
    assert asked == [False, True]
    assert [(t["float32_stages"], t["weight_bits"]) for t in result.tries] == [([], 8), ([], 7)]
    assert result.float_stages == [] and result.describe()["weight_bits"] == 7


def test_manifest_is_embedded_and_in_sidecar(exports, tiny_ckpt):
    ckpt_manifest = json.loads((tiny_ckpt / "manifest.json").read_text())
    for kind, path in exports.items():
        side = json.loads(sidecar_path(path).read_text())
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        embedded = json.loads(props[METADATA_KEY])
        assert side["kind"] == embedded["kind"] == kind
        assert side["thresholds"] == embedded["thresholds"] == ckpt_manifest["thresholds"]
        assert embedded["source"]["weights_sha256"] == ckpt_manifest["files"]["model.safetensors"]
        assert side["input"]["shape"] == ["batch", 3, 64, 64]
        assert side["input"]["normalisation"]["mean"] == [0.5, 0.5, 0.5]
        assert side["file_bytes"] == path.stat().st_size and "file_sha256" not in embedded
        # the tracer's per-node notes (local paths, stack traces) are not shipped
        assert not any(n.metadata_props for n in onnx.load(str(path)).graph.node)


def test_the_same_checkpoint_exported_from_another_folder_gives_the_same_bytes(tiny_ckpt, exports, tmp_path):
    """Two stations exporting one checkpoint from their own folders got two ONNX files (another sha256 in every
    result): the embedded manifest held the checkpoint's absolute path. Only the sidecar keeps it now."""
    import shutil

    from exporters.export import export
    from inspector.engines import open_engine

    moved = shutil.copytree(tiny_ckpt, tmp_path / "elsewhere" / "station-2.ckpt")
    again = export(moved, ["onnx"], tmp_path / "out")[0].path
    assert again.read_bytes() == exports["onnx"].read_bytes()
    assert json.loads(sidecar_path(again).read_text())["source"]["checkpoint"] == str(moved.resolve())
    open_engine(again)  # the sidecar, which names the path, still agrees with the embedded copy


def test_a_sidecar_whose_input_was_edited_is_refused(exports, tmp_path):
    """The crop, locate and turn in `input` repeat net's, which the runtime reads: an edit there changed nothing and
    passed; now it is caught like one to net. An export without them (from before --roi) loads as it did."""
    from exporters.manifest import write_sidecar
    from exporters.onnx_export import embed_manifest
    from inspector.api import Inspector
    from model.errors import InspectorError
    from tests.exporters.helpers import copy_export

    model = copy_export(exports["onnx"], tmp_path / "e")
    side = json.loads(sidecar_path(model).read_text())
    for key, value in (("crop", [0, 0, 32, 32]), ("locate", 8), ("turn", 5.0)):
        sidecar_path(model).write_text(json.dumps({**side, "input": {**side["input"], key: value}}))
        with pytest.raises(InspectorError, match="model.onnx.json describes another model \\('input' differs"):
            Inspector.load(model)
    older = {**side, "input": {k: v for k, v in side["input"].items() if k not in ("crop", "locate", "turn")}}
    graph = onnx.load(str(model))
    embed_manifest(graph, {k: v for k, v in older.items() if k not in ("file", "file_sha256", "file_bytes")})
    write_sidecar(model, older, graph.SerializeToString())
    assert Inspector.load(model).engine.meta.framing.roi is None


@pytest.mark.int8
def test_threshold_calibrates_an_export_on_the_scores_it_carries(capsys, exports, tiny_ckpt, tmp_path):
    """--far and --escape on an export use the calibration scores its manifest carries (its checkpoint's, copied at
    export), as its checkpoint would, and write the result where --set does; it said the scores stayed in the checkpoint."""
    import shutil

    from inspector.api import Inspector
    from tests.cli import assert_one_line_error, cli
    from tests.exporters.helpers import copy_export

    model = copy_export(exports["onnx"], tmp_path / "e")
    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "c.ckpt")
    for target in (("--far", "0.25"), ("--escape", "0.5")):
        rc, out, err = cli(capsys, "threshold", model, *target, "--json")
        assert rc == 0, err
        got = json.loads(out)
        want = json.loads(cli(capsys, "threshold", ckpt, *target, "--json")[1])
        assert got["previous"] is not None and got["thresholds"] == want["thresholds"] != got["previous"]
        for key in ("policy", "far_on_calibration", "escape_on_calibration", "note"):
            assert got[key] == want[key], key
        side = json.loads(sidecar_path(model).read_text())
        checkpoint = json.loads((ckpt / "manifest.json").read_text())
        assert side["thresholds"] == checkpoint["thresholds"] and side["calibration"] == checkpoint["calibration"]
    assert Inspector.load(model).image_threshold == got["thresholds"]["image"]  # the sidecar still loads, with it
    rc, out, _ = cli(capsys, "threshold", model, "--far", "0.25")
    assert rc == 0 and "good calibration images: false alarms" in out
    shown, of_ckpt = (json.loads(cli(capsys, "threshold", m, "--json")[1]) for m in (model, ckpt))  # shown alike
    assert set(shown) - {"export"} == set(of_ckpt) - {"checkpoint"} and shown["far_on_calibration"] is not None
    assert "good calibration images: false alarms" in cli(capsys, "threshold", model)[1]  # the headline alone before
    assert "rates_from" not in shown  # float32: scores as its checkpoint's
    int8 = copy_export(exports["onnx-int8"], tmp_path / "i")  # its scores are not its checkpoint's: the rates say whose they are
    rc, out, _ = cli(capsys, "threshold", int8, "--escape", "0.5")
    assert rc == 0 and "note: these rates are its checkpoint's scores, copied at export; this onnx-int8 export scores otherwise" in out
    # an export made before its manifest carried the scores
    sidecar_path(model).write_text(json.dumps({k: v for k, v in side.items() if k != "calibration_scores"}))
    rc, _, err = cli(capsys, "threshold", model, "--far", "0.1")
    assert_one_line_error(rc, err, "carries no calibration scores", "export it again", f"inspector threshold {tiny_ckpt} --far 0.1")


def test_eval_of_an_export_says_where_its_thresholds_were_calibrated(exports, tiny_ckpt, tiny_data, capsys):
    from tests.cli import cli

    reports = {}
    for name, model in (("checkpoint", tiny_ckpt), ("onnx", exports["onnx"])):
        rc, out, err = cli(capsys, "eval", model, tiny_data, "--json", "--no-overlap")
        assert rc == 0, err
        reports[name] = json.loads(out)
    for key in ("at_threshold", "at_pixel_threshold"):  # the export said "not calibrated here" and dropped the held-out rates
        assert reports["onnx"][key]["calibrated_on_these_images"] and reports["onnx"][key]["held_out"] == reports["checkpoint"][key]["held_out"]


def test_the_source_checkpoint_is_recorded_absolute(tiny_ckpt, monkeypatch):
    from exporters.manifest import build_manifest

    monkeypatch.chdir(tiny_ckpt.parent)  # exported as `inspector export <name> ...` from its folder
    manifest = build_manifest("onnx", Path(tiny_ckpt.name), json.loads((tiny_ckpt / "manifest.json").read_text()), None, ["score"], {})
    assert manifest["source"]["checkpoint"] == str(tiny_ckpt.resolve())  # was the relative name: `bench` elsewhere lost it


def test_three_outputs_are_exported_generically(tiny_ckpt):
    """A model that also returns defect-type probabilities exports a third output, checked against torch."""
    from exporters.onnx_export import check_parity, export_onnx, output_names
    from model.checkpoint import load_checkpoint

    net, _ = load_checkpoint(tiny_ckpt)

    class WithTypes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.config = net, net.config
            self.classifier = torch.nn.Linear(3, 4)

        def forward(self, x):
            score, amap = self.inner(x)
            feats = torch.stack([score, amap.mean(dim=(1, 2)), amap.amax(dim=(1, 2))], dim=1)
            return score, amap, self.classifier(feats).softmax(dim=1)

    model = WithTypes().eval()
    assert output_names(model) == ["score", "amap", "type_probs"]
    graph = export_onnx(model)
    assert [o.name for o in graph.graph.output] == ["score", "amap", "type_probs"]
    assert check_parity(model, graph) < 1e-4


def _one_node_model(node, x, y, initializer):
    # IR version 10, not this onnx's newest: an onnxruntime older than onnx refuses newer IR versions
    # (onnx 1.23.1 writes 14, onnxruntime 1.30 reads up to 13; seen on a GPU machine's image)
    return helper.make_model(helper.make_graph([node], "g", [x], [y], [initializer]), opset_imports=[helper.make_opsetid("", 18)],
                             ir_version=10)


def test_split_reductions_is_exact_and_chains_axes():
    from exporters.graph import split_reductions

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    axes = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "axes")
    node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean", keepdims=0)
    model = _one_node_model(node, x, y, axes)
    assert split_reductions(model) == 1
    assert [n.op_type for n in model.graph.node] == ["ReduceMean"] * 3
    import onnxruntime as ort

    data = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": data})[0]
    np.testing.assert_allclose(got, data.mean(axis=(1, 2, 3)), rtol=1e-6)


def test_compact_initializers_scales_per_output_channel():
    from exporters.graph import compact_initializers

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((64, 300)) * np.geomspace(1e-3, 10, 300)).astype(np.float32)  # columns of very different size
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [200, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    model = _one_node_model(node, x, y, numpy_helper.from_array(w, "w"))
    done = compact_initializers(model, {"mm"}, "int8", min_elements=1000)
    assert done and done[0]["name"] == "w"
    import onnxruntime as ort

    data = rng.standard_normal((200, 64)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": data})[0]
    ref = data @ w
    # per-column scales: every output column keeps ~1% accuracy, its 10000x smaller columns included
    rms = lambda a: np.sqrt((a**2).mean(axis=0))  # noqa: E731
    assert np.max(rms(got - ref) / rms(ref)) < 0.02


def test_clip_vit_backbone_exports_with_dynamic_batch():
    """The open_clip ViT backbone (randomly initialised small config: no hub here) exports and matches torch
    at batch 1 and 3 (attention layers must not freeze the batch size of the example)."""
    pytest.importorskip("open_clip")
    from exporters.graph import backbone_stages
    from exporters.onnx_export import check_parity, export_onnx
    from model.net import InspectorNet, NetConfig

    net = InspectorNet(NetConfig(backbone="clip:ViT-S-32:", input_size=(224, 224), grid_stride=32, bank_size=50), load_weights=False)
    torch.manual_seed(0)
    net.head.set_bank(torch.randn(50, net.head.bank.shape[1]))
    graph = export_onnx(net.eval())
    assert check_parity(net, graph, batches=(1, 3)) < 1e-4
    assert any("resblocks" in name for name, _ in backbone_stages(graph))  # INT8/FP16 regions found for ViTs too
    # its FP16 graph opens in onnxruntime with every optimisation on (ORT 1.32's NchwcTransformer segfaulted on
    # a float16 Transpose feeding a MatMul: every CLIP FP16 export crashed the process that loaded it)
    from exporters.fp16 import convert_fp16

    half, _ = convert_fp16(graph)
    path = Path(tempfile.mkdtemp()) / "half.onnx"
    onnx.save(half, path)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    np.save(path.with_suffix(".npy"), x)
    code = ("import sys, numpy as np, onnxruntime as ort; o = ort.SessionOptions(); "
            "o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL; "
            "s = ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider']); "
            "print(s.run(['score'], {'image': np.load(sys.argv[2])})[0][0])")
    run = subprocess.run([sys.executable, "-c", code, str(path), str(path.with_suffix(".npy"))], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.returncode, run.stderr[-500:])
    with torch.no_grad():
        assert abs(float(run.stdout) - float(net(torch.from_numpy(x))[0][0])) < 0.05 * max(1.0, abs(float(run.stdout)))


def test_reference_model_round_trips_and_exports(tiny_data, tmp_path):
    """A model fitted with references (gather of the nearest reference images, shifted minima) saves, loads
    and exports to one ONNX graph that matches torch at batch 1 and 3."""
    from exporters.onnx_export import check_parity, export_onnx
    from model.checkpoint import load_checkpoint, save_checkpoint
    from model.data import load_dataset
    from model.fit import FitOptions, fit

    net, report = fit(load_dataset(tiny_data), FitOptions(input_size=64, references=6, ref_k=3, batch_size=8))
    save_checkpoint(net, tmp_path / "ref.ckpt", {"options": report.options, "training": report.training,
                                                 "calibration": report.calibration, "thresholds": report.thresholds})
    loaded, manifest = load_checkpoint(tmp_path / "ref.ckpt")
    assert manifest["net"]["references"] == 6 and manifest["options"]["references"] == 6
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(net(x), loaded(x), strict=True):
            torch.testing.assert_close(a, b)
    graph = export_onnx(loaded)
    assert {"TopK", "GatherND"} <= {n.op_type for n in graph.graph.node}  # the references are chosen inside the graph
    assert check_parity(loaded, graph) < 1e-4


class _Scripted:
    """An engine that answers the scores it is given, in the order compare() asks for them."""

    def __init__(self, scores, threshold=9.55):
        from types import SimpleNamespace

        self.scores, self.at = np.asarray(scores, dtype=np.float32), 0
        self.meta = SimpleNamespace(input_size=(32, 32), runtime="scripted", framing=Framing(), image_threshold=threshold)

    def infer(self, x):
        from types import SimpleNamespace

        s = self.scores[self.at:self.at + len(x)]
        self.at += len(x)
        return SimpleNamespace(score=s, amap=np.zeros((len(x), 32, 32), np.float32))


def test_verify_allows_one_swapped_pair_on_a_small_test_set(tmp_path):
    from PIL import Image

    from exporters.verify import compare, format_report

    paths = []
    for i in range(28):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(paths[-1])
    labels = np.array([False] * 10 + [True] * 18)  # 180 good/defect pairs: one swap moves the AUROC by 0.0056
    ref = [float(i) for i in range(10)] + [9.5] + [20.0 + i for i in range(17)]
    swapped = ref[:9] + [9.6] + ref[10:]  # the best-scored good image now outscores one defect
    r = compare(_Scripted(ref), _Scripted(swapped), paths, labels, "onnx-fp16")
    assert r["auroc_change"] == pytest.approx(-1 / 180) and r["passed"], r["failures"]  # failed against ±0.005 before
    assert r["verdicts"] == {"threshold": 9.55, "differ": 1, "escapes": 0, "examples": [str(paths[9])]}  # said, though it passes
    assert format_report(r)[-2] == f"  verdicts at threshold 9.5500: 1 of 28 differ (first: {paths[9]})"
    assert compare(_Scripted(ref), _Scripted(ref), paths, labels, "onnx-fp16")["verdicts"]["differ"] == 0
    many = [30.0 + i for i in range(10)] + ref[10:]  # every good image above most defects: a real loss
    r = compare(_Scripted(ref), _Scripted(many), paths, labels, "onnx-fp16")
    assert not r["passed"] and "image AUROC change" in r["failures"][0]


def test_verify_fails_an_export_that_scores_nan(tmp_path):
    from PIL import Image

    from exporters.verify import compare

    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(paths[-1])
    labels = np.array([False] * 3 + [True] * 3)
    ref = [0.0, 1.0, 2.0, 5.0, 6.0, 7.0]
    r = compare(_Scripted(ref), _Scripted(ref[:5] + [float("nan")]), paths, labels, "onnx-fp16")
    assert not r["passed"] and r["failures"][0] == "1 scores and 0 map values are NaN or infinity in the export"  # passed before
    assert r["verdicts"]["differ"] == 1  # NaN FAILs, as decide() fails it
    r = compare(_Scripted(ref), _Scripted(ref[:2] + [float("-inf")] + ref[3:]), paths, labels, "onnx-fp16")
    assert r["verdicts"]["differ"] == 1  # -inf FAILs too (it passed, below every threshold)
    json.dumps(r, allow_nan=False)  # the sidecar stays valid JSON


def test_an_export_removes_the_half_file_of_one_killed_while_writing(tiny_ckpt, tmp_path):
    """SIGKILL (a power cut) while model.onnx was written left `model.onnx.<pid>.tmp`, half the model: the next export
    wrote beside it, and it stayed for good. A temporary file of a process still running is its own, left alone."""
    from exporters.export import export

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has now
    (tmp_path / f"model.onnx.{dead.pid}.tmp").write_bytes(b"\0" * 4096)
    (tmp_path / f"model.onnx.{os.getppid()}.tmp").write_bytes(b"")
    export(tiny_ckpt, "onnx", tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.onnx", "model.onnx.json", f"model.onnx.{os.getppid()}.tmp"}


@pytest.mark.int8
def test_an_int8_export_removes_the_scratch_folder_of_one_killed(tiny_ckpt, tmp_path, monkeypatch):
    """An INT8 export killed while it calibrated (SIGKILL, or SIGTERM: `systemctl stop`, `timeout`) left its scratch
    folder in the temp folder, float32 model and all (a model's size each time), and nothing ever removed it."""
    import tempfile

    from exporters.export import export

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has now
    left, running = tmp_path / "temp" / f"inspector-int8-{dead.pid}-k1ll3d", tmp_path / "temp" / f"inspector-int8-{os.getppid()}-xyz"
    for folder in (left, running):
        folder.mkdir(parents=True)
        (folder / "fp32.onnx").write_bytes(b"\0" * 4096)
    export(tiny_ckpt, "onnx-int8", tmp_path / "out")
    assert sorted((tmp_path / "temp").iterdir()) == [running]  # a running process's own is left alone, and this one's is gone


def test_a_failed_trace_is_one_clean_line_and_ctrl_c_stays_ctrl_c(tiny_ckpt, monkeypatch):
    from exporters.onnx_export import export_onnx
    from model.checkpoint import load_checkpoint
    from model.errors import InspectorError

    net, _ = load_checkpoint(tiny_ckpt)
    with torch.no_grad():  # weights of its own: the test run's cache of traced graphs (tests/conftest.py) must miss
        next(p for p in net.parameters() if p.dtype.is_floating_point).add_(0.5)

    def interrupted(*a, **k):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("\x1b[96mThis is step 2/3\x1b[0m of exporting") from exc

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):  # reported as "ONNX export ... failed" before
        export_onnx(net)
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("\x1b[96mstep 2/3\x1b[0m failed\nmore")))
    with pytest.raises(InspectorError, match=r"failed: step 2/3 failed$"):
        export_onnx(net)


@pytest.mark.int8
def test_an_export_stopped_part_way_names_what_it_wrote(capsys, tiny_ckpt, tmp_path, monkeypatch):
    """The float32 model is written, then INT8 gives up: said in the error and, with --json, as JSON on stdout
    (it was empty, though model.onnx and its manifest were on disk)."""
    import exporters.quantize
    from model.errors import InspectorError
    from tests.cli import assert_one_line_error, cli

    def give_up(*_args, **_kwargs):
        raise InspectorError("INT8: scores still move by 0.196; use --format onnx-fp16")

    monkeypatch.setattr(exporters.quantize, "quantize_int8", give_up)
    out = tmp_path / "e"
    rc, stdout, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-int8", "--out", out, "--json")
    assert_one_line_error(rc, err, f"(written before it: {out / 'model.onnx'})")
    said = json.loads(stdout)
    assert [e["model"] for e in said["exports"]] == [str(out / "model.onnx")] and said["error"].startswith("INT8: scores still move")
    assert (out / "model.onnx").is_file() and not (out / "model-int8.onnx").exists()
    rc, stdout, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx-int8", "--out", tmp_path / "f", "--json")
    assert_one_line_error(rc, err, "INT8: scores still move")
    assert stdout == "" and "written before it" not in err  # nothing written: the plain error


def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the script runs for real")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["bash", str(root / "exporters" / "gpu_check.sh"), "ckpt", "data", str(tmp_path / "out")],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PY": sys.executable}, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "needs an NVIDIA GPU" in proc.stderr  # a traceback before
    assert not (tmp_path / "out").exists()


def test_int8_check_on_few_held_out_images_says_it_is_rough(tmp_path):
    from PIL import Image

    from exporters.calibration import image_sets

    for i in range(7):
        Image.fromarray(np.full((8, 8), 30 * i, np.uint8)).save(tmp_path / f"{i}.png")
    calib, holdout, where = image_sets(tmp_path, {}, tmp_path, 64, 16)
    assert len(holdout) == 1 and len(calib) == 6  # a plain folder of 7: one held out, unsaid before
    assert where.endswith("(held out from calibration; only 1: the INT8 check is rough, give 64+ good images with --calib)")


def test_export_beside_another_models_exports_says_so(tiny_ckpt, exports, tmp_path):
    import shutil

    from exporters.export import export
    from exporters.manifest import sidecar_path

    out = tmp_path / "e"
    out.mkdir()
    for f in (exports["onnx-fp16"], sidecar_path(exports["onnx-fp16"])):
        shutil.copy2(f, out / f.name)
    side = json.loads(sidecar_path(out / "model-fp16.onnx").read_text())
    side["source"]["weights_sha256"] = "0" * 64  # as another checkpoint's export
    sidecar_path(out / "model-fp16.onnx").write_text(json.dumps(side))
    said = []
    export(tiny_ckpt, "onnx", out, log=said.append)
    assert any(line.startswith(f"note: --out {out} also holds model-fp16.onnx, exported from another checkpoint") for line in said)
    said.clear()
    export(tiny_ckpt, "onnx", tmp_path / "f", log=said.append)
    assert not any("also holds" in line for line in said)


def test_verify_fails_an_export_that_lets_defects_through_at_the_stored_threshold(tmp_path):
    """An INT8 export scoring defects 1-2 units lower kept its AUROC and passed, though 2 of 4 defects the checkpoint
    failed passed at the stored threshold; one on the threshold may flip under rounding."""
    from PIL import Image

    from exporters.verify import compare

    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(paths[-1])
    labels = np.array([False] * 4 + [True] * 4)
    ref = [1.0, 2.0, 3.0, 4.0, 9.72, 9.27, 12.0, 14.0]
    lower = [1.0, 2.0, 3.0, 4.0, 7.67, 8.86, 10.5, 12.5]
    r = compare(_Scripted(ref, threshold=9.0), _Scripted(lower, threshold=9.0), paths, labels, "onnx-int8")
    assert r["auroc_change"] == 0 and not r["passed"] and r["verdicts"]["escapes"] == 2
    assert r["failures"] == [f"2 defect image(s) the checkpoint fails pass in the export at threshold 9 (first: {paths[4]}): new escapes"]
    on_it = ref[:4] + [9.05] + ref[5:]  # 0.05 above: within the reduced precision's drift, a flip is rounding
    r = compare(_Scripted(on_it, threshold=9.0), _Scripted(on_it[:4] + [8.95] + on_it[5:], threshold=9.0), paths, labels, "onnx-int8")
    assert r["passed"] and r["verdicts"] == {"threshold": 9.0, "differ": 1, "escapes": 0, "examples": [str(paths[4])]}
