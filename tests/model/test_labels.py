"""Reading labelled defect examples: folder layout, MVTec layout, masks, VOC boxes, and bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.errors import InspectorError
from model.labels import load_labels, read_region
from tests.model.types_data import write_labels

VOC = """<annotation><size><width>{w}</width><height>{h}</height><depth>1</depth></size>
<object><name>x</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>"""


def test_folder_layout_with_masks_and_boxes(tmp_path):
    write_labels(tmp_path, 2, types=("scratch", "blob"))
    for good in ("good", "GOOD"):  # not a defect type, however it is written
        (tmp_path / good).mkdir()
        cv2.imwrite(str(tmp_path / good / "a.png"), np.zeros((96, 96, 3), np.uint8))
    (tmp_path / "blob" / "000_mask.png").unlink()
    (tmp_path / "blob" / "000.xml").write_text(VOC.format(w=96, h=96, x0=11, y0=21, x1=30, y1=40))
    labels = load_labels(tmp_path)
    assert labels.types == ["blob", "scratch"] and labels.counts() == {"blob": 2, "scratch": 2}
    assert labels.targets.tolist() == [0, 0, 1, 1]
    boxed = labels.items[0]
    assert boxed.boxes_path is not None and boxed.mask_path is None
    region = read_region(boxed, (96, 96))
    assert region.sum() == 20 * 20 and region[20, 10] and not region[19, 10]  # VOC pixels are 1-based inclusive
    masked = labels.items[1]
    assert masked.mask_path is not None and read_region(masked, (96, 96)).any()
    assert labels.notes == [f"{tmp_path / 'blob' / '000.xml'}: its boxes are named x, none blob, but it is in blob/; the folder's type is used"]
    (tmp_path / "blob" / "000.xml").write_text(VOC.format(w=96, h=96, x0=11, y0=21, x1=30, y1=40).replace(">x<", ">blob<"))
    assert load_labels(tmp_path).notes == []  # named as its folder: nothing to say


def test_mvtec_layout_is_accepted(tiny_data):
    labels = load_labels(tiny_data)
    assert labels.types == ["blob"] and len(labels.items) == 4
    assert all(it.mask_path is not None for it in labels.items)


def test_type_folder_without_images(tmp_path):
    write_labels(tmp_path, 1, types=("blob",))
    (tmp_path / "crack").mkdir()
    (tmp_path / "crack" / "notes.txt").write_text("x")
    with pytest.raises(InspectorError, match=r"labels .*crack: no images"):
        load_labels(tmp_path)


def test_mask_of_another_size(tmp_path):
    write_labels(tmp_path, 1, types=("blob",))
    cv2.imwrite(str(tmp_path / "blob" / "000_mask.png"), np.zeros((50, 60), np.uint8))
    item = load_labels(tmp_path).items[0]
    with pytest.raises(InspectorError, match=r"000_mask\.png: 60x50 px but its image is 96x96"):
        read_region(item, (96, 96))


@pytest.mark.parametrize("text, match", [
    ("<annotation><object>", "not valid XML"),
    ("<root/>", "not <annotation>"),
    (VOC.format(w=96, h=96, x0="a", y0=1, x1=5, y1=5), "not a number"),
    (VOC.format(w=96, h=96, x0=9, y0=1, x1=5, y1=5), "is empty"),
    ("<annotation><object><name>x</name></object></annotation>", "no <bndbox>"),
])
def test_malformed_box_file_names_the_file(tmp_path, text, match):
    write_labels(tmp_path, 1, types=("blob",), masks=False)
    (tmp_path / "blob" / "000.xml").write_text(text)
    with pytest.raises(InspectorError, match=rf"box file .*000\.xml: .*{match}"):
        load_labels(tmp_path)


def test_box_file_for_another_image_size(tmp_path):
    write_labels(tmp_path, 1, types=("blob",), masks=False)
    (tmp_path / "blob" / "000.xml").write_text(VOC.format(w=200, h=200, x0=1, y0=1, x1=5, y1=5))
    with pytest.raises(InspectorError, match=r"000\.xml: written for a 200x200 image"):
        read_region(load_labels(tmp_path).items[0], (96, 96))


@pytest.mark.parametrize("box", [(300, 10, 400, 40), (-50, -40, -10, -5)])
def test_a_box_outside_its_image_is_refused(tmp_path, box):
    write_labels(tmp_path, 1, types=("blob",), masks=False)
    (tmp_path / "blob" / "000.xml").write_text(VOC.format(w=96, h=96, x0=box[0], y0=box[1], x1=box[2], y1=box[3]))
    with pytest.raises(InspectorError, match=r"000\.xml: box .* lies outside 000\.png \(96x96\)"):
        read_region(load_labels(tmp_path).items[0], (96, 96))
    (tmp_path / "blob" / "000.xml").write_text(VOC.format(w=96, h=96, x0=90, y0=90, x1=120, y1=120))  # past the edge: clipped
    assert read_region(load_labels(tmp_path).items[0], (96, 96)).sum() == 7 * 7


def test_missing_or_empty_labels_folder(tmp_path):
    with pytest.raises(InspectorError, match="no such folder"):
        load_labels(tmp_path / "nope")
    with pytest.raises(InspectorError, match="no <type>/ subfolders"):
        load_labels(tmp_path)
