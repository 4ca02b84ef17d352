"""inspector bench: an export benched without its checkpoint, the calibration images listed once, every argument after
`bench` handed to the benchmark's own parser, bench report's image size bounded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from exporters.manifest import read_sidecar, write_sidecar
from inspector.cli import build_parser
from tests.cli import assert_one_line_error, cli
from tests.exporters.helpers import copy_export, exported

FAST = ["--batches", "1", "--runs", "1", "--warmup", "0", "--no-rss"]


@pytest.fixture(scope="module")
def exports_of_tiny(tiny_ckpt, tmp_path_factory):
    return exported(tiny_ckpt, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def edge_exports(tiny_ckpt, tmp_path_factory):
    """onnx and onnx-fp16 exports of a checkpoint that is then deleted: an edge box holds the exports alone."""
    from exporters.export import export

    root = tmp_path_factory.mktemp("edge")
    ckpt = root / "gone.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    folder = root / "exports"
    export(ckpt, ["onnx", "onnx-fp16"], folder)
    shutil.rmtree(ckpt)
    return folder, ckpt


def test_bench_times_an_export_without_its_checkpoint(capsys, edge_exports, tiny_data):
    """On an edge box with only the export, `bench EXPORT DATA` refused: "the torch baseline needs its checkpoint ...,
    which is not here". The exports are now timed against each other, and one note says why there is no x torch."""
    folder, ckpt = edge_exports
    rc, out, err = cli(capsys, "bench", folder, tiny_data, *FAST, "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["baseline"] is None
    assert report["note"].startswith(f"no torch eager baseline (x torch): it needs {ckpt.resolve()}, which ")
    assert "is not on this machine" in report["note"]
    timed = {r["kind"]: r for r in report["engines"] if "batches" in r}
    assert set(timed) == {"onnx", "onnx-fp16"}  # no torch row
    for row in timed.values():
        assert row["batches"]["1"]["median_ms"] > 0 and row["batches"]["1"]["speedup_vs_torch"] is None
    # the table: no ratio column made up, the footer and the note line say why
    rc, out, err = cli(capsys, "bench", "model", folder / "model.onnx", tiny_data, *FAST)
    assert rc == 0, err
    row = next(line for line in out.splitlines() if line.startswith("onnxruntime cpu onnx "))
    assert row.rstrip().endswith("-") and "x torch: none timed (see the note)" in out
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: no torch eager baseline (x torch): it needs ")


def test_bench_of_exports_alone_refuses_another_models_export(capsys, edge_exports, exports_of_tiny, tiny_data, tmp_path):
    """Without a checkpoint the exports must still be of one model: else their times compare two models."""
    folder, _ = edge_exports
    other = copy_export(exports_of_tiny["onnx"], tmp_path / "other")
    manifest = read_sidecar(other, required=True)
    write_sidecar(other, {**manifest, "source": {**manifest["source"], "weights_sha256": "0" * 64, "checkpoint": "/elsewhere/m.ckpt"}})
    rc, out, err = cli(capsys, "bench", folder / "model.onnx", tiny_data, "--exports", other, *FAST)
    assert_one_line_error(rc, err, f"--exports {other}: exported from another model (/elsewhere/m.ckpt) than {folder / 'model.onnx'}",
                          "bench one model's exports at a time")
    assert out == ""


def test_a_checkpoint_fitted_again_since_the_export_is_no_baseline(tiny_ckpt, exports_of_tiny, tmp_path):
    """The export's checkpoint here, but fitted again since: torch would time another model, so it is not the baseline."""
    from inspector.commands.bench_model import _source_checkpoint

    assert _source_checkpoint(exports_of_tiny["onnx"]) == (tiny_ckpt.resolve(), None)
    refit = copy_export(exports_of_tiny["onnx"], tmp_path / "refit")
    manifest = read_sidecar(refit, required=True)
    write_sidecar(refit, {**manifest, "source": {**manifest["source"], "weights_sha256": "0" * 64}})
    ckpt, note = _source_checkpoint(refit)
    assert ckpt is None and f"{tiny_ckpt.resolve()}, which {refit} was exported from, was fitted again since" in note


@pytest.mark.int8  # the calibration images are listed where an INT8 export is tried
def test_bench_model_lists_the_calibration_images_once(capsys, monkeypatch, tiny_ckpt, tiny_data):
    """bench model listed the checkpoint's training data for INT8 calibration to check it was there, and export listed it
    again: on a share of thousands of images, twice the walk. It is now asked again only where the export failed."""
    import exporters.calibration

    calls, image_sets = [], exporters.calibration.image_sets
    monkeypatch.setattr(exporters.calibration, "image_sets", lambda *a: calls.append(a) or image_sets(*a))
    rc, out, err = cli(capsys, "bench", "model", tiny_ckpt, tiny_data, *FAST, "--json")
    assert rc == 0, err
    assert len(calls) == 1
    kinds = {r["kind"] for r in json.loads(out)["engines"]}
    assert {"checkpoint", "onnx", "onnx-fp16", "onnx-int8"} <= kinds  # INT8 calibrated (or its search gave up: listed)


@pytest.mark.parametrize("argv", [["--json", "CK", "DATA"], ["CK", "DATA", "--json"], ["model", "--runs=3", "CK", "DATA"],
                                  ["--help"], ["-h"], [], ["serve", "--help"], ["--", "CK"]])
def test_every_argument_after_bench_goes_to_the_benchmark(argv):
    """`bench` hands its arguments, options and --help included, to the benchmark's parser untouched (it was done by
    replacing argparse's parse_known_args on the parser; now by a parser with no option prefix)."""
    args = build_parser().parse_args(["bench", *argv])
    assert args.args == argv and args.func.__module__ == "inspector.commands.bench"


def test_exports_given_again_add_up_and_each_file_is_timed_once(tmp_path):
    """`--exports A --exports B` timed B alone, and a folder beside a file in it timed that file twice."""
    import argparse

    from inspector.commands import bench_model

    sub = argparse.ArgumentParser().add_subparsers()
    bench_model.register(sub)
    for name in ("model.onnx", "model-int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
    args = sub.choices["model"].parse_args(["ck", "data", "--exports", str(tmp_path / "model.onnx"), "--exports", str(tmp_path)])
    assert bench_model._exports_from([str(p) for p in args.exports]) == [tmp_path / "model.onnx", tmp_path / "model-int8.onnx"]


def test_bench_help_lists_the_benchmarks(capsys):
    with pytest.raises(SystemExit) as done:
        cli(capsys, "bench", "--help")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: inspector bench [-h] BENCH ...") and all(f"    {b} " in out for b in ("serve", "report", "model"))


def test_bench_report_refuses_an_image_size_no_machine_holds(capsys):
    """`--image-size 100000` was a MemoryError traceback (149 GiB for the synthetic textures), as "internal error"."""
    rc, out, err = cli(capsys, "bench", "report", "--image-size", "100000", "--n", "1")
    assert_one_line_error(rc, err, "inspector bench report: argument --image-size: '100000': give at most 8192")
    assert out == ""


def test_bench_report_out_of_memory_for_its_images_is_one_line(capsys, monkeypatch):
    """A size within the limit can still be more than a small box holds: said as the option to change, not a traceback."""
    import reports.sample

    def no_memory(*_, **__):
        raise MemoryError

    monkeypatch.setattr(reports.sample, "make_records", no_memory)
    rc, out, err = cli(capsys, "bench", "report", "--image-size", "8192", "--n", "1")
    assert_one_line_error(rc, err, "--image-size 8192: not enough memory for synthetic images of that size; give a smaller one")
    assert out == ""


def test_exports_alone_none_of_which_runs_here_is_one_line(capsys, tiny_data, tmp_path, monkeypatch):
    """Without a checkpoint there is no torch engine to time: where no export runs either (a TensorRT engine, no GPU), one
    line says why, not a traceback from a table of nothing."""
    import exporters.manifest
    from exporters.manifest import FORMAT
    from model.errors import InspectorError

    def no_gpu():
        raise InspectorError("TensorRT engines need the tensorrt package and an NVIDIA GPU")

    monkeypatch.setattr(exporters.manifest, "tensorrt_target", no_gpu)  # a GPU machine too
    engine = tmp_path / "model-fp16.engine"
    write_sidecar(engine, {"format": FORMAT, "kind": "tensorrt-fp16", "input": {"name": "image"}, "outputs": ["score", "amap"],
                           "net": {"input_size": [64, 64]}, "thresholds": {"image": 1.0, "pixel": 1.0},
                           "source": {"checkpoint": str(tmp_path / "gone.ckpt"), "weights_sha256": "ab" * 32}}, b"engine bytes")
    rc, out, err = cli(capsys, "bench", tmp_path, tiny_data, *FAST)
    assert_one_line_error(rc, err, f"bench model {tmp_path}: no engine here can run it ({engine}: TensorRT engines need")
    assert out == ""


# --- inspector.commands.bench_model ----------------------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.


def _engine(path: Path, source: dict) -> Path:
    from exporters.manifest import FORMAT, write_sidecar

    write_sidecar(path, {"format": FORMAT, "kind": "tensorrt-fp16", "input": {"name": "image"}, "outputs": ["score", "amap"],
                         "net": {"input_size": [64, 64]}, "thresholds": {"image": 1.0, "pixel": 1.0}, "source": source},
                  b"engine bytes")
    return path


def test_an_export_naming_no_checkpoint_has_no_baseline_and_says_so(tmp_path):
    from inspector.commands.bench_model import _source_checkpoint

    engine = _engine(tmp_path / "model-fp16.engine", {"weights_sha256": "ab" * 32})
    ckpt, note = _source_checkpoint(engine)
    assert ckpt is None and note.startswith(f"no torch eager baseline (x torch): {engine}'s manifest names no checkpoint; ")


def test_an_export_whose_checkpoint_is_damaged_has_no_baseline_and_says_why(tmp_path):
    from inspector.commands.bench_model import _source_checkpoint

    damaged = tmp_path / "m.ckpt"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{not json")
    ckpt, note = _source_checkpoint(_engine(tmp_path / "model-fp16.engine", {"checkpoint": str(damaged), "weights_sha256": "ab" * 32}))
    assert ckpt is None and note.startswith("no torch eager baseline (x torch): ") and str(damaged) in note


def test_exports_alone_skip_an_unreadable_one_and_need_one(tmp_path):
    from inspector.commands.bench_model import _check_exported_from

    first = _engine(tmp_path / "a.engine", {"checkpoint": "/x/m.ckpt", "weights_sha256": "ab" * 32})
    broken = tmp_path / "b.onnx"
    broken.write_bytes(b"no sidecar")  # listed as skipped, with why, where it is opened
    _check_exported_from(None, [first, broken])
    _check_exported_from(None, [])


def test_no_calibration_is_asked_only_of_int8_without_calib(tmp_path):
    from inspector.commands.bench_model import _no_calibration

    gone = tmp_path / "gone.ckpt"  # reading it fails: asked at all, the answer is a reason
    assert _no_calibration(gone, "calib/", ["onnx-int8", "tensorrt-int8"]) is None  # a --calib that fails is the user's
    assert _no_calibration(gone, None, ["onnx", "onnx-fp16"]) is None  # nothing to calibrate
    assert _no_calibration(gone, None, ["onnx-fp16", "onnx-int8"])  # its training data is not there: why INT8 is skipped
