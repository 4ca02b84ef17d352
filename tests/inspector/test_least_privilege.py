"""A station run with least privilege: checkpoints an admin installed read-only, data folders a user may not list,
QA staff who may read a checkpoint but not change it. Each denial is one line, and reading needs no write access."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from inspector.cli import main
from inspector.engines import locate_model
from model.data import load_dataset
from tests.access import as_other_user, cli_as_other_user, needs_fork, needs_root
from tests.cli import assert_one_line_error, cli
from tests.synthetic import write_mvtec

pytestmark = needs_fork


@needs_root
def test_a_checkpoint_folder_this_user_cannot_enter_is_one_line(tiny_ckpt, public_dir):
    """Path.exists raises PermissionError from Python 3.11 on: inspect, the API and serve printed a traceback (exit 1,
    which the unit restarts every 5 s) instead of naming the checkpoint."""
    ckpt = public_dir / "tiny.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    ckpt.chmod(0o700)
    out = as_other_user(lambda: locate_model(ckpt))
    assert out["error"].startswith(f"model {ckpt}: permission denied") and "; give this user (" in out["error"]
    assert main(["threshold", str(ckpt)]) == 0  # loads what the child needs
    rc, _, err = cli_as_other_user(main, "threshold", ckpt)
    assert_one_line_error(rc, err, f"checkpoint {ckpt}: permission denied")


@needs_root
def test_showing_thresholds_takes_no_lock_on_a_folder_the_user_may_only_pass_through(tiny_ckpt, public_dir):
    ckpt = public_dir / "tiny.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    ckpt.chmod(0o711)  # files readable by all, the folder not listable
    assert main(["threshold", str(ckpt), "--json"]) == 0
    rc, out, err = cli_as_other_user(main, "threshold", ckpt, "--json")
    assert rc == 0 and '"image":' in out, err
    rc, _, err = cli_as_other_user(main, "threshold", ckpt, "--set", "1.5")
    assert_one_line_error(rc, err, str(ckpt), "cannot")  # changing them is for who may write the checkpoint


def test_a_data_folder_that_cannot_be_listed_is_refused_not_skipped(public_dir):
    """os.walk skips a folder it cannot list: fit trained on 10 of 20 images and eval scored part of the test set."""
    data = write_mvtec(public_dir / "data", n_train=4, n_good_test=2, n_defect=2, size=32)
    (data / "train" / "good" / "day2").mkdir()
    shutil.copy(data / "train" / "good" / "000.png", data / "train" / "good" / "day2" / "late.png")
    (data / "train" / "good" / "day2").chmod(0)
    if as_other_user(lambda: os.access(data / "train" / "good" / "day2", os.R_OK))["value"]:
        pytest.skip("this user can list a folder of mode 0")
    out = as_other_user(lambda: len(load_dataset(data).train))
    assert out["error"] == (f"folder {data / 'train' / 'good' / 'day2'}: cannot be read (Permission denied); give this user read "
                            "access to it, or move it out of the folder given")
    (data / "train" / "good" / "day2").chmod(0o755)
    (data / "ground_truth" / "blob").chmod(0)
    assert as_other_user(lambda: len(load_dataset(data).test))["error"].startswith(
        f"masks {data / 'ground_truth' / 'blob'}: cannot be read (Permission denied)")


def test_a_permission_error_no_command_foresaw_is_one_line(monkeypatch, capsys):
    import inspector.commands.threshold as threshold

    def refuse(_args):
        raise PermissionError(13, "Permission denied", "/srv/models/line3.ckpt")

    monkeypatch.setattr(threshold, "run", refuse)
    rc, _, err = cli(capsys, "threshold", "x")
    assert_one_line_error(rc, err, "/srv/models/line3.ckpt: permission denied; give this user (")


def test_a_watched_file_the_station_cannot_read_is_set_aside_once(public_dir):
    """It was logged at every poll (five lines a second, for ever), never moved, and the part never inspected."""
    import logging

    from inspector.config import FolderSource
    from inspector.sources import FolderWatcher
    from tests.inspector.conftest import png, wait_until
    from tests.synthetic import good_image

    folder = public_dir / "in"
    folder.mkdir()
    folder.chmod(0o777)
    (folder / "P1.png").write_bytes(png(good_image(1)))
    (folder / "P1.png").chmod(0)  # e.g. copied in by root with a private umask

    def watch() -> dict:
        lines: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(record.getMessage())
        logging.getLogger("inspector.sources").addHandler(handler)
        frames: list = []
        w = FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.02, settle_s=0.0, after="move"))
        w.start(lambda f: frames.append(f.serial) or f.done(True) or True)
        try:
            wait_until(lambda: (folder / "rejected" / "P1.png").exists(), 5, "P1 set aside")
            (folder / ".P2.tmp").write_bytes(png(good_image(2)))
            (folder / ".P2.tmp").replace(folder / "P2.png")
            wait_until(lambda: frames, 5, "P2")
            time.sleep(0.3)  # 15 polls more
        finally:
            w.stop()
        return {"frames": frames, "lines": [line for line in lines if "P1.png" in line]}

    if as_other_user(lambda: os.access(folder / "P1.png", os.R_OK))["value"]:
        pytest.skip("this user can read a file of mode 0")
    out = as_other_user(watch)["value"]
    assert out["frames"] == ["P2"]
    assert out["lines"] == ["source folder:in: P1.png cannot be read (Permission denied); set aside as rejected"]
