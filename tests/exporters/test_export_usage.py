"""Export and engines as a user exporting and deploying a fitted model meets them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from model.framing import Framing
from tests.cli import assert_one_line_error, cli


class _Scripted:
    """An engine that answers the scores (and type probabilities) it is given, in the order compare() asks for them."""

    def __init__(self, scores, types=None, threshold=5.0, class_names=("dark", "bright")):
        self.scores, self.at = np.asarray(scores, dtype=np.float32), 0
        self.types = None if types is None else np.asarray(types, dtype=np.float32)
        self.meta = SimpleNamespace(input_size=(32, 32), runtime="scripted", framing=Framing(), image_threshold=threshold,
                                    class_names=class_names)

    def infer(self, x):
        s = slice(self.at, self.at + len(x))
        self.at += len(x)
        return SimpleNamespace(score=self.scores[s], amap=np.zeros((len(x), 32, 32), np.float32),
                               type_probs=None if self.types is None else self.types[s])


def _images(tmp_path, n):
    from PIL import Image

    paths = []
    for i in range(n):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(paths[-1])
    return paths


def test_verify_compares_the_defect_types_an_export_names(tmp_path):
    """A model fitted with --labels names each failed part's defect type; --verify compared scores and maps only, so an
    export naming every defect's type otherwise than its checkpoint passed."""
    from exporters.verify import compare, format_report

    paths = _images(tmp_path, 6)
    labels = np.array([False] * 3 + [True] * 3)
    scores = [1.0, 2.0, 3.0, 8.0, 9.0, 10.0]
    types = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]] * 3
    swapped = [[p[1], p[0], p[2]] for p in types]  # dark <-> bright
    r = compare(_Scripted(scores, types), _Scripted(scores, swapped), paths, labels, "onnx")
    assert not r["passed"] and r["failures"] == ["defect-type probability difference 7.00e-01 > 1e-03"], r["failures"]
    assert r["types"]["differ"] == 3 and r["types"]["failed_images"] == 3
    assert r["types"]["examples"][0] == f"{paths[3]} (bright -> dark)"
    # reduced precision: judged by its scores, the types it names otherwise said
    r = compare(_Scripted(scores, types), _Scripted(scores, swapped), paths, labels, "onnx-fp16")
    assert r["passed"] and r["types"]["differ"] == 3
    assert f"of 3 images both fail, 3 named another type (first: {paths[3]} (bright -> dark)" in "\n".join(format_report(r))
    r = compare(_Scripted(scores, types), _Scripted(scores, types), paths, labels, "onnx")
    assert r["passed"] and r["types"]["differ"] == 0 and r["types"]["max_abs"] == 0
    assert "all named alike" in "\n".join(format_report(r))
    r = compare(_Scripted(scores, types), _Scripted(scores), paths, labels, "onnx-int8")
    assert not r["passed"] and "different models" in r["failures"][0]
    broken = [list(p) for p in types]
    broken[5][0] = float("nan")
    r = compare(_Scripted(scores, types), _Scripted(scores, broken), paths, labels, "onnx-fp16")
    assert not r["passed"] and r["failures"] == ["1 defect-type probabilities are NaN or infinity in the export"]
    assert compare(_Scripted(scores), _Scripted(scores), paths, labels, "onnx")["types"] is None


@pytest.mark.int8
@pytest.mark.parametrize("option", ["--verify", "--calib"])
@pytest.mark.parametrize("what", ["missing", "file", "empty"])
def test_verify_and_calib_folders_are_named_by_their_option(capsys, tiny_ckpt, tiny_data, tmp_path, option, what):
    """`export --verify nope` said 'data nope: no such folder', and an empty --calib folder 'data X: no good images
    found': neither named the option that gave the folder."""
    path = {"missing": tmp_path / "nope", "file": next((tiny_data / "test" / "good").iterdir()), "empty": tmp_path / "empty"}[what]
    (tmp_path / "empty").mkdir()
    fmt = "onnx-int8" if option == "--calib" else "onnx"
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", fmt, "--out", tmp_path / "e", option, path)
    assert_one_line_error(code, err, f"error: {option} {path}: ")
    assert not (tmp_path / "e" / "model.onnx").exists() and not (tmp_path / "e" / "model-int8.onnx").exists()


def test_an_export_folder_or_an_image_given_as_the_checkpoint_is_named_so(capsys, tiny_ckpt, tiny_data, tmp_path):
    """`inspector export EXPORTS/ --format onnx-fp16` (converting an export folder) and an image in the checkpoint's place
    both said 'no manifest.json inside; is this a directory written by `inspector fit`?'."""
    from exporters.export import export

    export(tiny_ckpt, "onnx", tmp_path / "exports")
    code, _, err = cli(capsys, "export", tmp_path / "exports", "--format", "onnx-fp16", "--out", tmp_path / "e")
    assert_one_line_error(code, err, f"checkpoint {tmp_path / 'exports'}: is a folder of exports (model.onnx), not a checkpoint",
                          f"exported from {tiny_ckpt.resolve()}")
    image = next((tiny_data / "test" / "good").iterdir())
    code, _, err = cli(capsys, "export", image, "--format", "onnx", "--out", tmp_path / "e")
    assert_one_line_error(code, err, f"checkpoint {image}: is an image, not a model")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 64, 64, 3), (3, 64, 64)])
def test_the_torch_engine_refuses_a_batch_the_exports_refuse(tiny_ckpt, shape):
    """open_engine(CKPT).infer scored a batch at another size than the model's (the exported engines refuse it, as the
    docs say a runtime does), and a channels-last batch or a single image ended in torch's RuntimeError/IndexError."""
    from inspector.engines import open_engine
    from model.errors import InspectorError

    engine = open_engine(tiny_ckpt)
    with pytest.raises(InspectorError, match=r"does not fit \[batch, 3, 64, 64\]; resize images to 64x64 first"):
        engine.infer(np.zeros(shape, np.float32))
    assert engine.infer(np.zeros((2, 3, 64, 64), np.float64)).score.shape == (2,)


@pytest.mark.int8
def test_int8_giving_up_says_its_closest_try_and_a_small_calibration_set(capsys, tiny_ckpt, tmp_path, monkeypatch):
    """The INT8 search gave up naming its last try's drift (7-bit weights, often worse than the try before it) as how far
    scores 'still move', and told to use onnx-fp16 where its activation ranges came from a handful of --calib images
    (2 of them: no try passed; the checkpoint's 12 training images: the first try did)."""
    import onnx
    import onnxruntime.quantization as ortq

    from exporters import quantize
    from exporters.onnx_export import export_onnx
    from model.checkpoint import load_checkpoint
    from model.errors import InspectorError

    fp32 = export_onnx(load_checkpoint(tiny_ckpt)[0])
    drifts = iter([3.0, 2.5, 2.0, 0.75, 1.5, 1.75, 1.25, 2.25, 1.0, 3.5])  # one per try: 4 float stage counts + none, 8 then 7 bits
    monkeypatch.setattr(ortq, "quantize_static", lambda src, out, *a, **k: onnx.save(fp32, out))  # the float graph, as if quantised
    monkeypatch.setattr(quantize, "_scores", lambda model, images: np.zeros(len(images)) + (next(drifts) if isinstance(model, onnx.ModelProto) and model is not fp32 else 0.0))
    images = np.zeros((4, 3, 64, 64), np.float32)
    with pytest.raises(InspectorError) as caught:
        quantize.quantize_int8(fp32, images, images, 0.25)
    assert str(caught.value).startswith("INT8: scores still move by 0.750 at best on held-out good images (tolerance 0.25), "
                                        "with up to 4 of 8 backbone stages in float32; use --format onnx-fp16"), caught.value

    def give_up(*_args, **_kwargs):
        raise InspectorError("INT8: scores still move by 0.750 at best; use --format onnx-fp16 for this model")

    monkeypatch.setattr(quantize, "quantize_int8", give_up)
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx-int8", "--out", tmp_path / "e", "--json")  # no progress
    assert_one_line_error(code, err, "use --format onnx-fp16 for this model, or calibrate on more good images: its activation ranges "
                          "came from 12 (up to 64 are used; give more with --calib DIR)")


def test_a_file_of_a_checkpoint_given_as_the_model_names_the_checkpoint(capsys, tiny_ckpt, tiny_data):
    """`inspect CKPT/model.safetensors` (the weights, not their folder) said "unknown model kind 'safetensors'"."""
    image = next((tiny_data / "test" / "good").iterdir())
    code, _, err = cli(capsys, "inspect", tiny_ckpt / "model.safetensors", image)
    assert_one_line_error(code, err, f"model {tiny_ckpt / 'model.safetensors'}: is a file inside the checkpoint {tiny_ckpt}; "
                          f"give the checkpoint folder {tiny_ckpt} instead")


@pytest.mark.int8
def test_exports_written_before_a_format_fails_are_still_verified(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    """`export --format onnx,onnx-int8 --verify DATA` whose INT8 search gave up named model.onnx as written, but left it
    marked as waiting for its verification: every engine refused it ('wait for it, or export again'), with nothing running."""
    import json

    from exporters import quantize
    from model.errors import InspectorError

    def give_up(*_args, **_kwargs):
        raise InspectorError("INT8: scores still move by 0.750 at best; use --format onnx-fp16 for this model")

    monkeypatch.setattr(quantize, "quantize_int8", give_up)
    out = tmp_path / "e"
    code, stdout, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-int8", "--out", out, "--verify", tiny_data, "--json")
    assert_one_line_error(code, err, f"(written before it: {out / 'model.onnx'})")
    said = json.loads(stdout)
    assert [e["model"] for e in said["exports"]] == [str(out / "model.onnx")] and said["exports"][0]["verify"]["passed"]
    assert 0 <= said["exports"][0]["float32_graph_parity"] < 1e-4  # named for what it is: an FP16 item read it as its own
    assert json.loads((out / "model.onnx.json").read_text())["verify"]["passed"] is True
    code, _, err = cli(capsys, "inspect", out / "model.onnx", next((tiny_data / "test" / "good").iterdir()))
    assert code == 0, err
