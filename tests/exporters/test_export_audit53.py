"""Export and engines, audited as a manufacturing engineer exporting to an edge box meets them (round 53)."""

from __future__ import annotations

import errno
import json

from tests.cli import assert_one_line_error, cli


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
