"""Engines on exported models: the CLI with ONNX files, provider checks, bad inputs, TensorRT (GPU only)."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from exporters.manifest import read_sidecar, sidecar_path, write_sidecar
from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.exporters.helpers import copy_export, exported


@pytest.fixture(scope="session")
def exports(tiny_ckpt, tmp_path_factory):
    return exported(tiny_ckpt, tmp_path_factory.mktemp("exports"))


def _fails_with_one_line(capsys, *argv) -> str:
    code, _, err = cli(capsys, *argv)
    assert_one_line_error(code, err)
    return err.strip()


def _runs_on_cuda(provider: str = "torch") -> bool:
    """Whether this machine has a CUDA GPU for torch, and (provider given) this onnxruntime lists that provider."""
    import torch

    if not torch.cuda.is_available():
        return False
    if provider == "torch":
        return True
    import onnxruntime as ort

    return provider in ort.get_available_providers()


def test_factories_by_suffix():
    from inspector.engines import FACTORIES, artefact_kind

    assert {"checkpoint", "onnx", "engine"} <= set(FACTORIES)
    from pathlib import Path

    assert artefact_kind(Path("x/model-int8.onnx")) == "onnx"
    assert artefact_kind(Path("x/model-fp16.engine")) == "engine"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_model_that_is_a_fifo_or_a_device_is_refused_unread(tmp_path):
    """A FIFO named model.onnx was handed to onnxruntime, which waited for a writer for good: inspect hung."""
    from inspector.engines import locate_model

    os.mkfifo(tmp_path / "model.onnx")
    for path in (tmp_path / "model.onnx", "/dev/null"):
        with pytest.raises(InspectorError, match=r"^model .*: not a regular file \(a device, FIFO or socket\); give a checkpoint"):
            locate_model(path)


def test_inspect_accepts_onnx_and_reads_thresholds_from_manifest(capsys, exports, tiny_ckpt, tiny_data, tmp_path):
    image = sorted((tiny_data / "test" / "blob").iterdir())[0]
    code, out, _ = cli(capsys, "inspect", tiny_ckpt, image, "--json")
    reference = json.loads(out)
    code, out, _ = cli(capsys, "inspect", exports["onnx"], image, "--json")
    record = json.loads(out)
    assert code == 0 and record["model"]["id"] == reference["model"]["id"]
    assert record["model"]["runtime"] == "onnxruntime:CPUExecutionProvider:onnx"
    assert record["threshold"] == pytest.approx(reference["threshold"])
    assert record["score"] == pytest.approx(reference["score"], rel=1e-4, abs=1e-4)
    assert record["verdict"] == reference["verdict"]
    # thresholds live outside the graph: editing the sidecar changes the verdict, not the score
    model = copy_export(exports["onnx"], tmp_path / "edited")
    side = json.loads(sidecar_path(model).read_text())
    side["thresholds"]["image"] = record["score"] + 100.0
    sidecar_path(model).write_text(json.dumps(side))
    code, out, _ = cli(capsys, "inspect", model, image, "--json")
    edited = json.loads(out)
    assert edited["verdict"] == "PASS" and edited["threshold"] == pytest.approx(record["score"] + 100.0)
    dark = tmp_path / "dark.png"  # the training images' range travels in the sidecar: an export names a dark frame too
    cv2.imwrite(str(dark), np.zeros((96, 96, 3), np.uint8))
    code, out, _ = cli(capsys, "inspect", exports["onnx"], dark, "--json")
    assert code == 0 and json.loads(out)["warnings"][0].startswith("image is much darker than the training images")
    assert edited["score"] == pytest.approx(record["score"])
    # an export folder with one model works too
    code, out, _ = cli(capsys, "inspect", tmp_path / "edited", image, "--json")
    assert code == 0 and json.loads(out)["threshold"] == pytest.approx(record["score"] + 100.0)
    # an edit that is no finite number is refused (Infinity passed every part, NaN failed every one)
    for value, needle in (("Infinity", "the image threshold is inf"), ('"abc"', "thresholds (image, pixel) are missing or not numbers")):
        sidecar_path(model).write_text(json.dumps(side).replace(f'"image": {json.dumps(side["thresholds"]["image"])}', f'"image": {value}'))
        assert needle in _fails_with_one_line(capsys, "inspect", model, image, "--json")
    sidecar_path(model).write_text(json.dumps({**side, "thresholds": None}))  # what inspect says to run mends it (a traceback)
    assert "give both" in _fails_with_one_line(capsys, "threshold", model, "--set", "5")
    code, out, _ = cli(capsys, "threshold", model, "--set", "5", "--pixel", "2", "--json")
    assert code == 0 and json.loads(out)["thresholds"] == {"image": 5.0, "pixel": 2.0}
    assert "no such file or directory" in _fails_with_one_line(capsys, "threshold", tmp_path / "nope", "--set", "1")
    from inspector.engines.base import ModelMeta

    good = {"net": {"backbone": "b", "input_size": [64, 64]}, "files": {"w": "0" * 64}, "thresholds": {"image": 1.0, "pixel": 2.0}}
    assert ModelMeta.from_manifest(good, "ck", "torch-cpu", "w").input_size == (64, 64)
    for broken, needle in (({**good, "thresholds": None}, "missing or not numbers"), ({**good, "net": {"backbone": "b"}}, "lacks the field 'input_size'"),
                           ({**good, "net": {"backbone": "b", "input_size": "ab"}}, "invalid value")):  # tracebacks before
        with pytest.raises(InspectorError, match=needle):
            ModelMeta.from_manifest(broken, "ck", "torch-cpu", "w")


@pytest.mark.int8
def test_eval_accepts_exported_models(capsys, exports, tiny_ckpt, tiny_data):
    code, out, _ = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json")
    ref = json.loads(out)
    for kind in ("onnx", "onnx-int8"):
        code, out, _ = cli(capsys, "eval", exports[kind], tiny_data, "--json")
        report = json.loads(out)
        assert code == 0 and report["model"]["runtime"].endswith(kind)
        tolerance = 1e-4 if kind == "onnx" else 0.1
        assert report["image_auroc"] == pytest.approx(ref["image_auroc"], abs=tolerance)
        assert report["at_threshold"]["threshold"] == pytest.approx(ref["at_threshold"]["threshold"])


def test_threshold_on_an_export_changes_what_it_decides(capsys, exports, tiny_ckpt, tiny_data, tmp_path):
    """A QA engineer re-thresholds the model the line runs, not only its checkpoint."""
    onnx = copy_export(exports["onnx"], tmp_path / "e")
    image = tiny_data / "test" / "blob" / "000.png"
    code, out, _ = cli(capsys, "inspect", onnx, image, "--json")
    assert code == 0 and json.loads(out)["verdict"] == "FAIL"
    before = json.loads(sidecar_path(onnx).read_text())["thresholds"]
    code, out, _ = cli(capsys, "threshold", onnx, "--set", "1e6", "--json")
    shown = json.loads(out)
    assert code == 0 and {k: shown[k] for k in ("export", "thresholds", "previous")} == {
        "export": str(onnx), "thresholds": {**before, "image": 1e6}, "previous": before}
    assert shown["far_on_calibration"] == 0.0 and shown["policy"] is None  # set by hand, judged on the scores it carries
    code, out, _ = cli(capsys, "inspect", onnx, image, "--json")
    assert code == 0 and json.loads(out)["verdict"] == "PASS" and json.loads(out)["threshold"] == 1e6  # the edited manifest still loads
    code, out, _ = cli(capsys, "threshold", onnx.parent, "--set", "2e6", "--json")  # the folder, as inspect takes it ("no manifest.json" before)
    assert code == 0 and json.loads(out)["thresholds"]["image"] == 2e6
    code, out, _ = cli(capsys, "threshold", sidecar_path(onnx), "--set", "3e6", "--json")  # its manifest, as a checkpoint's is taken
    assert code == 0 and json.loads(out)["thresholds"]["image"] == 3e6 and json.loads(out)["export"] == str(onnx)
    code, out, _ = cli(capsys, "inspect", sidecar_path(onnx), image, "--json")  # "unknown model kind 'json'" before
    assert code == 0 and json.loads(out)["threshold"] == 3e6
    for given in (onnx, sidecar_path(onnx)):  # an export is no checkpoint to export from
        line = _fails_with_one_line(capsys, "export", given, "--format", "onnx", "--out", tmp_path / "again")
        assert "is an exported model or its manifest, not a checkpoint" in line and "source.checkpoint" in line
    code, out, _ = cli(capsys, "threshold", onnx, "--escape", "0.01", "--json")  # on the scores its sidecar carries
    assert code == 0 and json.loads(out)["policy"] == {"kind": "escape", "target": 0.01}
    code, out, _ = cli(capsys, "threshold", onnx, "--set", "1e6", "--json")
    code, out, _ = cli(capsys, "threshold", tiny_ckpt, "--json")
    assert json.loads(out)["thresholds"] == before  # the checkpoint is untouched
    sidecar_path(onnx).with_name(f"{sidecar_path(onnx).name}.{os.getpid()}.tmp").mkdir()  # where this process writes the new manifest first; a folder makes that fail
    line = _fails_with_one_line(capsys, "threshold", onnx, "--set", "2")
    assert "model.onnx.json: cannot be written" in line and json.loads(sidecar_path(onnx).read_text())["thresholds"]["image"] == 1e6


def test_export_cli_verify_passes_and_fails_past_tolerance(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    code, out, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx", "--out", tmp_path / "e", "--verify", tiny_data)
    assert code == 0, err
    assert "PASS" in out and "image AUROC torch" in out
    side = json.loads((tmp_path / "e" / "model.onnx.json").read_text())
    assert side["verify"]["passed"] and side["verify"]["score_max_rel"] < 1e-4
    from exporters import verify

    strict = verify.Tolerance(score_rel=-1.0, map_rel=None, auroc=1.0, drift=1.0)  # nothing can pass this
    monkeypatch.setitem(verify.TOLERANCES, "onnx", strict)
    code, out, _ = cli(capsys, "export", tiny_ckpt, "--format", "onnx", "--out", tmp_path / "e", "--force", "--verify", tiny_data)
    assert code == 1 and "FAIL: score relative difference" in out
    # kept to be looked at, but no station runs it unawares; deleting the entry is the deliberate way to
    image = sorted((tiny_data / "test" / "good").iterdir())[0]
    line = _fails_with_one_line(capsys, "inspect", tmp_path / "e" / "model.onnx", image)
    assert "failed its verification at export (score relative difference" in line and 'delete the "verify" entry from model.onnx.json' in line
    side = json.loads((tmp_path / "e" / "model.onnx.json").read_text())
    (tmp_path / "e" / "model.onnx.json").write_text(json.dumps({k: v for k, v in side.items() if k != "verify"}))
    assert cli(capsys, "inspect", tmp_path / "e" / "model.onnx", image)[0] == 0


def test_cuda_request_without_cuda_is_refused(capsys, exports, tiny_ckpt, tiny_data, tmp_path):
    if _runs_on_cuda("CUDAExecutionProvider"):
        pytest.skip("CUDA runs here (test_onnx_on_cuda_matches_cpu covers it)")
    line = _fails_with_one_line(capsys, "inspect", exports["onnx"], tiny_data / "test" / "good", "--device", "cuda")
    assert "CUDAExecutionProvider" in line
    # export --verify asks the same before it traces (about 30 s), and writes nothing
    out = tmp_path / "e"
    line = _fails_with_one_line(capsys, "export", tiny_ckpt, "--format", "onnx", "--out", out, "--verify", tiny_data, "--device", "cuda")
    assert "this onnxruntime has no CUDAExecutionProvider" in line and not out.exists()
    line = _fails_with_one_line(capsys, "export", tiny_ckpt, "--format", "onnx-int8", "--out", out, "--verify", tiny_data,
                                "--device", "tensorrt")
    assert "the INT8 ONNX is quantised for CPUs" in line and not out.exists()


@pytest.mark.parametrize("device, needle", [("gpu", "a checkpoint runs on cpu or cuda[:N]"), ("tensorrt", "tensorrt is for exported ONNX"),
                                            ("cuda:x", "a checkpoint runs on cpu or cuda[:N]"), ("cuda:99", "CUDA GPU(s); use --device cpu")])
def test_checkpoint_on_a_device_it_cannot_use(capsys, tiny_ckpt, tiny_data, device, needle):
    line = _fails_with_one_line(capsys, "inspect", tiny_ckpt, tiny_data / "test" / "good", "--device", device)
    assert device in line and needle in line


def test_tensorrt_engine_cache_is_made_only_where_tensorrt_runs(capsys, exports, tiny_data, tmp_path, monkeypatch):
    import onnxruntime as ort

    from inspector.engines.onnx_engine import OnnxEngine

    onnx = copy_export(exports["onnx"], tmp_path / "e")
    cache = onnx.with_name(onnx.name + ".trt-cache")
    code, _, err = cli(capsys, "inspect", onnx, tiny_data / "test" / "good", "--device", "tensorrt")
    if code == 0:  # TensorRT runs here: its engines are cached beside the model
        assert cache.is_dir() and any(cache.iterdir())
        shutil.rmtree(cache)
    else:  # refused (onnxruntime-gpu lists TensorRT even without libnvinfer), with nothing left beside the model
        assert_one_line_error(code, err)
        assert "TensorrtExecutionProvider" in err and not cache.exists()
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", *real])

    class CudaInstead:  # what onnxruntime-gpu does where libnvinfer is missing (seen on an H200 machine)
        def __init__(self, *args, **kwargs):
            print("*************** EP Error ***************")  # onnxruntime's own print(), to stdout

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    with monkeypatch.context() as m:
        m.setattr(ort, "InferenceSession", CudaInstead)
        with pytest.raises(InspectorError, match=r"cannot start its TensorrtExecutionProvider here .* or use --device cuda"):
            OnnxEngine(onnx, device="tensorrt")
    assert not cache.exists()  # the cache folder made for it is gone again
    assert "EP Error" in capsys.readouterr().err
    cache.write_text("")  # the cache cannot be made there, as in a read-only folder (even as root)
    with pytest.raises(InspectorError, match=r"TensorRT's engine cache .*trt-cache cannot be made \(File exists\); put the model"):
        OnnxEngine(onnx, device="tensorrt")


def test_gpu_providers_run_float32_not_tf32(tmp_path):
    from inspector.engines.onnx_engine import _providers
    from inspector.engines.torch_engine import float32_on_cuda

    assert _providers("cuda:1", tmp_path / "m.onnx", "onnx") == [("CUDAExecutionProvider", {"device_id": 1, "use_tf32": "0"})]
    trt, cuda = _providers("tensorrt", tmp_path / "m.onnx", "onnx-fp16")
    assert "use_tf32" not in trt[1] and cuda == ("CUDAExecutionProvider", {"device_id": 0, "use_tf32": "0"})
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        float32_on_cuda()  # settable without a GPU
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        # an export after it still traces (torch 2.9's fp32_precision API beside the older flags broke torch.export)
        torch.export.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_onnxruntime_prints_keep_off_stdout(capsys, exports, tiny_data, monkeypatch):
    """onnxruntime print()s a provider's failure to stdout (seen with TensorRT missing): --json must stay JSON."""
    import onnxruntime as ort

    real = ort.InferenceSession

    def noisy(*args, **kwargs):
        print("*************** EP Error ***************")
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", noisy)
    code, out, err = cli(capsys, "inspect", exports["onnx"], sorted((tiny_data / "test" / "good").iterdir())[0], "--json")
    assert code == 0 and json.loads(out)["verdict"] in ("PASS", "FAIL") and "EP Error" in err


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_silent_provider_fallback_is_detected(exports, monkeypatch):
    """onnxruntime quietly runs on CPU when a GPU provider cannot start; the engine must refuse that."""
    import onnxruntime as ort

    if _runs_on_cuda("CUDAExecutionProvider"):
        pytest.skip("CUDA runs here, so there is no fallback to provoke")

    from inspector.engines.onnx_engine import OnnxEngine

    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with pytest.raises(InspectorError, match="silent fallback"):
        OnnxEngine(exports["onnx"], device="cuda")


def test_missing_model_file(capsys, tmp_path, tiny_data):
    line = _fails_with_one_line(capsys, "inspect", tmp_path / "nothing.onnx", tiny_data)
    assert "no such file" in line


def test_corrupt_model_files(capsys, exports, tmp_path, tiny_data):
    image = sorted((tiny_data / "test" / "good").iterdir())[0]
    truncated = copy_export(exports["onnx"], tmp_path / "truncated")
    truncated.write_bytes(truncated.read_bytes()[:5000])
    assert "sha256 does not match" in _fails_with_one_line(capsys, "inspect", truncated, image)
    garbage = tmp_path / "garbage.onnx"  # with a manifest sealed to its bytes, the runtime itself must say it cannot load it
    garbage.write_bytes(b"not a model at all")
    write_sidecar(garbage, read_sidecar(exports["onnx"], required=True))
    assert "cannot load it" in _fails_with_one_line(capsys, "inspect", garbage, image)
    lone = copy_export(exports["onnx"], tmp_path / "lone")
    sidecar_path(lone).unlink()  # the graph's own copy of the manifest has the export's thresholds, perhaps changed since
    assert "its manifest model.onnx.json is missing (it holds the thresholds); copy it along" in _fails_with_one_line(capsys, "inspect", lone, image)
    bad_json = copy_export(exports["onnx"], tmp_path / "badjson")
    sidecar_path(bad_json).write_text("{ not json")
    assert "not valid JSON" in _fails_with_one_line(capsys, "inspect", bad_json, image)


def test_model_manifest_mismatch(capsys, exports, tmp_path, tiny_data):
    image = sorted((tiny_data / "test" / "good").iterdir())[0]
    # the sidecar of another export placed next to a model
    model = copy_export(exports["onnx"], tmp_path / "swapped")
    shutil.copy2(sidecar_path(exports["onnx-fp16"]), sidecar_path(model))
    assert "different exports" in _fails_with_one_line(capsys, "inspect", model, image)
    # a sidecar that matches the bytes but describes another model (edited input size)
    model = copy_export(exports["onnx"], tmp_path / "edited")
    side = json.loads(sidecar_path(model).read_text())
    side["net"]["input_size"] = [128, 128]
    sidecar_path(model).write_text(json.dumps(side))
    assert "describes another model" in _fails_with_one_line(capsys, "inspect", model, image)


def test_graph_input_size_must_match_manifest(exports, tmp_path):
    """A model whose graph takes another size than its manifest says is refused on open."""
    import onnx

    from exporters.manifest import METADATA_KEY, write_sidecar

    model_path = copy_export(exports["onnx"], tmp_path / "resized")
    model = onnx.load(str(model_path))
    props = {p.key: p.value for p in model.metadata_props}
    manifest = json.loads(props[METADATA_KEY])
    manifest["net"]["input_size"] = [128, 128]
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(manifest)
    onnx.save(model, str(model_path))
    write_sidecar(model_path, manifest)
    from inspector.engines import open_engine

    with pytest.raises(InspectorError, match=r"graph input is \['batch', 3, 64, 64\].*128"):
        open_engine(model_path)


@pytest.mark.int8
def test_wrong_input_size_at_inference(exports):
    from inspector.engines import open_engine

    engine = open_engine(exports["onnx-int8"])
    with pytest.raises(InspectorError, match=r"does not fit \[batch, 3, 64, 64\]"):
        engine.infer(np.zeros((1, 3, 32, 32), dtype=np.float32))
    with pytest.raises(InspectorError, match="does not fit"):
        engine.infer(np.zeros((3, 64, 64), dtype=np.float32))


def test_engine_for_another_gpu_is_refused(capsys, tmp_path, tiny_data, monkeypatch):
    """An engine records its GPU and TensorRT version; another GPU (edited here in the sidecar) is refused."""
    import exporters.manifest as export_manifest
    from exporters.manifest import check_tensorrt_target, write_sidecar

    recorded = {"gpu": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0", "tensorrt": "10.3.0"}
    here = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "tensorrt": "10.3.0"}
    with pytest.raises(InspectorError, match="built for GPU 'NVIDIA A100-SXM4-80GB' but this machine has 'NVIDIA H100"):
        check_tensorrt_target(recorded, here, tmp_path / "m.engine")
    with pytest.raises(InspectorError, match="TensorRT version '10.0.1'"):
        check_tensorrt_target({**here, "tensorrt": "10.0.1"}, here, tmp_path / "m.engine")
    check_tensorrt_target(dict(here), here, tmp_path / "m.engine")  # the same target passes
    # through the CLI: an engine file whose manifest names another GPU, on this machine
    engine = tmp_path / "model-fp16.engine"
    engine.write_bytes(b"\0" * 64)
    write_sidecar(engine, {"format": "inspector-export/1", "kind": "tensorrt-fp16", "net": {"input_size": [64, 64]},
                           "thresholds": {"image": 1.0, "pixel": 1.0}, "source": {}, "input": {}, "tensorrt": recorded})
    monkeypatch.setattr(export_manifest, "tensorrt_target", lambda: here)  # an H100 with TensorRT, on any machine
    line = _fails_with_one_line(capsys, "inspect", engine, sorted((tiny_data / "test" / "good").iterdir())[0], "--device", "cuda")
    assert "built for GPU 'NVIDIA A100-SXM4-80GB' but this machine has 'NVIDIA H100 80GB HBM3'" in line


@pytest.mark.int8
def test_bench_model_cli(capsys, exports, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    import torch

    folder, before, asked = exports["onnx"].parent, torch.get_num_threads(), []
    set_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: asked.append(n) or set_threads(n))
    code, out, err = cli(capsys, "bench", tiny_ckpt, tiny_data, "--exports", folder, "--runs", "3", "--warmup", "1",
                          "--batches", "1,2", "--no-rss", "--json", "--threads", "1")
    assert code == 0, err
    assert asked[0] == 1 and torch.get_num_threads() == before  # torch's too, and given back after
    report = json.loads(out)
    rows = {(r["engine"], r["device"], r["kind"]): r for r in report["engines"]}
    base = rows["torch eager", "cpu", "checkpoint"]
    assert base["batches"]["1"]["speedup_vs_torch"] == 1.0
    for kind in ("onnx", "onnx-fp16", "onnx-int8"):
        row = rows["onnxruntime", "cpu", kind]
        for b in ("1", "2"):
            stats = row["batches"][b]
            assert 0 < stats["median_ms"] <= stats["p99_ms"] and stats["images_per_s"] > 0
        assert row["file_mb"] > 0
    # no CUDA provider on a CPU machine: listed, not hidden; timed beside the rest where CUDA runs
    assert ("batches" in rows["onnxruntime", "cuda", "onnx"]) == _runs_on_cuda("CUDAExecutionProvider")
    assert (("torch eager", "cuda", "checkpoint") in rows) == _runs_on_cuda()
    # the table form, with peak RSS from a fresh process per engine, and the explicit `bench model` name; two
    # exports of one kind (another copy here) are told apart by their paths
    int8 = exports["onnx-int8"]
    other = copy_export(int8, tmp_path / "other")
    code, out, err = cli(capsys, "bench", "model", tiny_ckpt, tiny_data, "--exports", int8, other, "--runs", "2",
                          "--warmup", "1", "--batches", "1")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("onnxruntime cpu onnx-int8")]
    assert [line.split()[3] for line in lines] == [str(int8), str(other)]
    for line in lines:
        assert 20 < float(line.split()[5]) < 4000  # peak RSS, MB
    # an export of other weights would time another model: refused before any timing
    mixed = copy_export(exports["onnx"], tmp_path / "mixed")
    manifest = read_sidecar(mixed, required=True)
    write_sidecar(mixed, {**manifest, "source": {**manifest["source"], "weights_sha256": "0" * 64, "checkpoint": "/elsewhere/m.ckpt"}})
    line = _fails_with_one_line(capsys, "bench", tiny_ckpt, tiny_data, "--exports", mixed, "--runs", "1")
    assert f"--exports {mixed}: exported from another model (/elsewhere/m.ckpt), not {tiny_ckpt}" in line
    # without --exports it exports the ONNX formats itself first
    code, out, err = cli(capsys, "bench", tiny_ckpt, tiny_data, "--runs", "1", "--warmup", "0", "--batches", "1", "--no-rss", "--json")
    assert code == 0, err
    kinds = {r["kind"] for r in json.loads(out)["engines"] if "batches" in r}
    assert kinds == {"checkpoint", "onnx", "onnx-fp16", "onnx-int8"}


def _same_outputs(a, b, score_tol: float) -> None:
    assert np.abs(a.score - b.score).max() < score_tol * max(1.0, float(np.abs(b.score).max()))
    assert np.abs(a.amap - b.amap).max() < score_tol * max(1.0, float(np.abs(b.amap).max()))


def test_checkpoint_on_cuda_matches_cpu(tiny_ckpt):
    if not _runs_on_cuda():
        pytest.skip("no CUDA GPU visible to torch")
    from inspector.engines import open_engine

    x = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    gpu = open_engine(tiny_ckpt, "cuda")
    assert gpu.meta.runtime == "torch-cuda"
    _same_outputs(gpu.infer(x), open_engine(tiny_ckpt, "cpu").infer(x), 1e-3)


@pytest.mark.parametrize("kind, tol", [("onnx", 1e-3), ("onnx-fp16", 5e-2)])
def test_onnx_on_cuda_matches_cpu(exports, kind, tol):
    if not _runs_on_cuda("CUDAExecutionProvider"):
        pytest.skip("no CUDA GPU, or this onnxruntime lacks CUDAExecutionProvider (pip install onnxruntime-gpu)")
    from inspector.engines import open_engine

    x = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    gpu = open_engine(exports[kind], "cuda")
    assert gpu.meta.runtime.startswith("onnxruntime:CUDAExecutionProvider")
    _same_outputs(gpu.infer(x), open_engine(exports[kind], "cpu").infer(x), tol)


@pytest.fixture(scope="session")
def gpu_tensorrt():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("tensorrt is not installed (TensorRT tests need an NVIDIA GPU and `pip install tensorrt`)")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch (TensorRT tests need an NVIDIA GPU)")


@pytest.mark.parametrize("fmt", ["tensorrt-fp16", "tensorrt-int8"])
def test_tensorrt_engine_matches_torch(gpu_tensorrt, fmt, tiny_ckpt, tiny_data, tmp_path):
    from exporters.export import export
    from exporters.verify import verify_export
    from inspector.engines import open_engine

    path = export(tiny_ckpt, fmt, tmp_path)[0].path
    report = verify_export(tiny_ckpt, path, tiny_data, device="cuda")
    assert report["score_mean_abs"] < 0.25 and report["passed"], report
    engine = open_engine(path, "cuda")
    x = np.random.default_rng(0).random((8, 3, 64, 64), dtype=np.float32)
    out8 = engine.infer(x)
    assert np.abs(engine.infer(x[:1]).score - out8.score[:1]).max() < 1e-2  # batch 1 and 8 agree
    side = json.loads(sidecar_path(path).read_text())
    side["tensorrt"]["gpu"] = "Some Other GPU"
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(InspectorError, match="built for GPU 'Some Other GPU'"):
        open_engine(path, "cuda")


@pytest.mark.int8
def test_export_bad_inputs(capsys, tiny_ckpt, tmp_path):
    from model.checkpoint import read_manifest, write_manifest

    # INT8 without calibration data: the checkpoint's training folder is gone and no --calib
    ckpt = tmp_path / "moved.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    manifest = read_manifest(ckpt)
    manifest["training"] = {**manifest["training"], "root": str(tmp_path / "gone")}
    manifest["files"] = list(manifest["files"])
    write_manifest(ckpt, manifest)
    line = _fails_with_one_line(capsys, "export", ckpt, "--format", "onnx-int8", "--out", tmp_path / "e")
    assert "pass --calib DIR" in line
    assert "choose from" in _fails_with_one_line(capsys, "export", ckpt, "--format", "onnx-int4", "--out", tmp_path / "e")
    assert "no such directory" in _fails_with_one_line(capsys, "export", tmp_path / "nope", "--format", "onnx", "--out", tmp_path / "e")
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # no TensorRT here: said before any work, not a silent ONNX fallback
        line = _fails_with_one_line(capsys, "export", ckpt, "--format", "tensorrt-fp16", "--out", tmp_path / "e")
        assert "tensorrt" in line.lower()


@pytest.mark.parametrize("missing, command", [("onnxscript", "export"), ("onnx", "bench"), ("onnxruntime", "inspect")])
def test_a_missing_onnx_extra_is_named_in_one_line(capsys, monkeypatch, exports, tiny_ckpt, tiny_data, tmp_path, missing, command):
    """Installed without the cpu/gpu extra, these were ModuleNotFoundError tracebacks."""
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it raises ImportError
    argv = {"export": ["export", tiny_ckpt, "--format", "onnx", "--out", tmp_path / "x"],
            "bench": ["bench", "model", tiny_ckpt, tiny_data],
            "inspect": ["inspect", exports["onnx"], tiny_data / "test" / "good"]}[command]
    code, _, err = cli(capsys, *argv)
    purpose = {"export": "ONNX export", "bench": "bench model", "inspect": f"ONNX model {exports['onnx'].name}"}[command]
    assert_one_line_error(code, err, f"{purpose} needs the {missing} package: pip install 'inspector-edge[cpu]' (or [gpu]")


def test_no_station_runs_an_export_before_its_verification_has_said(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    """The model and sidecar were written before the verification ran: a reload in that gap (minutes, on a real test
    set) served the unverified file, which then failed its verification."""
    from exporters import verify
    from inspector.engines import open_engine

    seen = []

    def while_verifying(checkpoint, model, data, **kw):
        with pytest.raises(InspectorError, match="its verification has not finished"):
            open_engine(model)  # as a station's reload opens it
        seen.append(json.loads(sidecar_path(model).read_text())["verify"])
        return real(checkpoint, model, data, **kw)

    real = verify.verify_export
    monkeypatch.setattr(verify, "verify_export", while_verifying)  # the command imports it when it runs
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx", "--out", tmp_path / "e", "--verify", tiny_data)
    assert code == 0, err
    assert seen == [{"passed": None, "pending": True}]
    assert json.loads(sidecar_path(tmp_path / "e" / "model.onnx").read_text())["verify"]["passed"] is True
    open_engine(tmp_path / "e" / "model.onnx")  # verified: runs


def test_the_onnx_bytes_run_are_the_bytes_checked_against_the_sidecar(exports, tmp_path, monkeypatch):
    """The engine hashed the file, then onnxruntime opened it again by path: a re-export landing in between ran under
    the sidecar checked for the export before it. Here the file is replaced just after the check."""
    import exporters.manifest as export_manifest
    from inspector.engines.onnx_engine import OnnxEngine

    model = copy_export(exports["onnx"], tmp_path / "e")
    checked = export_manifest.read_sidecar

    def then_replaced(path, required, data=None):
        side = checked(path, required, data)
        path.write_bytes(b"not the export that was checked")
        return side

    monkeypatch.setattr(export_manifest, "read_sidecar", then_replaced)
    engine = OnnxEngine(model)  # "onnxruntime cannot load it" when it reads the path again
    assert engine.meta.sha256 == json.loads(sidecar_path(model).read_text())["file_sha256"]
    assert engine.infer(np.zeros((1, 3, *engine.meta.input_size), np.float32)).score.shape == (1,)


def test_an_export_folder_copied_from_a_mac_opens_its_one_model(exports, tmp_path):
    """macOS writes `._model.onnx` (AppleDouble metadata) beside each file it copies onto a USB stick or a share: the
    folder read "holds several exported models (._model.onnx, model.onnx)" to inspect, threshold, serve and the API."""
    from inspector.commands.bench_model import _exports_from
    from inspector.engines import locate_model

    model = copy_export(exports["onnx"], tmp_path / "stick")
    for name in ("._model.onnx", "._model.onnx.json", ".DS_Store"):
        (model.parent / name).write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    assert locate_model(model.parent) == (model, "onnx")
    assert _exports_from([str(model.parent)]) == [model]  # bench timed it and listed "._model.onnx skipped: not valid JSON"
