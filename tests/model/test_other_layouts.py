"""A new user's data not in the MVTec AD layout (NEU steel: a folder per defect type, VOC box files, a NAS share): what
was read silently, or said once per file, is said once now."""

from __future__ import annotations

import re

import cv2
import pytest

from model.data import load_dataset
from model.errors import InspectorError
from model.images import scan_images
from model.labels import load_labels
from tests.synthetic import good_image

VOC = """<annotation><size><width>32</width><height>32</height><depth>1</depth></size>
<object><name>{name}</name><bndbox><xmin>4</xmin><ymin>4</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"""


def _img(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), good_image(seed, 32))


def test_images_in_hidden_and_system_folders_are_left_out_and_said(tmp_path):
    """A USB stick's trash (a deleted defect), a notebook's checkpoint copies and a Synology NAS's thumbnails were all
    fitted as good parts, unsaid; the copy under .ipynb_checkpoints/ was even kept over the real file."""
    good = tmp_path / "good"
    for i in range(5):
        _img(good / f"{i}.png", i)
    _img(good / ".Trash-1000" / "files" / "scratch.png", 50)
    _img(good / ".ipynb_checkpoints" / "0-checkpoint.png", 0)
    _img(good / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_M.png", 51)
    _img(good / "__MACOSX" / "1.png", 52)
    _img(good / "._real.png", 9)  # a file named with a dot is read, as before: only folders are hidden
    dataset = load_dataset(good)
    assert sorted(s.path.name for s in dataset.train) == ["._real.png", "0.png", "1.png", "2.png", "3.png", "4.png"]
    assert len(dataset.notes) == 1 and "4 image(s)" in dataset.notes[0] and ".Trash-1000" in dataset.notes[0]
    assert len(scan_images(good / ".Trash-1000" / "files").images) == 1  # given itself, a hidden folder is read


def test_a_folder_with_hidden_images_alone_says_so(tmp_path):
    for i in range(5):
        _img(tmp_path / "good" / ".snapshot" / f"{i}.png", i)
    with pytest.raises(InspectorError, match=r"no good images: its 5 image\(s\) are in hidden or system folders .*move them out"):
        load_dataset(tmp_path / "good")


def test_box_files_beside_test_images_are_said_to_be_unread(tmp_path):
    """NEU moved into test/<type>/ with its VOC box files: eval said only that no image had a ground_truth mask."""
    data = tmp_path / "mv"
    for i in range(3):
        _img(data / "train" / "good" / f"{i}.png", i)
        _img(data / "test" / "crazing" / f"c{i}.jpg", 10 + i)
        (data / "test" / "crazing" / f"c{i}.XML").write_text(VOC.format(name="crazing"))
        _img(data / "test" / "patches" / f"p{i}.jpg", 20 + i)
    notes = load_dataset(data).notes
    assert len(notes) == 1 and notes[0].startswith(f"{data / 'test' / 'crazing'} has 3 box file(s) beside its images (e.g. c0.XML)")
    assert "ground_truth/crazing/<image name>_mask.png" in notes[0]


def test_box_names_are_read_as_type_names_and_said_once_per_folder(tmp_path):
    """A NEU type folder renamed (`pitted surface`, `Pitted Oberfläche`) gave one note per box file, 142 for rolled-in scale,
    and one for every file of a folder whose name only differed in case or `_` from the boxes' names."""
    for k, kind in enumerate(("Pitted Surface", "Pitted Oberfläche", "scratches")):
        for i in range(3):
            _img(tmp_path / "labels" / kind / f"{i}.jpg", 10 * k + i)
            (tmp_path / "labels" / kind / f"{i}.xml").write_text(VOC.format(name="scratches" if kind == "scratches" else "pitted_surface"))
    (tmp_path / "labels" / "scratches" / "2.xml").write_text(VOC.format(name="crazing"))
    folder = tmp_path / "labels" / "Pitted Oberfläche"
    assert load_labels(tmp_path / "labels").notes == [
        f"{folder / '0.xml'} and 2 more box file(s) in Pitted Oberfläche/: their boxes are named pitted_surface, none Pitted "
        "Oberfläche, but they are in Pitted Oberfläche/; the folder's type is used",
        f"{tmp_path / 'labels' / 'scratches' / '2.xml'}: its boxes are named crazing, none scratches, but it is in scratches/; "
        "the folder's type is used"]


def test_images_below_a_type_folder_with_images_are_said_to_be_left_out(tmp_path):
    for k, kind in enumerate(("crazing", "patches")):
        for i in range(2):
            _img(tmp_path / "labels" / kind / f"{i}.png", 10 * k + i)
    _img(tmp_path / "labels" / "patches" / "lot 2" / "9.PNG", 99)
    labels = load_labels(tmp_path / "labels")
    assert labels.counts() == {"crazing": 2, "patches": 2}
    assert labels.notes == [f"{tmp_path / 'labels' / 'patches'} has 1 image(s) in folders below it (e.g. "
                            f"{tmp_path / 'labels' / 'patches' / 'lot 2' / '9.PNG'}), left out: subfolders of a type folder are "
                            "not searched; move them up into patches/ to use them"]


def test_a_labels_folder_of_images_without_type_folders_says_both_ways_forward(tmp_path):
    """`--labels neu/crazing` (one type's folder, not the folder above it) was told only to make type folders."""
    for i in range(2):
        _img(tmp_path / "neu" / "crazing" / f"crazing_{i}.jpg", i)
        _img(tmp_path / "neu" / "patches" / f"patches_{i}.jpg", 10 + i)
    with pytest.raises(InspectorError, match=r"labels .*crazing: no <type>/ subfolders; its 2 image\(s\) lie in it directly: if it "
                                             r"is one type's folder, give the folder that holds every type's folder \(perhaps .*neu\)"):
        load_labels(tmp_path / "neu" / "crazing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InspectorError, match=r"no <type>/ subfolders; put each defect type's images in a folder named after it$"):
        load_labels(tmp_path / "empty")


def test_an_unreadable_hidden_folder_does_not_stop_the_scan(tmp_path, monkeypatch):
    """Another user's .Trash-1000/ (mode 700 on a shared stick) stopped a fit with "cannot be read", though nothing in it
    is read; any other folder that cannot be listed still stops it."""
    import os

    for i in range(5):
        _img(tmp_path / "stick" / f"{i}.png", i)
    for hidden in (".Trash-1000", "sub"):
        (tmp_path / "stick" / hidden).mkdir()
    listing = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) in (".Trash-1000", "sub") and os.fspath(path).endswith(denied):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    denied = ".Trash-1000"
    assert len(load_dataset(tmp_path / "stick").train) == 5
    denied = "sub"
    with pytest.raises(InspectorError, match=r"folder .*sub: cannot be read \(Permission denied\)"):
        load_dataset(tmp_path / "stick")


def test_system_folders_are_no_type_and_no_defect_folder(tmp_path):
    """A Synology share puts @eaDir/ (thumbnails, a folder per image) in every folder: in a labels folder it was a type,
    refused as one whose images are in subfolders; beside good/ in a data folder, refused as a folder of defects."""
    for k, kind in enumerate(("crazing", "patches")):
        for i in range(2):
            _img(tmp_path / "labels" / kind / f"{i}.jpg", 10 * k + i)
    _img(tmp_path / "labels" / "@eaDir" / "0.jpg" / "SYNOPHOTO_THUMB_M.jpg", 50)
    assert load_labels(tmp_path / "labels").types == ["crazing", "patches"]
    for i in range(5):
        _img(tmp_path / "data" / "good" / f"{i}.png", i)
    _img(tmp_path / "data" / ".ipynb_checkpoints" / "x.png", 60)
    dataset = load_dataset(tmp_path / "data")
    assert len(dataset.train) == 5 and "1 image(s)" in dataset.notes[0]


def test_a_good_folder_in_any_case_beside_type_folders_is_refused_with_the_way_forward(tmp_path):
    """`Good/` beside NEU's type folders was fitted with them, every defect as a good part; `good/` beside them was told
    to give "the MVTec AD layout's root folder" of a folder that is none, not that `--labels` skips its good/."""
    for k, kind in enumerate(("Good", "crazing", "patches")):
        for i in range(5):
            _img(tmp_path / "neu" / kind / f"{i}.jpg", 10 * k + i)
    neu = tmp_path / "neu"
    with pytest.raises(InspectorError, match=rf"holds Good/ beside crazing/, patches/, .*give {re.escape(str(neu / 'Good'))}, with "
                                             rf"`--labels {re.escape(str(neu))}` to name the defect types \(its Good/ is skipped there\)$"):
        load_dataset(neu)
    assert load_labels(neu).types == ["crazing", "patches"]  # as the message says
    _img(tmp_path / "layout" / "test" / "good" / "0.png")
    _img(tmp_path / "layout" / "test" / "crack" / "0.png", 3)
    with pytest.raises(InspectorError, match=r"holds good/ beside crack/, .*give .*test/good, or the MVTec AD layout's root folder$"):
        load_dataset(tmp_path / "layout" / "test")


def test_a_type_folder_linked_to_nothing_is_said(tmp_path):
    """A type folder linked from a share that is not mounted: the type was left out of the model, unsaid."""
    for k, kind in enumerate(("crazing", "patches")):
        for i in range(2):
            _img(tmp_path / "labels" / kind / f"{i}.jpg", 10 * k + i)
    (tmp_path / "labels" / "inclusion").symlink_to(tmp_path / "share" / "inclusion")
    labels = load_labels(tmp_path / "labels")
    assert labels.types == ["crazing", "patches"]
    assert labels.notes == [f"{tmp_path / 'labels' / 'inclusion'} -> {tmp_path / 'share' / 'inclusion'}: a link that leads nowhere, "
                            "so its type inclusion is left out; mount or copy what it points to"]
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "inclusion").symlink_to(tmp_path / "share" / "inclusion")
    with pytest.raises(InspectorError, match=r"no <type>/ subfolders; .*only/inclusion -> .*: a link that leads nowhere"):
        load_labels(tmp_path / "only")


def test_a_layout_named_in_another_case_or_without_train_good_says_what_to_rename(tmp_path):
    """`Train/` beside `test/` gave "no good images found (...); put good parts there", and train/ok/ for train/good/ the
    same, of folders full of them."""
    data = tmp_path / "mv"
    for i in range(3):
        _img(data / "Train" / "good" / f"{i}.png", i)
        _img(data / "test" / "crazing" / f"c{i}.png", 10 + i)
    with pytest.raises(InspectorError, match=r"mv/Train must be named train \(lower case\) to be read as the MVTec AD layout's; rename it"):
        load_dataset(data)
    (data / "Train").rename(data / "train")
    (data / "train" / "good").rename(data / "train" / "ok")
    with pytest.raises(InspectorError, match=r"train/good: no good images found .*train holds ok/ instead: the good training images "
                                             r"must be in .*train/good; rename or move it there"):
        load_dataset(data)
    for i in range(5):  # a plain folder of good parts with a lot called Test/: read as before
        _img(tmp_path / "plain" / "Test" / f"{i}.png", i)
    assert len(load_dataset(tmp_path / "plain").train) == 5
