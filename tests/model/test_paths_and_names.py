"""Paths and names a user gives: files cut short, names too long for the file system, dead links, reserved type names, serials of the wrong kind."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,cut", [("PNG", 33), ("GIF", 300), ("GIF", 20), ("BMP", 10), ("JPEG", 20)])
def test_a_file_cut_in_its_header_is_named_damaged_by_its_first_bytes(fmt, cut):
    """Cuts that Pillow's readers refuse as UnidentifiedImageError were told to send JPEG or PNG bytes."""
    from model.images import decode_image

    data = _encoded(fmt)[:cut]
    with pytest.raises(InspectorError) as err:
        decode_image(data)
    assert str(err.value).endswith(f"the {fmt} data is damaged or cut short; save or send it again"), err.value
    assert "send JPEG or PNG bytes" not in str(err.value)


def test_bytes_of_no_known_format_are_still_told_what_to_send():
    from model.images import decode_image

    with pytest.raises(InspectorError, match=r"\(UnidentifiedImageError\); send JPEG or PNG bytes$"):
        decode_image(b"hello, this is no image at all")


@pytest.fixture(scope="module")
def insp(tiny_ckpt):
    from inspector import Inspector

    return Inspector.load(tiny_ckpt)


@pytest.mark.parametrize("name,given,match", [
    ("serials", "A7", "serials is one str"),
    ("serials", {"A7": 1, "B8": 2}, "serials is a dict"),
    ("sources", "ab", "sources is one str"),
    ("ids", {"x", "y"}, "ids is a set"),
    ("ids", b"xy", "ids is one bytes"),
])
def test_inspect_batch_refuses_one_string_a_dict_or_a_set_for_serials_sources_or_ids(insp, tiny_data, name, given, match):
    """serials="A7" was split into 'A' and '7', a dict taken as its keys, a set paired in no order."""
    path = tiny_data / "test" / "good" / "000.png"
    with pytest.raises(InspectorError, match=match):
        insp.inspect_batch([path, path], **{name: given})


def test_inspect_batch_takes_a_tuple_or_generator_of_serials(insp, tiny_data):
    path = tiny_data / "test" / "good" / "000.png"
    results = insp.inspect_batch([path, path], serials=(s for s in ["A7", "B8"]), ids=("i1", "i2"))
    assert [r.serial for r in results] == ["A7", "B8"] and [r.inspection_id for r in results] == ["i1", "i2"]


LONG = "a" * 300  # over the 255 bytes of one file name


def test_fit_out_of_a_name_too_long_says_give_a_shorter_path(tiny_data, tmp_path, capsys):
    """It said '.aaaa….lock: cannot be opened (File name too long)', of a lock file, with no fix."""
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / LONG)
    assert_one_line_error(rc, err, f"--out {tmp_path / LONG}: its name is 300 bytes", "give a shorter path")
    assert ".lock" not in err


def test_fit_out_whose_lock_name_alone_is_too_long_is_locked_under_a_shorter_name(tmp_path):
    from model.folders import output_lock

    out = tmp_path / ("b" * 252)  # fits; ".bbb….lock" (258 bytes) does not
    with output_lock(out, "fit"):
        locks = [p.name for p in tmp_path.iterdir()]
    assert len(locks) == 1 and locks[0].endswith(".lock") and len(locks[0]) < 255


def test_report_logo_of_a_name_too_long_says_give_a_shorter_path(tmp_path):
    from reports.errors import ReportError
    from reports.letterhead import letterhead

    with pytest.raises(ReportError, match=r"cannot be read \(File name too long\); give a shorter path"):
        letterhead(logo=tmp_path / LONG)


def test_export_of_a_name_too_long_exits_2_not_75_as_the_cli_does():
    """_os_failure said 'give a shorter path' and exited 75, which the unit restarts on for good."""
    import errno

    from exporters.export import _os_failure
    from inspector.cli import os_exit_code

    exc = OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + LONG)
    failure = _os_failure("onnx", exc)
    assert failure.exit_code == os_exit_code(exc) == 2 and "give a shorter path" in str(failure)
    assert _os_failure("onnx", OSError(errno.ENOSPC, "No space left on device")).exit_code == 75


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_fit_ignore_of_a_folder_or_fifo_is_named_for_what_it_is(tiny_data, tmp_path, capsys, kind):
    """`fit --ignore FOLDER` (or a FIFO) said 'no such mask image', of a path that is there."""
    import os

    spec = tmp_path / "masks"
    if kind == "folder":
        spec.mkdir()
        what = "a folder, not a mask image"
    else:
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs named pipes")
        os.mkfifo(spec)
        what = "not a regular file (a device, FIFO or socket)"
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--ignore", spec)
    assert_one_line_error(rc, err, f"--ignore {spec}: {what}", "X,Y,W,H")
    assert "no such" not in err


def test_one_wording_for_a_path_that_is_no_regular_file(tmp_path):
    import os

    from model.errors import what_is_wrong_with
    from model.images import read_image

    (tmp_path / "ok.png").write_bytes(b"x")
    os.symlink(tmp_path / "gone.png", tmp_path / "dead.png")
    assert what_is_wrong_with(tmp_path / "ok.png") is None
    assert what_is_wrong_with(tmp_path / "nope.png") == "no such file"
    assert what_is_wrong_with(tmp_path / "ok.png" / "x") == "no such file"
    assert what_is_wrong_with(tmp_path, "image file") == "a folder, not an image file"
    assert what_is_wrong_with("/dev/null") == "not a regular file (a device, FIFO or socket)"
    assert what_is_wrong_with(tmp_path / "dead.png") == f"a link to {tmp_path / 'gone.png'}, which leads nowhere"
    with pytest.raises(InspectorError, match=f"^image {tmp_path}: a folder, not an image file; give an image file$"):
        read_image(tmp_path)
    with pytest.raises(InspectorError, match="^image /dev/null: not a regular file \\(a device, FIFO or socket\\); give"):
        read_image("/dev/null")


@pytest.mark.parametrize("link", ["dead", "loop"])
@pytest.mark.parametrize("command", ["fit", "export", "synth", "inspect", "eval"])
def test_an_output_folder_that_is_a_link_to_nowhere_or_a_loop_is_said_so(tiny_ckpt, tiny_data, tmp_path, capsys, command, link):
    """A link to a share not mounted said 'cannot be written (File exists)'; one leading back to itself (a -> b -> a)
    was a RuntimeError traceback (exit 70) in fit, export and synth."""
    import os

    out = tmp_path / "out"
    if link == "dead":
        os.symlink("/mnt/gone-share/runs", out)
        why, fix = "a link to /mnt/gone-share/runs, which leads nowhere", "mount or make the folder it leads to"
    else:
        os.symlink(tmp_path / "back", out)
        os.symlink(out, tmp_path / "back")
        why, fix = "a link that leads back to itself (a loop)", "remove the link"
    argv = {"fit": ["fit", tiny_data, "--out", out], "export": ["export", tiny_ckpt, "--format", "onnx", "--out", out],
            "synth": ["synth", tiny_data / "train" / "good", "--out", out, "--n", "1"],
            "inspect": ["inspect", tiny_ckpt, tiny_data / "test" / "good" / "000.png", "--overlays", out],
            "eval": ["eval", tiny_ckpt, tiny_data, "--report", out]}[command]
    rc, _, err = cli(capsys, *argv)
    flag = {"inspect": "--overlays", "eval": "report folder"}.get(command, "--out")
    assert_one_line_error(rc, err, f"{flag} {out}: {why}; {fix}, or give another folder")


def _dead_folder(folder, n=2):
    import os

    folder.mkdir(parents=True)
    for i in range(n):
        os.symlink(f"/mnt/gone-share/{i:03d}.png", folder / f"{i:03d}.png")
    return folder


def test_inspect_a_folder_of_dead_links_says_so(tiny_ckpt, tmp_path, capsys):
    dead = _dead_folder(tmp_path / "dead")
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, dead)
    assert_one_line_error(rc, err, f"folder {dead}: no images: its 2 image link(s) lead nowhere", "mount or copy what they point to")


def test_inspect_of_one_image_link_leading_nowhere_or_to_itself_says_so(tiny_ckpt, tmp_path, capsys):
    """Both were 'no such file or folder', of a name `ls` lists."""
    import os

    os.symlink("/mnt/gone-share/001.png", tmp_path / "dead.png")
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, tmp_path / "dead.png")
    assert_one_line_error(rc, err, "dead.png: a link to /mnt/gone-share/001.png, which leads nowhere; mount or copy what it points to")
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, tmp_path / "a.png")
    assert_one_line_error(rc, err, "a.png: a link that leads back to itself (a loop); give the image itself")


def test_inspect_of_a_dash_says_images_are_not_read_from_standard_input(tiny_ckpt, capsys):
    """`inspect MODEL - < part.png` said 'image -: no such file or folder', with no way forward."""
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, "-")
    assert_one_line_error(rc, err, "image -: no such file or folder; images are not read from standard input: save the image to a file")


def test_fit_add_good_of_dead_links_says_so(tiny_data, tmp_path, capsys):
    dead = _dead_folder(tmp_path / "dead")
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--add-good", dead)
    assert_one_line_error(rc, err, f"--add-good {dead}: no images: its 2 image link(s) lead nowhere", "mount or copy")


def test_eval_whose_test_good_is_dead_links_says_so(tiny_ckpt, tiny_data, tmp_path, capsys):
    """It said 'eval needs both test/good and at least one test/<defect> folder', of a test/good that is there."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data / "test" / "blob", data / "test" / "blob")
    dead = _dead_folder(data / "test" / "good", 3)
    rc, _, err = cli(capsys, "eval", tiny_ckpt, data)
    assert_one_line_error(rc, err, f"data {dead}: no images: its 3 image link(s) lead nowhere", "mount or copy")


def test_review_export_puts_one_type_written_two_ways_in_one_folder(tmp_path, capsys):
    """'pitted_surface' and 'pitted surface' were exported as two folders, which `fit --labels` fitted as two types."""
    from tests.inspector.test_review_access import fill

    root = tmp_path / "data"
    records = fill(root, 12)
    fails = [r["inspection_id"] for r in records if r["verdict"] == "FAIL"]
    for ident, kind in zip(fails[:3], ["pitted_surface", "pitted surface", "Pitted  Surface"], strict=True):
        assert cli(capsys, "review", "--db", root, ident, "--truth", "defect", "--type", kind)[0] == 0
    rc, out, err = cli(capsys, "review", "--db", root, "--export", tmp_path / "x", "--json")
    assert rc == 0, err
    folders = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert len(folders) == 1 and len(list((tmp_path / "x" / folders[0]).iterdir())) == 3, folders


def test_review_export_folder_of_a_type_with_spaces_reads_as_that_type(tmp_path, capsys):
    """'pitted surface' was exported as pitted_surface-68ca83d3/, which `fit --labels` took as a type of that name."""
    from model.label_names import type_words
    from model.labels import load_labels
    from tests.inspector.test_review_access import fill

    root = tmp_path / "data"
    fails = [r["inspection_id"] for r in fill(root, 12) if r["verdict"] == "FAIL"]
    for ident, kind in zip(fails[:2], ["pitted surface", "rolled-in  scale"], strict=True):
        assert cli(capsys, "review", "--db", root, ident, "--truth", "defect", "--type", kind)[0] == 0
    assert cli(capsys, "review", "--db", root, "--export", tmp_path / "x")[0] == 0
    assert [type_words(t) for t in load_labels(tmp_path / "x").types] == ["pitted surface", "rolled-in scale"]


# "Anomaly" and "unclassified" were fitted, then described as "an unclassified anomaly" and refused by review --type
@pytest.mark.parametrize("folder, word", [("unknown_", "unknown"), ("Good_", "good"), ("UNKNOWN ", "unknown"),
                                          ("Anomaly", "anomaly"), ("unclassified", "unclassified")])
def test_a_labels_folder_read_as_a_reserved_name_is_refused(tmp_path, folder, word):
    """`unknown_/` beside `crack/` was taken as the types ['crack', 'unknown_'], which type_words reads as 'unknown'."""
    from model.labels import load_labels
    from tests.model.types_data import write_labels

    write_labels(tmp_path, 3, types=("blob", "scratch"))
    (tmp_path / "scratch").rename(tmp_path / folder)
    with pytest.raises(InspectorError, match=f"a type may not be called {word!r}, in any case, _ as a space .*rename the folder {folder!r}"):
        load_labels(tmp_path)


def test_a_type_head_of_a_class_read_as_unknown_is_refused():
    from model.fit_types import install_head

    with pytest.raises(InspectorError, match="a type may not be called 'unknown', in any case, _ as a space \\(given as 'unknown_'\\)"):
        install_head(None, ["crack", "unknown_"])


def test_zero_shot_types_read_as_a_reserved_name_are_refused(tiny_data, tmp_path, capsys):
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--types", "crack,unknown_", "--backbone", "clip:ViT-S-32:random")
    assert_one_line_error(rc, err, "--types crack,unknown_: 'unknown_' is not a defect type")


def test_a_type_folder_named_in_latin1_is_read_and_its_test_set_digested(tiny_data, tmp_path):
    """test/Ölfleck copied from a Latin-1 file server (its name's bytes not UTF-8, lone surrogates in Python): fit and
    eval ended in a traceback (UnicodeEncodeError) where the test set's digest encoded the type's name."""
    import os
    import shutil

    from model.data import load_dataset

    data = shutil.copytree(tiny_data, tmp_path / "data")
    name = os.fsdecode(b"\xd6lfleck")
    try:
        (data / "test" / "blob").rename(data / "test" / name)
        (data / "ground_truth" / "blob").rename(data / "ground_truth" / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes no file name that is not UTF-8")
    dataset = load_dataset(data)
    assert {s.defect_type for s in dataset.test} >= {name}
    assert len(dataset.test_sha256) == 64
