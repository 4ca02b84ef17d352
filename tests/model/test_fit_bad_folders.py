"""`inspector fit` on bad training folders and capped options: every unusable image named in one run, --add-good
that is DATA itself, and --neighbours / --peers beyond what the data holds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from model.checkpoint import load_checkpoint
from model.images import FORMATS
from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image

FAST = ("--synth", "0", "--size", "64")


def _good_folder(folder: Path, n: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), good_image(i))
    return folder


def _nan_tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), np.nan, np.float32)).save(buf, "TIFF")
    return buf.getvalue()


def _cut_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def test_fit_names_every_unusable_training_image_in_one_run_before_fitting(capsys, tmp_path, monkeypatch):
    """A camera dump with a few corrupt files stopped at the first: one full rerun per bad file."""
    import model.fit

    data = _good_folder(tmp_path / "dump")
    Image.new("RGB", (1, 1)).save(data / "one.png")
    (data / "text.png").write_bytes(b"not an image at all")
    (data / "z_nan.tif").write_bytes(_nan_tiff())  # found only by decoding it, yet named in the same line
    (data / "z_cut.png").write_bytes(_cut_png())

    def no_fitting(*_a, **_k):
        raise AssertionError("the feature pass started")

    monkeypatch.setattr(model.fit, "load_batches", no_fitting)
    rc, out, err = cli(capsys, "fit", data, "--out", tmp_path / "m", *FAST)
    assert_one_line_error(rc, err, f"data {data}: 4 of 12 training images cannot be used: ",
                          "one.png (1x1 px (width x height) is too small: it is 1 px wide and 1 px high; needs at least 8 px each side)",
                          f"text.png (cannot be decoded (UnidentifiedImageError); is it a {FORMATS}?)",
                          "z_cut.png (cannot be decoded (OSError: image file is truncated)",
                          ", and 1 more; remove or replace them")
    assert out == "" and not (tmp_path / "m").exists()


def test_images_that_only_decoding_finds_bad_are_all_named_in_one_run(capsys, tmp_path):
    data = _good_folder(tmp_path / "dump")
    (data / "a_nan.tif").write_bytes(_nan_tiff())
    (data / "b_cut.png").write_bytes(_cut_png())
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "m", *FAST)
    assert_one_line_error(rc, err, "2 of 10 training images cannot be used: ",
                          "a_nan.tif (a float TIFF with no pixel value (all NaN); check the camera's export)",
                          "b_cut.png (cannot be decoded (OSError: image file is truncated)", "; remove or replace them")


@pytest.mark.parametrize("inside", [False, True])
def test_add_good_that_is_data_itself_or_inside_it_is_refused(capsys, tmp_path, inside):
    """It was fitted, and each image then named as a byte-identical copy of itself."""
    data = _good_folder(tmp_path / "small")
    extra = _good_folder(data / "more", 2) if inside else data
    rc, out, err = cli(capsys, "fit", data, "--out", tmp_path / "m", "--add-good", extra, *FAST)
    assert_one_line_error(rc, err, f"--add-good {extra}: ", "lies inside DATA's good images" if inside else "is the same folder as DATA")
    assert out == "" and not (tmp_path / "m").exists()


def test_add_good_inside_an_mvtec_layouts_train_good_is_refused(capsys, tiny_data, tmp_path):
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--add-good", tiny_data / "train" / "good", *FAST)
    assert_one_line_error(rc, err, "--add-good", "is the same folder as DATA")


def test_peers_beyond_the_training_images_is_refused(capsys, tmp_path):
    data = _good_folder(tmp_path / "small")
    rc, out, err = cli(capsys, "fit", data, "--out", tmp_path / "m", "--peers", "100000", *FAST)
    assert_one_line_error(rc, err, "--peers 100000: at most 7, since each of the 8 training images is judged against the others")
    assert out == "" and not (tmp_path / "m").exists()


def test_neighbours_beyond_the_bank_are_capped_said_and_recorded_as_used(capsys, tmp_path):
    """--neighbours 100000 was recorded as such beside a bank of a few patches."""
    data = _good_folder(tmp_path / "small")
    out = tmp_path / "m"
    rc, _, err = cli(capsys, "fit", data, "--out", out, "--neighbours", "100000", "--peers", "7", *FAST)
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    bank = manifest["training"]["bank_size"]
    assert 1 < bank < 100000
    assert manifest["options"]["neighbours"] == manifest["net"]["neighbours"] == bank
    assert manifest["options"]["peers"] == manifest["net"]["peers"] == 7
    assert f"note: --neighbours 100000: the memory bank holds {bank} patches, so {bank} were used" in err
    net, _ = load_checkpoint(out)
    assert net.head.neighbours == bank and net.head.bank.shape[0] == bank
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        used = net(x)[0]
        net.head.neighbours = 100000  # what was asked: the mean over the whole bank all the same
        asked = net(x)[0]
    torch.testing.assert_close(used, asked)


def test_an_unreadable_test_image_is_named_before_fitting(capsys, tmp_path, tiny_data, monkeypatch):
    """Calibration reads test/ after the fit: a broken test image cost the whole fit first."""
    import shutil

    import model.fit

    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "test" / "good" / "broken.png").write_bytes(b"not an image at all")

    def no_fitting(*_a, **_k):
        raise AssertionError("the feature pass started")

    monkeypatch.setattr(model.fit, "load_batches", no_fitting)
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "m", *FAST)
    assert_one_line_error(rc, err, f"data {data}: 1 of 9 test images cannot be used: test/good/broken.png (cannot be decoded",
                          "; remove or replace it")
