import re
from pathlib import Path

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


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    """A root `inspector threshold --set` under umask 077 made the daemon's readable manifest 0600 root's."""
    import os

    from model.folders import replace_files

    kept, new = tmp_path / "manifest.json", tmp_path / "new.json"
    kept.write_text("{}")
    kept.chmod(0o644)
    old = os.umask(0o077)
    try:
        replace_files({kept: b'{"a": 1}', new: b"{}"})
    finally:
        os.umask(old)
    assert kept.read_bytes() == b'{"a": 1}' and oct(kept.stat().st_mode & 0o777) == oct(0o644)
    assert oct(new.stat().st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "new.json"]


def test_an_output_lock_is_named_for_the_folder_itself(tmp_path, monkeypatch):
    """`--out .` took its name from '' (a `..lock` one level up, shared by every folder there)."""
    from model.folders import output_lock

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with output_lock(Path("."), "fit"):
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".a.lock"]
        with output_lock(tmp_path / "b", "fit"):  # another folder: no conflict
            pass
        with pytest.raises(InspectorError, match=r"--out \.\./a: another fit is writing there"):
            with output_lock(Path("../a"), "fit"):
                pass
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # removed after


def test_a_link_planted_at_a_temporary_name_is_not_written_through(tmp_path):
    """replace_files' temporary name is predictable (<file>.<pid>.tmp): a link planted there had the new manifest
    written into the link's target, and its mode copied onto it."""
    import os

    from model.folders import replace_files

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o600)
    target = tmp_path / "manifest.json"
    target.write_text("{}")
    target.chmod(0o644)
    (tmp_path / f"manifest.json.{os.getpid()}.tmp").symlink_to(victim)
    replace_files({target: b'{"new": 1}'})
    assert target.read_text() == '{"new": 1}' and not target.is_symlink() and oct(target.stat().st_mode & 0o777) == "0o644"
    assert victim.read_text() == "keep me" and oct(victim.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "victim.txt"]
