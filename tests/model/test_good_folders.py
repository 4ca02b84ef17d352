"""Good-image folders: a layout's defect folder given as good parts, and macOS's `._` metadata files."""

from __future__ import annotations

import os

import cv2
import pytest

from model.data import load_dataset
from model.errors import InspectorError
from model.images import list_images
from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image, write_mvtec

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)


def test_fit_refuses_a_layouts_defect_folder_as_good_images(tmp_path):
    """`fit DATA/test/blob` learnt the layout's defects as good parts; it is refused naming train/good."""
    root = write_mvtec(tmp_path / "d")
    with pytest.raises(InspectorError) as e:
        load_dataset(root / "test" / "blob")
    msg = str(e.value)
    assert "defect type 'blob'" in msg and str(root.resolve() / "train" / "good") in msg and "\n" not in msg
    assert len(load_dataset(root / "test" / "good").train) == 4  # good test images are good parts
    assert len(load_dataset(root / "test" / "blob", require_train=False).train) == 4  # judged, not fitted: fine


def test_macos_metadata_files_are_not_images(tmp_path):
    """A folder copied from a Mac to a USB stick has `._<name>` beside each image; fit refused each as undecodable."""
    folder = tmp_path / "good"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), good_image(i, 32))
        (folder / f"._{i}.png").write_bytes(APPLE_DOUBLE)
    cv2.imwrite(str(folder / "._real.png"), good_image(9, 32))  # named so, but an image: kept
    assert [p.name for p in list_images(folder)] == ["._real.png", "0.png", "1.png", "2.png"]
    assert len(load_dataset(folder).train) == 4


def test_synth_on_a_folder_of_type_folders_says_what_they_are(tmp_path):
    """`inspector synth neu_det` said "no images found" over 922 images in its <type>/ folders."""
    from model.synth.writer import readable_goods

    for kind in ("crazing", "patches"):
        (tmp_path / "neu" / kind).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "neu" / kind / f"{i}.png"), good_image(i, 32))
            cv2.imwrite(str(tmp_path / "neu" / kind / f"{i}_mask.png"), good_image(i, 32)[..., 0])
    with pytest.raises(InspectorError, match="no good image among them"):
        readable_goods(tmp_path / "neu")
    (tmp_path / "plain" / "lot7").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "plain" / "lot7" / "0.png"), good_image(0, 32))
    with pytest.raises(InspectorError, match=r"its 1 images are in subfolders \(e.g. .*lot7\)"):
        readable_goods(tmp_path / "plain")


def test_one_seed_prints_no_spread(capsys):
    """`eval --shots 5 --seeds 1` printed "0.8991 ± 0.0000", a spread one seed cannot have."""
    from inspector.commands.types_eval import print_shots

    keys = ("type_accuracy", "type_macro_f1", "type_accuracy_open_set", "type_unknown_rate")
    report = {"shots": 5, "folds": None, "seeds": 1, "region": "map", "classifier": "linear", "unknown_rate": 0.05,
              "classes": ["a", "b"], **{k: 0.9 for k in keys}, **{k + "_std": 0.0 for k in keys}}
    print_shots(report)
    out = capsys.readouterr().out
    assert "type_accuracy            0.9000\n" in out and "±" not in out
    print_shots(report | {"seeds": 3, "type_accuracy_std": 0.01})
    assert "0.9000 ± 0.0100" in capsys.readouterr().out


# -- fit --add-good: what a folder leaves out is said, as DATA's ---------------------------------------------------
def _stop(*_a, **_kw) -> None:
    """fit's room check, after the notes and before the fit's minutes: the test ends there."""
    raise InspectorError("--out: the test stops here")


def test_fit_add_good_says_the_dead_links_and_unread_files_it_left_out(tiny_data, tmp_path, capsys, monkeypatch):
    """DATA's walk said its .heic files and dead links; an --add-good folder's were left out unsaid."""
    extra = tmp_path / "reviewed"
    extra.mkdir()
    for i in range(3):
        cv2.imwrite(str(extra / f"{i:03d}.png"), good_image(100 + i))
    (extra / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    os.symlink("/mnt/gone-share/004.png", extra / "004.png")

    monkeypatch.setattr("inspector.commands.fit.check_room", _stop)
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--add-good", extra, "--synth", "0", "--size", "64")
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert rc == 2 and err.splitlines()[-1] == "error: --out: the test stops here", err
    assert any(f"1 link(s) in {extra} lead nowhere" in n and "/mnt/gone-share/004.png" in n for n in notes), err
    assert any(f"1 image file(s) in {extra} were left out" in n and ".heic" in n and "convert them to PNG or TIFF" in n for n in notes), err


def test_fit_add_good_of_good_images_alone_says_nothing_more(tiny_data, tmp_path, capsys, monkeypatch):
    extra = tmp_path / "reviewed"
    extra.mkdir()
    cv2.imwrite(str(extra / "000.png"), good_image(100))
    monkeypatch.setattr("inspector.commands.fit.check_room", _stop)
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--add-good", extra, "--synth", "0", "--size", "64")
    assert_one_line_error(rc, err, "the test stops here")  # no note
