"""A plain folder whose good images all lie in subfolders: NEU's type folders without their box files were fitted as good
parts with no word."""

from __future__ import annotations

import cv2

from model.data import load_dataset
from tests.synthetic import good_image


def _folder(root, layout: dict[str, int]):
    for sub, n in layout.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(root / sub / f"{i}.png"), good_image(i, 32))
    return root


def test_images_all_in_subfolders_are_said_to_be_read_as_good_parts(tmp_path):
    data = _folder(tmp_path / "neu", {"crazing": 2, "inclusion": 2, "patches": 1, "pitted surface": 1, "scratches": 1})
    notes = load_dataset(data).notes
    assert len(notes) == 1, notes
    assert "5 subfolders (crazing/, inclusion/, patches/, pitted surface/ and 1 more), all read as good parts" in notes[0]
    assert "--labels" in notes[0]
    assert load_dataset(data, require_train=False).notes == []  # inspect's and eval's reading: no training, no note


def test_images_at_the_top_or_in_one_subfolder_need_no_note(tmp_path):
    assert load_dataset(_folder(tmp_path / "a", {".": 2, "more": 2, "others": 1})).notes == []
    assert load_dataset(_folder(tmp_path / "b", {"lot1": 3})).notes == []


def test_eval_names_the_test_folders_there_and_the_one_missing(tiny_ckpt, tiny_data, tmp_path, capsys):
    """It said 'eval needs both test/good and at least one test/<defect> folder' of a layout holding one of them."""
    import shutil

    from tests.cli import assert_one_line_error, cli

    only_defects = tmp_path / "d"
    shutil.copytree(tiny_data / "test" / "blob", only_defects / "test" / "blob")
    n = len(list((only_defects / "test" / "blob").iterdir()))
    rc, _, err = cli(capsys, "eval", tiny_ckpt, only_defects)
    assert_one_line_error(rc, err, f"has test/blob/ ({n} images) but no test/good folder with images")
    only_good = tmp_path / "g"
    shutil.copytree(tiny_data / "test" / "good", only_good / "test" / "good")
    rc, _, err = cli(capsys, "eval", tiny_ckpt, only_good)
    assert_one_line_error(rc, err, "has test/good/", "but no test/<defect> folder with images")
