"""The framing options (fit --roi, --locate, --turn, --ignore) end to end: found regions in the full frame,
parts at the frame's edge, mask images, images of another size, bad option values."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from model.errors import InspectorError
from model.framing import Box, Framing, box_in_frame, corners, crop
from model.ignore import ignore_mask
from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image, write_mvtec


def test_a_finding_in_a_turned_regions_corner_beyond_the_frame_is_shown_at_its_edge():
    # a turned part at the frame's left edge: its region's corner leaves the frame (filled from the edge column)
    box, shape = Box(-10, 10, 40, 40, 30.0), (100, 100)
    assert corners(box)[:, 0].min() < 0
    for inner in ((0, 0, 5, 5), (0, 0, 1, 1), (0, 30, 5, 5), (35, 35, 5, 5), (0, 0, 40, 40)):
        x, y, w, h = box_in_frame(inner, box, shape)
        assert w >= 1 and h >= 1 and 0 <= x and x + w <= shape[1] and 0 <= y and y + h <= shape[0], (inner, (x, y, w, h))
    # the corner at the frame's left edge: a box at that edge, not one of negative width
    assert box_in_frame((0, 0, 5, 5), box, shape)[:3:2] == (0, 1)
    # and a corner beyond the bottom right of a frame
    x, y, w, h = box_in_frame((35, 35, 5, 5), Box(80, 80, 40, 40, 30.0), shape)
    assert (x + w, y + h) == (100, 100) and w >= 1 and h >= 1


def test_a_static_roi_beyond_the_training_images_is_one_short_line(capsys, tiny_data, tmp_path):
    # 96 px images: the region 80,80,40,40 leaves every one; fit named each image (three, "and 13 more") and said to
    # remove or replace them, the fix being the --roi
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--size", 64, "--synth", 0, "--roi", "80,80,40,40")
    assert_one_line_error(rc, err, "96x96 px", "80,80,40,40", "--roi")
    assert "cannot be used" not in err and "more" not in err and "remove or replace" not in err
    assert not (tmp_path / "m").exists()


def _near_the_edge(dx: int, dy: int, seed: int = 0) -> np.ndarray:
    """A 349x357 frame whose 288x248 part (blocky texture) lies at its bottom right, moved by (dx, dy)."""
    rng = np.random.default_rng(seed)
    part = cv2.resize((rng.random((32, 37)) * 255).astype(np.uint8), (288, 248), interpolation=cv2.INTER_NEAREST)
    frame = np.full((357, 349), 20, np.uint8)
    x, y = 61 + dx, 101 + dy
    frame[y : min(357, y + 248), x : min(349, x + 288)] = part[: 357 - y, : 349 - x]
    return np.repeat(frame[..., None], 3, axis=2)


def test_locate_fits_a_large_region_whose_context_the_frames_edge_cuts():
    # the region reaches the frame's right edge, so its template box (the region and a tenth around it) stops there;
    # at over 256 px it is matched at half scale, found to 2 px, and the first image's own part was placed 1 px past
    # the edge: fit stopped with "image ...: does not contain the model's region of interest 33,73,317,285"
    refs = [(_near_the_edge(0, 0), "first"), (_near_the_edge(-6, -3), "b"), (_near_the_edge(-11, -8), "c")]
    framing = Framing.fitted((61, 101, 288, 248), 15, lambda: iter(refs))
    assert framing.step == 2 and framing.box[0] + framing.box[2] == 349
    for (rgb, name), shift in zip(refs, ((0, 0), (-6, -3), (-11, -8)), strict=True):
        box, weak = framing.located(rgb, name)
        assert weak is None and abs(box[0] - 61 - shift[0]) <= 1 and abs(box[1] - 101 - shift[1]) <= 1


def _data(tmp_path, odd: str) -> Path:
    """The synthetic dataset (96 px images), with one `odd` image (train/good or test/good) of 120x80 px."""
    root = write_mvtec(tmp_path / "data", n_train=6, n_good_test=2, n_defect=2)
    cv2.imwrite(str(root / odd / "zz_odd.png"), good_image(77, 120)[:80])
    return root


def test_ignore_without_a_roi_on_training_images_of_several_sizes_names_the_option(capsys, tmp_path, monkeypatch):
    # each image of another size was named as one to remove or replace (251 of magnetic_tile's 252), the fix being a --roi
    monkeypatch.setattr("model.fit.InspectorNet", _no_fit)
    rc, _, err = cli(capsys, "fit", _data(tmp_path, "train/good"), "--out", tmp_path / "m", "--size", 64, "--synth", 0,
                     "--ignore", "4,4,10,10")
    assert_one_line_error(rc, err, "--ignore 4,4,10,10", "96x96 px", "zz_odd.png is 120x80 px", "--roi")
    assert "remove or replace" not in err


def test_a_test_image_without_the_region_is_refused_before_the_fit(capsys, tmp_path, monkeypatch):
    # calibration frames the test images after the fit: one that cannot hold the region stopped fit only then
    monkeypatch.setattr("model.fit.InspectorNet", _no_fit)
    for extra in (("--roi", "8,8,80,84"), ("--roi", "8,8,80,80", "--locate", "4"), ("--ignore", "4,4,10,10")):
        data = _data(tmp_path / extra[0].strip("-") / str(len(extra)), "test/good")
        rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "m", "--size", 64, "--synth", 0, *extra)
        assert_one_line_error(rc, err, "test/good/zz_odd.png", "120x80 px")
    assert not (tmp_path / "m").exists()


def _no_fit(*args, **kwargs):
    raise AssertionError("the model was built: the check came after fitting began")


def test_an_ignore_mask_painted_on_a_transparent_layer_ignores_only_what_was_painted(tmp_path):
    # a paint program's layer: white over the code, the rest transparent, whose colour is stored as white too; it read
    # as all white ("leaves 0.0% of the image to inspect")
    rgba = np.full((96, 96, 4), 255, np.uint8)
    rgba[..., 3] = 0
    rgba[10:30, 60:90, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "layer.png")
    mask = ignore_mask([str(tmp_path / "layer.png")], (96, 96), None, (96, 96))
    assert mask[12:28, 62:88].all() and not mask[40:, :].any() and mask.mean() < 0.15


def test_an_ignore_mask_that_is_a_picture_of_a_light_part_is_refused(tmp_path):
    # a training image of a light part with white paint over its code, given as the mask: everything above mid-grey
    # (most of the part) was ignored without a word
    part = np.clip(good_image(3).astype(int) + 40, 0, 255).astype(np.uint8)
    part[10:30, 60:90] = 255
    cv2.imwrite(str(tmp_path / "painted.png"), part)
    with pytest.raises(InspectorError, match=r"--ignore .*painted.png: \d+% of it is light grey, not white, as in a picture"):
        ignore_mask([str(tmp_path / "painted.png")], (96, 96), None, (96, 96))
    # a mask with soft (anti-aliased, feathered) edges is still a mask
    soft = np.zeros((96, 96), np.uint8)
    cv2.circle(soft, (48, 48), 20, 255, -1, lineType=cv2.LINE_AA)
    cv2.imwrite(str(tmp_path / "soft.png"), cv2.GaussianBlur(soft, (0, 0), 2))
    assert ignore_mask([str(tmp_path / "soft.png")], (96, 96), None, (96, 96))[48, 48]


def _blocks(x: int, angle: float = 0.0) -> np.ndarray:
    """A 200x180 frame whose 96 px part (8 px blocks) lies at (x, 42), turned by `angle` degrees."""
    rng = np.random.default_rng(0)
    part = cv2.resize((rng.random((12, 12)) * 200 + 40).astype(np.uint8), (96, 96), interpolation=cv2.INTER_NEAREST)
    big, alpha = np.zeros((372, 392), np.uint8), np.zeros((372, 392), np.uint8)
    big[138:234, x + 96 : x + 192], alpha[138:234, x + 96 : x + 192] = part, 255
    turn = cv2.getRotationMatrix2D((x + 144.0, 186.0), angle, 1.0)
    big, alpha = (cv2.warpAffine(a, turn, (392, 372)) for a in (big, alpha))
    frame = np.where(alpha[96:276, 96:296] > 127, big[96:276, 96:296], 20).astype(np.uint8)
    return np.repeat(frame[..., None], 3, axis=2)


@pytest.mark.parametrize("turn", [0.0, 10.0])
def test_locate_follows_a_part_towards_the_frames_edge(turn):
    # the region 4 px from the frame's left edge (its context, a tenth of it, cut there): a part moved 2 px towards
    # the edge, still whole in the frame, was found 8 px off the other way (the template could not pass the edge and
    # matched the part's texture elsewhere), with no warning
    framing = Framing.fitted((4, 42, 96, 96), 14, lambda: iter([(_blocks(4), "first")] * 3), turn)
    for x in (2, 0, 4, 10):
        for angle in (0.0, 5.0) if turn else (0.0,):
            box, weak = framing.located(_blocks(x, angle), "moved")
            assert abs(box[0] - x) <= (1 if angle else 0) and abs(box[1] - 42) <= (1 if angle else 0) and weak is None, (x, angle, box)
    # a part partly out of the frame: an upright region stays whole in it, a turned one keeps its centre in it
    for angle in (0.0, 5.0) if turn else (0.0,):
        box, _ = framing.located(_blocks(-6, angle), "out")
        assert box[0] == (-6 if angle else 0) and crop(_blocks(-6, angle), box).shape[:2] == (96, 96)


def test_an_ignore_mask_drawn_on_the_region_alone_says_so(tmp_path):
    # a mask of the --roi's size (drawn on the cut view) was told only that it was not the training images' size
    cv2.imwrite(str(tmp_path / "region.png"), np.zeros((40, 60), np.uint8))
    with pytest.raises(InspectorError, match=r"60x40 px, the --roi's size, but the training images are 96x96 px; draw the "
                                             r"mask on a whole training image \(the --roi is cut from it"):
        ignore_mask([str(tmp_path / "region.png")], (96, 96), (10, 20, 60, 40), (64, 64))
