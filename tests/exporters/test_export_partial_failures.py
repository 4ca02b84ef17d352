"""Export and engines as a manufacturing engineer exporting to an edge box meets them: a format that fails after others, files written whole."""

from __future__ import annotations

import errno
import json

import pytest

from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli


@pytest.mark.int8
def test_a_full_disk_in_a_later_format_leaves_the_formats_before_it_verified(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    """`export --format onnx,onnx-int8 --verify DATA` whose INT8 search found the temporary folder full ended in the CLI's
    catch-all: model.onnx, written, stayed marked as waiting for a verification that never came (every station refused
    it), and the error named neither it nor the format."""
    from exporters import quantize

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/inspector-int8-x/int8.onnx")

    monkeypatch.setattr(quantize, "quantize_int8", full)
    out = tmp_path / "e"
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-int8", "--out", out, "--verify", tiny_data)
    assert code == 75, err  # a full disk may pass: the unit restarts on 75, as on the CLI's other OSErrors
    assert err.strip().splitlines()[-1] == ("error: --format onnx-int8: /tmp/inspector-int8-x/int8.onnx: No space left on device; "
                                            f"free space, then run it again (written before it: {out / 'model.onnx'})")
    assert json.loads((out / "model.onnx.json").read_text())["verify"]["passed"] is True
    code, _, err = cli(capsys, "inspect", out / "model.onnx", next((tiny_data / "test" / "good").iterdir()))
    assert code == 0, err


def test_an_unwritable_later_format_is_one_line_with_exit_code_2(capsys, tiny_ckpt, tmp_path, monkeypatch):
    from exporters import fp16

    def denied(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/tmp/x.onnx")

    monkeypatch.setattr(fp16, "convert_fp16", denied)
    out = tmp_path / "e"
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-fp16", "--out", out, "--json")
    assert_one_line_error(code, err, "--format onnx-fp16: /tmp/x.onnx: Permission denied; give this user",
                          f"(written before it: {out / 'model.onnx'})")


def test_a_checkpoints_manifest_given_for_it_is_its_folder(capsys, tiny_ckpt, tmp_path):
    """`export CKPT/manifest.json` (as `inspect` and `threshold` take it) exported into the checkpoint's own folder,
    which `export CKPT` refuses, and recorded the manifest file as the checkpoint the export came from."""
    inside = tiny_ckpt / "exports"
    code, _, err = cli(capsys, "export", tiny_ckpt / "manifest.json", "--format", "onnx", "--out", inside, "--json")
    assert_one_line_error(code, err, f"--out {inside}: is inside the checkpoint {tiny_ckpt}")
    assert not inside.exists()
    code, _, err = cli(capsys, "export", tiny_ckpt / "manifest.json", "--format", "onnx", "--out", tmp_path / "e", "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "e" / "model.onnx.json").read_text())["source"]["checkpoint"] == str(tiny_ckpt.resolve())


def test_tensorrt_int8_calibration_cache_is_written_whole_or_not_at_all(tmp_path):
    """TensorRT reads a calibration cache it finds instead of calibrating; one cut short (the export stopped, or the disk
    filled, while TensorRT wrote it) was written in place, so every later build from the same images read half a cache.
    Here the write is cut short by a file size limit, in a child process."""
    import subprocess
    import sys

    cache = tmp_path / "model-int8.abc.def.calib"
    code = f"""
import resource, signal, types
import numpy as np
from pathlib import Path
from exporters.tensorrt_build import _calibrator
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
calibrator = _calibrator(types.SimpleNamespace(IInt8EntropyCalibrator2=object), np.zeros((8, 3, 4, 4), np.float32), Path({str(cache)!r}))
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    calibrator.write_calibration_cache(b"TRT-1001-EntropyCalibration2\\n" + b"x: 3c010a14\\n" * 1000)
except OSError as exc:
    print("stopped:", exc.strerror)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "stopped: File too large" in run.stdout, run.stderr[-2000:]
    assert not cache.exists(), f"{cache.stat().st_size} bytes of a cut-short cache left for the next build to read"
    assert not list(tmp_path.iterdir())


def test_a_threshold_set_on_an_export_while_it_is_verified_waits_for_the_export(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    """QA set a threshold on model.onnx (`inspector threshold MODEL --set`) while `export --verify` was still comparing it
    with torch: the verification's outcome was then written over the sidecar as it stood at export, and the threshold
    set was lost without a word (or, the other way round, the outcome was). `threshold` is now told to wait."""
    from exporters import verify
    from inspector.cli import main

    real, said = verify.verify_export, []

    def meanwhile(checkpoint, model, *args, **kwargs):
        report = real(checkpoint, model, *args, **kwargs)
        said.append(main(["threshold", str(model), "--set", "12.5", "--pixel", "3.5", "--json"]))
        return report

    monkeypatch.setattr(verify, "verify_export", meanwhile)
    out = tmp_path / "e"
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx", "--out", out, "--verify", tiny_data, "--json")
    assert code == 0, err
    assert said == [2] and (f"error: export {out / 'model.onnx'}: `inspector export` is writing its folder now; run this again "
                            "when it has finished") in err
    assert main(["threshold", str(out / "model.onnx"), "--set", "12.5", "--pixel", "3.5", "--json"]) == 0
    side = json.loads((out / "model.onnx.json").read_text())
    assert side["verify"]["passed"] is True
    assert (side["thresholds"]["image"], side["thresholds"]["pixel"]) == (12.5, 3.5)


@pytest.mark.int8
def test_export_force_says_the_failed_formats_earlier_file_is_still_there(capsys, tiny_ckpt, tmp_path, monkeypatch):
    """`export --force --format onnx,onnx-int8` whose INT8 search gave up named model.onnx as written, and said nothing of
    the model-int8.onnx beside it: the earlier export's (another checkpoint's, after a refit), now passing for one of these."""
    from exporters import quantize
    from model.errors import InspectorError

    def give_up(*_args, **_kwargs):
        raise InspectorError("INT8: scores still move by 0.750 at best; use --format onnx-fp16 for this model")

    out = tmp_path / "e"
    out.mkdir()
    (out / "model-int8.onnx").write_bytes(b"an earlier export")
    monkeypatch.setattr(quantize, "quantize_int8", give_up)
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-int8", "--out", out, "--force", "--json")
    assert_one_line_error(code, err, f"(written before it: {out / 'model.onnx'}; {out / 'model-int8.onnx'} is still the earlier "
                          "export's: delete it, or export it again)")


def test_verify_export_given_a_checkpoint_for_the_export_is_one_clear_error(tiny_ckpt, tiny_data):
    """The Python API's verify_export(ckpt, ckpt, data) ended in a TypeError (the torch engine takes no `verifying`)."""
    from exporters.verify import verify_export

    with pytest.raises(InspectorError, match=r"is a checkpoint, not an export; verify an exported model"):
        verify_export(tiny_ckpt, tiny_ckpt, tiny_data)


@pytest.mark.int8
def test_a_calibration_image_that_cannot_be_used_names_calib(capsys, tiny_ckpt, tiny_data, tmp_path):
    """It was named as `image X: ...` alone, which a user who gave a --calib folder beside the training data could not place."""
    import shutil

    calib = tmp_path / "calib"
    shutil.copytree(tiny_data / "train" / "good", calib)
    (calib / "zz-cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx-int8", "--out", tmp_path / "e", "--calib", calib)
    last = err.strip().splitlines()[-1]  # after the progress lines
    assert code == 2 and last.startswith(f"error: --calib {calib}: image {calib / 'zz-cut.png'}: cannot be decoded"), err
