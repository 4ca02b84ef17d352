import re

import pytest

from model.errors import InspectorError
from model.folders import writable_folder


def test_a_check_leaves_no_folder_behind(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert writable_folder(target, keep=False) == target
    assert not (tmp_path / "a").exists()
    writable_folder(target)
    assert target.is_dir() and not any(target.iterdir())  # the probe file is gone


def test_an_existing_folder_is_kept(tmp_path):
    (tmp_path / "x.txt").write_text("kept")
    writable_folder(tmp_path, keep=False)
    assert (tmp_path / "x.txt").read_text() == "kept"


@pytest.mark.parametrize("target, message", [("f", "is a file"), ("f/inside", "cannot be written")])
def test_a_file_in_the_way_is_one_line(tmp_path, target, message):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InspectorError, match=re.escape(f"--flag {tmp_path / target}: {message}")):
        writable_folder(tmp_path / target, "--flag")
