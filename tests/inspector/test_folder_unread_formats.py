"""A watched folder and image files of formats not read (HEIC, camera raw): they sat in the folder for good, unsaid."""

from __future__ import annotations

import os

from tests.inspector.conftest import png, wait_until
from tests.inspector.test_folder_hostile_files import in_folder
from tests.inspector.test_sources import drop, watcher
from tests.synthetic import good_image


def test_a_heic_or_raw_file_in_a_watched_folder_is_set_aside_and_said(tmp_path):
    folder = in_folder(tmp_path)
    frames: list = []
    said: list = []
    w = watcher(folder, "move", frames)
    w.on_set_aside = lambda text, source, serial: said.append(text)
    try:
        drop(folder / "P0.heic", b"\0\0\0\x18ftypheic")
        drop(folder / "P0b.DNG", b"II*\0")
        wait_until(lambda: len(said) == 2, 5, "the two set aside")
        drop(folder / "P1.png", png(good_image(1)))
        wait_until(lambda: frames, 5, "the next good file read")
    finally:
        w.stop()
    assert sorted(os.listdir(folder / "rejected")) == ["P0.heic", "P0b.DNG"]
    assert sorted(said) == ["P0.heic is a HEIC file, which is not read; have the camera write PNG, JPEG or TIFF; set aside in rejected/",
                            "P0b.DNG is a camera raw file, which is not read; have the camera write PNG, JPEG or TIFF; set aside in "
                            "rejected/"], said
    assert [f.serial for f in frames] == ["P1"]
