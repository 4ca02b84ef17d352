"""Export and engines as an integrator uses them: re-exports under one name, folders, sidecars, bad inputs."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from exporters.manifest import FORMAT, read_sidecar, sidecar_path, write_sidecar
from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.exporters.helpers import copy_export, exported


@pytest.fixture(scope="session")
def exports(tiny_ckpt, tmp_path_factory):
    return exported(tiny_ckpt, tmp_path_factory.mktemp("exports"))


def _fake_export(path: Path, ckpt: Path, weights: str, data: bytes = b"model bytes", **extra) -> Path:
    """A model file with a sidecar that passes read_sidecar: enough for the checks made before a runtime loads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "kind": "tensorrt-fp16", "input": {"name": "image"}, "outputs": ["score", "amap"],
                "net": {"backbone": "efficientnet-lite0", "input_size": [64, 64]}, "thresholds": {"image": 1.0, "pixel": 1.0},
                "source": {"checkpoint": str(ckpt.resolve()), "weights_sha256": weights}, **extra}
    write_sidecar(path, manifest, data)
    return path


def test_tensorrt_ep_engine_cache_is_per_model_content(exports, tmp_path, monkeypatch):
    """onnxruntime names the TensorRT EP's cached engines by file name and tensor names, not weights: a model exported
    again under the same name (export --force, or a new model.onnx copied over the old one on the box) ran the engine
    built from the weights before it. Each content now gets its own cache folder."""
    import onnxruntime as ort

    from inspector.engines.onnx_engine import OnnxEngine

    real_session, real_available, asked = ort.InferenceSession, ort.get_available_providers(), []

    class AsTensorRT:  # a CPU session that reports TensorRT, as onnxruntime-gpu with libnvinfer would
        def __init__(self, src, options, providers):
            asked.append(dict(providers[0][1]))
            self._session = real_session(src, options, providers=["CPUExecutionProvider"])

        def get_providers(self):
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

        def __getattr__(self, name):
            return getattr(self._session, name)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", *real_available])
    monkeypatch.setattr(ort, "InferenceSession", AsTensorRT)
    monkeypatch.setattr(ort, "preload_dlls", lambda: None, raising=False)
    folder = tmp_path / "line3"
    model = copy_export(exports["onnx"], folder)
    OnnxEngine(model, device="tensorrt")
    for kind in ("onnx-fp16", "onnx"):  # the same name, other weights; then the first model again
        other = copy_export(exports[kind], tmp_path / kind)
        shutil.copy2(other, model)
        shutil.copy2(sidecar_path(other), sidecar_path(model))
        OnnxEngine(model, device="tensorrt")
    caches = [Path(a["trt_engine_cache_path"]) for a in asked]
    assert caches[0] != caches[1] and caches[0] == caches[2], caches
    assert all(c.is_dir() and c.parent == folder / "model.onnx.trt-cache" for c in caches)
    assert {a["trt_timing_cache_path"] for a in asked} == {str(folder / "model.onnx.trt-cache")}  # timings hold no weights


@pytest.mark.parametrize("inside", [".", "exports"])
def test_export_into_the_checkpoint_is_refused(capsys, tiny_ckpt, tmp_path, inside):
    """--out the checkpoint (or a folder in it) wrote model.onnx among its weights: a folder that `inspect` then ran as
    the checkpoint, with torch, whatever the integrator meant to deploy."""
    ckpt = tmp_path / "mt.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    out = ckpt / inside
    code, _, err = cli(capsys, "export", ckpt, "--format", "onnx", "--out", out)
    assert_one_line_error(code, err, f"--out {out}", "inside the checkpoint")
    assert sorted(p.name for p in ckpt.iterdir()) == ["manifest.json", "model.safetensors"]


def test_export_into_another_checkpoint_is_refused(capsys, tiny_ckpt, tmp_path):
    ckpt, other = tmp_path / "mt.ckpt", tmp_path / "other.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    shutil.copytree(tiny_ckpt, other)
    code, _, err = cli(capsys, "export", ckpt, "--format", "onnx", "--out", other)
    assert_one_line_error(code, err, f"--out {other}", "a checkpoint")
    assert sorted(p.name for p in other.iterdir()) == ["manifest.json", "model.safetensors"]


def test_tensorrt_int8_calibration_cache_is_per_calibration_images(tiny_ckpt, tmp_path, monkeypatch):
    """TensorRT reads a calibration cache it finds instead of calibrating: named by the model alone, `export --force
    --format tensorrt-int8 --calib OTHER` kept the ranges of the images the first export was calibrated on."""
    import onnx

    from exporters import export as export_module
    from exporters import tensorrt_build

    caches = []

    def build_engine(onnx_path, precision, size, calib_images, cache, log=None):
        caches.append(cache)
        return b"engine", {"compute": "backbone int8", "calibration_cache": cache.name, "target": {"gpu": "G"}}

    monkeypatch.setattr(tensorrt_build, "build_engine", build_engine)
    ckpt_manifest = json.loads((tiny_ckpt / "manifest.json").read_text())
    base = dict(ckpt=tiny_ckpt, ckpt_manifest=ckpt_manifest, normalisation={}, outputs=["score", "amap"], toolchain={})
    images = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    target = tmp_path / "model-int8.engine"
    for calib in (images, images[::-1], images.copy()):
        export_module._tensorrt(onnx.ModelProto(), "tensorrt-int8", target, (64, 64), calib, base, lambda _: None)
    assert caches[0] != caches[1] and caches[0] == caches[2], caches
    weights = ckpt_manifest["files"]["model.safetensors"]
    assert all(c.parent == tmp_path and c.name.startswith(f"model-int8.{weights[:12]}.") for c in caches)
    assert read_sidecar(target, required=True)["precision"]["calibration_cache"] == caches[2].name


def test_the_engine_bytes_run_are_the_bytes_checked_against_the_sidecar(tiny_ckpt, tmp_path, monkeypatch):
    """The TensorRT engine read its file twice, once to check it against the sidecar and once to deserialize it: an
    `export --force` landing between the two ran the new engine under the old sidecar's thresholds."""
    from exporters import manifest as export_manifest
    from inspector.engines.tensorrt_engine import TensorRTEngine

    target = {"gpu": "G", "compute_capability": "9.0", "tensorrt": "10.0"}
    engine = _fake_export(tmp_path / "model-fp16.engine", tiny_ckpt, "0" * 64, b"engine checked", tensorrt=target)
    deserialized = []

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            deserialized.append(bytes(data))
            return None  # refused: what ran is all this test asks

    trt = types.SimpleNamespace(__version__="10.0", Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
                                Runtime=Runtime)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(export_manifest, "tensorrt_target", lambda: target)
    real = export_manifest.read_sidecar

    def read_then_replaced(model, required, data=None):
        manifest = real(model, required, data)
        model.write_bytes(b"engine of the next export")  # its sidecar follows a moment later
        return manifest

    monkeypatch.setattr(export_manifest, "read_sidecar", read_then_replaced)
    with pytest.raises(InspectorError, match="cannot deserialize"):
        TensorRTEngine(engine, device="cuda")
    assert deserialized == [b"engine checked"]


def test_an_export_replaced_while_it_is_read_is_read_again(tiny_ckpt, tmp_path, monkeypatch):
    """`export --force` into the folder a station serves, landing as a reload or start read it (the old model's bytes,
    then the new sidecar): the reload failed as "model and manifest come from different exports ... copy both files"."""
    from exporters.manifest import read_export

    model = _fake_export(tmp_path / "e" / "model.onnx", tiny_ckpt, "0" * 64, b"first export")
    side = read_sidecar(model, required=True)
    real, landed = Path.read_bytes, []

    def export_lands_meanwhile(path):
        data = real(path)
        if path == model and not landed:
            landed.append(path)
            write_sidecar(model, {**side, "thresholds": {"image": 2.0, "pixel": 2.0}}, b"second export")
        return data

    monkeypatch.setattr(Path, "read_bytes", export_lands_meanwhile)
    data, manifest = read_export(model)
    assert landed and data == b"second export" and manifest["thresholds"]["image"] == 2.0


def test_an_export_read_between_its_writers_two_renames_waits_for_the_sidecar(tiny_ckpt, tmp_path, monkeypatch):
    """The model file is renamed in just before its sidecar: a reader in between read the new model under the old
    sidecar and refused it. The sidecar's rename lands at the reader's next look at the files, not on a timer."""
    from exporters.manifest import read_export

    model = _fake_export(tmp_path / "e" / "model.onnx", tiny_ckpt, "0" * 64, b"first export")
    _fake_export(tmp_path / "next" / "model.onnx", tiny_ckpt, "0" * 64, b"second export")
    model.write_bytes(b"second export")  # the writer's first rename only
    real, looks = Path.stat, []

    def stat(path, *args, **kwargs):
        if path == sidecar_path(model):
            looks.append(path)
            if len(looks) == 2:  # the second rename, after the reader found the pair unlike
                shutil.copy(sidecar_path(tmp_path / "next" / "model.onnx"), path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert read_export(model)[0] == b"second export"


def test_a_model_unlike_its_sidecar_and_left_so_is_still_refused_at_once(tiny_ckpt, tmp_path):
    from exporters.manifest import read_export

    model = _fake_export(tmp_path / "e" / "model.onnx", tiny_ckpt, "0" * 64, b"first export")
    model.write_bytes(b"truncated")
    with pytest.raises(InspectorError, match="different exports, or the file is truncated"):
        read_export(model)


def test_bench_says_an_export_predates_a_refit_of_its_checkpoint(tiny_ckpt, tmp_path):
    """A checkpoint fitted again after its export: bench said "exported from another model (X), not X"."""
    from inspector.commands.bench_model import _check_exported_from

    ckpt = tmp_path / "mt.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    old = _fake_export(tmp_path / "ex" / "model.onnx", ckpt, "ab" * 32)
    with pytest.raises(InspectorError, match=r"exported from .*mt.ckpt before it was fitted again \(weights abababababab then, .*\); export it again"):
        _check_exported_from(ckpt, [old])
    other = _fake_export(tmp_path / "ex2" / "model.onnx", tmp_path / "other.ckpt", "ab" * 32)
    with pytest.raises(InspectorError, match=r"exported from another model \(.*other.ckpt\), not"):
        _check_exported_from(ckpt, [other])


@pytest.mark.int8
def test_bench_lists_a_damaged_export_as_skipped(capsys, exports, tiny_ckpt, tiny_data, tmp_path):
    """One truncated file in a folder of exports stopped the whole benchmark, where an export that cannot be opened is
    meant to be listed as skipped, with why, beside the others."""
    folder = tmp_path / "exports"
    copy_export(exports["onnx"], folder)
    bad = copy_export(exports["onnx-int8"], folder)
    bad.write_bytes(bad.read_bytes()[:1000])
    code, out, err = cli(capsys, "bench", tiny_ckpt, tiny_data, "--exports", folder, "--runs", "1", "--warmup", "0",
                         "--batches", "1", "--no-rss", "--json")
    assert code == 0, err
    rows = {(Path(r["path"]).name, r["device"]): r for r in json.loads(out)["engines"]}
    assert "sha256 does not match" in rows[("model-int8.onnx", "cpu")]["skipped"]
    assert "batches" in rows[("model.onnx", "cpu")]


def test_a_manifest_without_its_model_names_the_missing_file(capsys, exports, tiny_data, tmp_path):
    """A sidecar copied without its model: "unknown model kind 'json'" for the manifest, and "no manifest.json inside"
    for its folder, as if it were a broken checkpoint."""
    model = copy_export(exports["onnx-fp16"], tmp_path / "box")
    model.unlink()
    image = sorted((tiny_data / "test" / "good").iterdir())[0]
    for given in (sidecar_path(model), model.parent):
        code, _, err = cli(capsys, "inspect", given, image)
        assert_one_line_error(code, err, f"model {model}: missing beside its manifest model-fp16.onnx.json", "copy the model file")


@pytest.mark.int8
def test_bench_without_exports_times_the_formats_that_export(capsys, tiny_ckpt, tiny_data, monkeypatch):
    """`bench CKPT DATA` exports every format first: an INT8 search that gave up (as it does, by design, for a model
    that drifts) stopped the benchmark of float32 and FP16 too. That format is now listed as skipped, with why."""
    from exporters import quantize

    def gives_up(*args, **kwargs):
        raise InspectorError("INT8: scores still move by 0.900 on held-out good images; use --format onnx-fp16 for this model")

    monkeypatch.setattr(quantize, "quantize_int8", gives_up)
    code, out, err = cli(capsys, "bench", tiny_ckpt, tiny_data, "--runs", "1", "--warmup", "0", "--batches", "1", "--no-rss", "--json")
    assert code == 0, err
    rows = {(r["kind"], r["device"]): r for r in json.loads(out)["engines"]}
    assert "batches" in rows[("onnx", "cpu")] and "batches" in rows[("onnx-fp16", "cpu")]
    assert rows[("onnx-int8", "cpu")]["skipped"].startswith("not exported: INT8: scores still move by 0.900")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_calib_that_is_no_folder_is_named_before_any_export(capsys, tiny_ckpt, tmp_path, kind):
    """`--calib nope` was said as `data nope: no such folder`, after the float exports were written."""
    calib, out = tmp_path / "calib", tmp_path / "exports"
    if kind == "file":
        calib.write_bytes(b"x")
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-int8", "--calib", calib, "--out", out)
    assert_one_line_error(code, err, f"--calib {calib}", "is a file" if kind == "file" else "no such folder")
    assert not out.exists()
