"""Dataset discovery: the MVTec AD layout and a plain folder; clear errors for empty or wrong paths."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.data import load_dataset
from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.conftest import shared_dataset


def _img(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), value, np.uint8))


def test_mvtec_layout(tiny_data):
    ds = load_dataset(tiny_data)
    assert len(ds.train) == 12 and all(not s.is_defect for s in ds.train)
    assert [s.path.parent.name for s in ds.train] == ["good"] * 12
    assert ds.defect_types == ["blob"]
    good = [s for s in ds.test if not s.is_defect]
    blob = [s for s in ds.test if s.is_defect]
    assert len(good) == 4 and len(blob) == 4
    assert all(s.mask_path is None for s in good)
    for s in blob:  # each defect is paired with ITS mask
        assert s.mask_path == tiny_data / "ground_truth" / "blob" / f"{s.path.stem}_mask.png"


def test_mvtec_good_training_images_may_sit_in_subfolders(tmp_path):
    """Good parts are often kept by lot or day: train/good is read like a plain folder."""
    _img(tmp_path / "train/good/day1/0.png")
    _img(tmp_path / "train/good/day2/0.png")
    _img(tmp_path / "train/good/1.png")
    assert [s.path.relative_to(tmp_path / "train/good").as_posix() for s in load_dataset(tmp_path).train] == ["1.png", "day1/0.png", "day2/0.png"]


def test_links_to_nothing_are_noted_where_the_dataset_is_read(tmp_path):
    _img(tmp_path / "lot/0.png")
    _img(tmp_path / "mt/train/good/0.png")
    _img(tmp_path / "mt/test/crack/0.png")
    (tmp_path / "mt/train/good/day2").symlink_to(tmp_path / "lot")  # followed
    (tmp_path / "mt/train/good/day3").symlink_to(tmp_path / "unmounted")
    (tmp_path / "mt/test/crack/1.png").symlink_to(tmp_path / "deleted.png")
    ds = load_dataset(tmp_path / "mt")
    assert [s.path.name for s in ds.train] == ["0.png", "0.png"] and len(ds.test) == 1
    assert len(ds.notes) == 2 and "day3 -> " in ds.notes[0] and "1.png -> " in ds.notes[1]
    assert load_dataset(tmp_path / "lot").notes == []


@pytest.mark.parametrize("folder", ["test/Good", "train/GOOD"])
def test_a_good_folder_named_in_another_case_is_refused(tmp_path, folder):
    """test/Good would count its parts as a defect type; train/GOOD would not be read."""
    _img(tmp_path / "train/good/0.png")
    _img(tmp_path / folder / "1.png")
    with pytest.raises(InspectorError, match=f"{tmp_path / folder} must be named good"):
        load_dataset(tmp_path)


def test_mvtec_mask_suffixes_and_missing_masks(tmp_path):
    _img(tmp_path / "train/good/0.png")
    _img(tmp_path / "test/crack/0.png")
    _img(tmp_path / "test/crack/1.png")
    _img(tmp_path / "test/crack/2.png")
    _img(tmp_path / "ground_truth/crack/0_mask.bmp")
    _img(tmp_path / "ground_truth/crack/2_MASK.PNG")  # a Windows tool's names: no mask of 2.png before
    _img(tmp_path / "train/good/3_MASK.png")  # a mask left among the good images is no good image
    ds = load_dataset(tmp_path)
    masks = {s.path.name: s.mask_path for s in ds.test}
    assert masks["0.png"].name == "0_mask.bmp" and masks["2.png"].name == "2_MASK.PNG"
    assert masks["1.png"] is None
    assert [s.path.name for s in ds.train] == ["0.png"]


def test_plain_folder_is_recursive_and_skips_non_images(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "line2" / "b.jpg")
    (tmp_path / "readme.txt").write_text("not an image")
    ds = load_dataset(tmp_path)
    assert [s.path.name for s in ds.train] == ["a.png", "b.jpg"]
    assert ds.test == [] and ds.defect_types == []


def test_a_plain_folder_holding_labelled_images_is_refused(tmp_path):
    """Read as good images, these would teach the model their defects: each refusal names the folder to give."""
    _img(tmp_path / "site/line1/train/good/0.png")
    _img(tmp_path / "site/line1/test/crack/0.png")
    _img(tmp_path / "site/line1/ground_truth/crack/0_mask.png")
    with pytest.raises(InspectorError, match=f"{tmp_path / 'site/line1'} is an MVTec AD layout"):
        load_dataset(tmp_path / "site")
    _img(tmp_path / "site/line1/test/good/0.png")
    with pytest.raises(InspectorError) as exc:
        load_dataset(tmp_path / "site/line1/test")
    assert "good/ beside crack/" in str(exc.value) and f"give {tmp_path / 'site/line1/test/good'}" in str(exc.value)
    assert len(load_dataset(tmp_path / "site/line1").train) == 1  # the layout's root is read as one
    assert len(load_dataset(tmp_path / "site/line1/test", require_train=False).train) == 2  # benches and checks time any image
    (tmp_path / "station").mkdir()
    (tmp_path / "station/line1").symlink_to(tmp_path / "site/line1")  # read through its link as well, so refused as well
    with pytest.raises(InspectorError, match=f"{tmp_path / 'station/line1'} is an MVTec AD layout"):
        load_dataset(tmp_path / "station")


def test_a_plain_folder_of_labelled_defects_is_refused(tmp_path, capsys):
    """A `fit --labels` folder (type folders whose images have masks or VOC box files beside them, as NEU's have):
    learnt as good, its defects would pass."""
    _img(tmp_path / "crazing/crazing_1.jpg")
    _img(tmp_path / "scratches/scratches_1.jpg")
    (tmp_path / "scratches/scratches_1.xml").write_text("<annotation><object><name>scratches</name></object></annotation>")
    with pytest.raises(InspectorError, match=r"scratches_1.jpg has a defect label beside it \(scratches_1.xml\).*fit --labels"):
        load_dataset(tmp_path)
    assert len(load_dataset(tmp_path, require_train=False).train) == 2  # benches and checks time any image
    (tmp_path / "scratches/scratches_1.xml").rename(tmp_path / "scratches/notes.xml")  # not an image's label
    _img(tmp_path / "crazing/crazing_1_mask.png", 255)
    with pytest.raises(InspectorError, match=r"crazing_1.jpg has a defect label beside it \(crazing_1_mask.png\)"):
        load_dataset(tmp_path)
    # through the CLI: one line, before any fitting
    assert_one_line_error(*cli(capsys, "fit", tmp_path, "--out", tmp_path / "ck")[::2], "crazing_1_mask.png", "fit --labels")
    (tmp_path / "crazing/crazing_1_mask.png").unlink()
    assert len(load_dataset(tmp_path).train) == 2
    (tmp_path / "scratches/notes.xml").rename(tmp_path / "scratches/scratches_1.XML")  # `fit --labels` pairs it in any case
    with pytest.raises(InspectorError, match=r"scratches_1.jpg has a defect label beside it \(scratches_1.XML\)"):
        load_dataset(tmp_path)


def test_good_beside_folders_without_images_is_a_plain_folder(tmp_path):
    _img(tmp_path / "good/0.png")
    _img(tmp_path / "good/1.png")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/readme.txt").write_text("not an image")
    assert [s.path.name for s in load_dataset(tmp_path).train] == ["0.png", "1.png"]


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InspectorError) as exc:
        load_dataset(tmp_path)
    assert str(tmp_path) in str(exc.value) and "no good images" in str(exc.value)


def test_mvtec_layout_without_good_training_images(tmp_path):
    (tmp_path / "train" / "good").mkdir(parents=True)
    _img(tmp_path / "test/good/0.png")
    with pytest.raises(InspectorError) as exc:
        load_dataset(tmp_path)
    assert str(tmp_path / "train" / "good") in str(exc.value)
    assert len(load_dataset(tmp_path, require_train=False).test) == 1  # eval needs no training images


def test_missing_path_and_file_instead_of_folder(tmp_path):
    with pytest.raises(InspectorError, match="no such folder"):
        load_dataset(tmp_path / "nope")
    _img(tmp_path / "x.png")
    with pytest.raises(InspectorError, match="is a file"):
        load_dataset(tmp_path / "x.png")


@pytest.mark.data
def test_real_magnetic_tile_layout():
    root = shared_dataset("magnetic_tile")
    ds = load_dataset(root)
    assert len(ds.train) > 0 and ds.defect_types
    defects = [s for s in ds.test if s.is_defect]
    assert defects and sum(s.mask_path is not None for s in defects) / len(defects) > 0.9


def test_a_ground_truth_folder_named_unlike_its_type_is_noted_when_the_data_is_read(tiny_data, tmp_path):
    """ground_truth/Blob beside test/blob: fit calibrated the pixel threshold without its masks and said nothing (eval's
    note alone named it)."""
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "ground_truth" / "blob").rename(data / "ground_truth" / "Blob")
    dataset = load_dataset(data)
    assert not any(s.mask_path for s in dataset.test)
    assert f"{data / 'ground_truth' / 'Blob'}: there is no test/Blob, so the masks in it are not used; if they are test/blob's, rename the folder blob" in dataset.notes
    (data / "ground_truth" / "Blob").rename(data / "ground_truth" / "blob")
    (data / "ground_truth" / "good").mkdir()  # masks of good images (all blank) beside test/good: nothing unused
    assert not load_dataset(data).notes
