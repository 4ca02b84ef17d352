"""Boundaries and small cases of framing, --ignore, image quality and overlap that hand-made mutants of those modules
(a flipped comparison, a swapped operator, a constant one off) got past the other tests with. Each expected value is
worked out by hand from the numbers in the test."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from model import overlap
from model.errors import InspectorError
from model.framing import (
    Box,
    Framing,
    box_in_frame,
    check_roi,
    corners,
    crop,
    locate_warning,
    place_map,
    png_b64,
    reference_paths,
    region_mask,
    turned,
)
from model.ignore import ignore_mask, parse_ignore
from model.overlap import part_groups, twins
from model.quality import number_pair, quality_causes, quality_report, quality_stats, quality_summary

# --- image quality -------------------------------------------------------------------------------------------------

RANGE = {"brightness": [0.4, 0.8], "contrast": [0.5, 0.9], "white": [0.0, 0.3], "sharpness": [0.5, 0.9]}
FINE = (0.6, 0.7, 0.0, 0.7)  # inside every range of RANGE


def stats(**changed: float) -> np.ndarray:
    names = ("brightness", "contrast", "white", "sharpness")
    return np.array([changed.get(n, v) for n, v in zip(names, FINE, strict=True)])


def grey_batch(grey: np.ndarray) -> np.ndarray:
    """One preprocessed image [1, 3, h, w] whose three channels are `grey`."""
    return np.repeat(grey[None, None].astype(np.float32), 3, axis=1)


def test_dark_starts_below_half_the_least_brightness():
    # least brightness 0.4: 0.2 is exactly half, not below it; 0.19 is
    assert quality_causes(stats(brightness=0.2), RANGE) == []
    assert quality_causes(stats(brightness=0.19), RANGE) == ["dark"]


def test_overexposed_needs_a_tenth_more_white_and_twice_the_most():
    none_white = {**RANGE, "white": [0.0, 0.0]}
    # the training images had no clipped white: 5% is within 0.0 + 0.1, 15% is beyond it (and beyond 2 x 0)
    assert quality_causes(stats(white=0.05), none_white) == []
    assert quality_causes(stats(white=0.15), none_white) == ["overexposed"]
    # at most 0.3 white: the bar is max(0.3 + 0.1, 2 x 0.3) = 0.6, and exactly 0.6 is not over it
    assert quality_causes(stats(white=0.5), RANGE) == []
    assert quality_causes(stats(white=0.6), RANGE) == []
    assert quality_causes(stats(white=0.7), RANGE) == ["overexposed"]


def test_blur_and_blank_at_their_bars():
    # least sharpness 0.5: blurred below 0.7 x 0.5 = 0.35, not at it
    assert quality_causes(stats(sharpness=0.35), RANGE) == []
    assert quality_causes(stats(sharpness=0.34), RANGE) == ["blurred"]
    # least contrast 0.5: blank below 0.5 x 0.5 = 0.25, not at it
    assert quality_causes(stats(contrast=0.25), RANGE) == []
    assert quality_causes(stats(contrast=0.24), RANGE) == ["blank"]
    # low contrast and blurred: blurred down to 0.1 x 0.5 = 0.05 (inclusive), blank below it
    assert quality_causes(stats(contrast=0.05, sharpness=0.1), RANGE) == ["blurred"]
    assert quality_causes(stats(contrast=0.04, sharpness=0.1), RANGE) == ["blank"]


def test_clipped_white_starts_at_250_of_255():
    grey = np.zeros((4, 4), np.float32)
    grey[0, :2] = 1.0  # white
    grey[1, :2] = 0.982  # 250.4 / 255: clipped (at or above 250 / 255 = 0.98039)
    grey[2, :2] = 0.979  # 249.6 / 255: not clipped
    assert quality_stats(grey_batch(grey))[0, 2] == pytest.approx(4 / 16)


def test_the_stats_of_a_two_level_image():
    grey = np.full((8, 8), 0.2, np.float32)
    grey[:, 4:] = 0.6  # half 0.2, half 0.6: mean 0.4, standard deviation 0.2, contrast 0.2 / 0.4
    brightness, contrast, white, _ = quality_stats(grey_batch(grey))[0]
    assert (brightness, contrast, white) == pytest.approx((0.4, 0.5, 0.0), abs=1e-6)


def test_sharpness_blurs_both_ways():
    # columns alternating 0.2 / 0.8: a 1 px Gaussian blur takes almost all of it, so nearly all contrast is fine detail
    # (the frequency pi damped by exp(-pi^2 / 2) < 0.01), whichever way the stripes run
    stripes = np.tile(np.array([0.2, 0.8], np.float32), (32, 16))
    across = quality_stats(grey_batch(stripes))[0, 3]
    along = quality_stats(grey_batch(stripes.T.copy()))[0, 3]
    assert across > 0.9 and along > 0.9 and across == pytest.approx(along, rel=1e-3)


def test_the_summary_keeps_six_decimals_of_the_least_and_most():
    rows = np.array([[0.1234564, 0.5, 0.0, 0.3333333], [0.7654321, 0.25, 0.1, 0.6666667]])
    summary = quality_summary(rows)
    assert summary["brightness"] == [0.123456, 0.765432]
    assert summary["sharpness"] == [0.333333, 0.666667]


def test_number_pair_takes_two_finite_numbers_only():
    assert number_pair([1, 2.5]) == (1, 2.5)
    for given in ([0.0, math.inf], [True, 1.0], ["a", 1], [1.0, 2.0, 3.0], "ab", None):
        assert number_pair(given) is None, given


def test_the_report_counts_good_and_defect_parts_and_shows_five():
    dark = stats(brightness=0.0)
    labels = [False, False, True, False, True, False, False]  # 5 good, 2 defect, all dark
    files = [f"{i}.png" for i in range(7)]
    report = quality_report(labels, files, np.stack([dark] * 7), RANGE)
    assert report["good"] == 5 and report["defect"] == 2 and report["causes"] == {"dark": 7}
    assert [e["file"] for e in report["examples"]] == files[:5]


# --- framing ---------------------------------------------------------------------------------------------------------

def test_check_roi_takes_sixteen_pixels_a_side_and_no_less():
    assert check_roi((0, 0, 16, 16)) == (0, 0, 16, 16)
    for bad in ((0, 0, 15, 16), (0, 0, 16, 15), (-1, 0, 16, 16), (0, -1, 16, 16), (0, 0, 8, 8), (0.5, 0, 16, 16)):
        with pytest.raises(InspectorError, match="region of interest"):
            check_roi(bad)


def test_turned_is_only_a_box_at_an_angle():
    assert not turned(None) and not turned((0, 0, 16, 16)) and not turned(Box(0, 0, 16, 16))
    assert turned(Box(0, 0, 16, 16, 5.0))


def test_a_plain_region_beyond_any_edge_of_the_image_is_refused():
    image = np.zeros((20, 30, 3), np.uint8)  # 30 wide, 20 high
    assert crop(image, (14, 4, 16, 16)).shape == (16, 16, 3)  # touches the right and bottom edges: inside
    for box in ((-1, 0, 16, 16), (0, -1, 16, 16), (15, 0, 16, 16), (0, 5, 16, 16)):  # centre inside each time
        with pytest.raises(InspectorError, match="does not contain the model's region of interest"):
            crop(image, box, "frame.png")


def test_a_turned_region_whose_centre_leaves_the_image_is_one_line():
    image = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(InspectorError, match=r"frame.png: 20x20 px .* 30,30,16,16 "):
        crop(image, Box(30, 30, 16, 16, 10.0), "frame.png")
    with pytest.raises(InspectorError, match="0,30,16,16"):  # its centre (8, 38) is below the frame, though not beside it
        crop(image, Box(0, 30, 16, 16, 10.0), "frame.png")
    assert crop(image, Box(-4, -4, 16, 16, 10.0)).shape == (16, 16, 3)  # centre (4, 4) inside: corners filled from the edge


def test_a_turned_mask_stays_a_mask():
    mask = np.zeros((40, 40), bool)
    mask[:, 20:] = True  # the right half
    # a quarter turn about the centre (20, 20) of the whole 40 x 40 image: the right half is now the bottom or top half
    out = crop(mask, Box(0, 0, 40, 40, 90.0))
    assert out.dtype == bool and out.sum() == pytest.approx(800, abs=40)
    assert not crop(np.zeros((40, 40), bool), Box(0, 0, 40, 40, 90.0)).any()


def test_a_quarter_turns_corners():
    # a 40 x 20 box at (10, 30) turned 90 degrees about its centre (30, 40): its top left corner (10, 30) goes to
    # (30 - 10, 40 + 20) = (20, 60) or (40, 20); counter-clockwise as shown (y down) it is the bottom left one, (20, 60)
    got = corners(Box(10, 30, 40, 20, 90.0))
    assert got == pytest.approx(np.array([[20, 60], [20, 20], [40, 20], [40, 60]]), abs=1e-9)


def test_place_map_and_crop_read_an_unturned_box_as_a_region():
    amap = np.arange(20, dtype=np.float32).reshape(4, 5) + 1.0  # least value 1
    full = place_map(amap, (10, 12), Box(2, 3, 5, 4, 0.0))
    assert full.shape == (10, 12) and full[3, 2] == 1.0 and full[6, 6] == 20.0 and full[0, 0] == 1.0
    assert (crop(full, Box(2, 3, 5, 4, 0.0)) == amap).all()
    assert region_mask((10, 12), (2, 3, 5, 4)).sum() == 20


def test_references_are_spread_evenly_and_at_most_a_hundred():
    paths = [Path(f"{i}.png") for i in range(250)]  # every 250 // 100 = 2nd: 125 of them, the first 100 kept
    assert reference_paths(paths) == paths[0:200:2]
    assert reference_paths(paths[:7]) == paths[:7]


def test_framing_of_a_manifest_takes_four_numbers_for_its_region():
    plain = Framing.of({"roi": [1, 2, 30, 40]})
    assert plain.roi == (1, 2, 30, 40) and plain.turn == 0.0 and plain.margin == 0 and plain.weak == 0.0
    assert Framing.of({"roi": [1, 2, 30, 40], "turn": None}).turn == 0.0
    with pytest.raises(ValueError, match="four numbers"):
        Framing.of({"roi": [1, 2, 30]})


def test_locate_warning_names_the_room_around_the_region():
    # a 20 x 10 region at (5, 3) in 40 x 30 frames: room left 5, top 3, right 40 - 25 = 15, bottom 30 - 13 = 17
    assert locate_warning((5, 3, 20, 10), 17, (30, 40)) is None
    assert "at most 17 px" in locate_warning((5, 3, 20, 10), 18, (30, 40))
    assert "fills them" in locate_warning((0, 0, 40, 30), 1, (30, 40))
    assert locate_warning((0, 0, 40, 30), 1, (30, 40), turn=5.0) is None


def test_a_located_framing_survives_its_manifest():
    located = Framing((10, 20, 32, 24), 8, "dGVtcGxhdGU=", 2, (6, 16, 40, 32), 0.25, turn=5.0)
    assert Framing.of(located.to_net()) == located
    assert Framing.of(replace(located, turn=0.0).to_net()) == replace(located, turn=0.0)
    plain = Framing(ignore="bWFzaw==", frame=(64, 48), fill_around=True)
    assert Framing.of(plain.to_net()) == plain
    # locate set without its locator: a damaged manifest, refused
    with pytest.raises(ValueError, match="without its locator"):
        Framing.of({**located.to_net(), "locator": {"box": [6, 16, 40, 32]}})


def test_a_plain_regions_corners_and_where_a_region_reads():
    assert corners((10, 30, 40, 20)) == pytest.approx(np.array([[10, 30], [50, 30], [50, 50], [10, 50]]))
    image = np.zeros((8, 8), np.uint8)
    assert Framing((2, 3, 16, 16)).located(image) == ((2, 3, 16, 16), None)  # no --locate: the region as given
    assert Framing().located(image) == (None, None)


def test_a_square_turned_a_quarter_covers_itself():
    # a 20 x 20 square at (10, 10) turned 90 degrees about its centre is the same square: 400 pixels, none outside it
    mask = region_mask((40, 40), Box(10, 10, 20, 20, 90.0))
    assert mask.dtype == bool and mask.sum() == pytest.approx(400, abs=40) and not mask[:8].any() and not mask[:, 32:].any()


# --- --ignore --------------------------------------------------------------------------------------------------------

def test_an_ignore_rectangle_may_be_a_single_pixel():
    assert parse_ignore("3,4,1,1") == (3, 4, 1, 1)
    for bad in ("3,4,0,1", "3,4,1,0", "-1,4,1,1", "3,-1,1,1"):
        with pytest.raises(InspectorError, match=f"--ignore {bad}: give X,Y,W,H"):
            parse_ignore(bad)


def rows_ignored(mask: np.ndarray) -> list[int]:
    return [int(r) for r in np.flatnonzero(mask.all(axis=1))]


def test_a_painted_layer_is_opaque_from_alpha_128(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = 255  # white all over: only the alpha says what was painted
    rgba[:5, :, 3] = 128  # opaque enough: ignored
    rgba[5:10, :, 3] = 127  # more transparent than not: inspected
    rgba[12:14, :, 3] = 255  # opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "layer.png")
    # rows 0-4 and 12-13 ignored, and (a pixel more all round) rows 5, 11 and 14
    assert rows_ignored(ignore_mask([str(tmp_path / "layer.png")], (20, 20), None, (20, 20))) == [0, 1, 2, 3, 4, 5, 11, 12, 13, 14]


def test_a_layer_painted_in_one_light_grey_is_a_mask(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:5] = (200, 200, 200, 255)  # painted, in light grey: the lightest painted colour, so not "lighter than white"
    rgba[5:10] = (255, 255, 255, 127)  # white, but more transparent than not: not painted, and no measure of white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "layer.png")
    assert rows_ignored(ignore_mask([str(tmp_path / "layer.png")], (20, 20), None, (20, 20))) == [0, 1, 2, 3, 4, 5]


def test_an_ignore_rectangle_past_the_frames_edge_is_refused():
    assert ignore_mask(["10,15,10,5"], (20, 20), None, (20, 20))[14:, 9:].all()  # reaches the far corner: inside
    for text in ("10,0,11,5", "0,15,5,6"):
        with pytest.raises(InspectorError, match=f"--ignore {text}: the rectangle reaches beyond the 20x20 px"):
            ignore_mask([text], (20, 20), None, (20, 20))


def test_a_mask_may_hold_up_to_five_percent_light_grey(tmp_path):
    grey = np.zeros((20, 20), np.uint8)
    grey[:10] = 255
    grey[10] = 200  # 20 light grey pixels (below 7/8 of white) of 400: 5%, allowed
    Image.fromarray(grey).save(tmp_path / "five.png")
    assert rows_ignored(ignore_mask([str(tmp_path / "five.png")], (20, 20), None, (20, 20))) == list(range(12))
    grey[11, 0] = 200  # 21 of 400: more than 5%
    Image.fromarray(grey).save(tmp_path / "more.png")
    with pytest.raises(InspectorError, match="light grey"):
        ignore_mask([str(tmp_path / "more.png")], (20, 20), None, (20, 20))


def test_a_mask_no_brighter_than_127_is_a_label_mask_not_a_picture(tmp_path):
    grey = np.zeros((20, 20), np.uint8)
    grey[:10] = 100  # as model.images.read_mask: no pixel above mid-grey, so every non-zero one is ignored
    grey[0, 0] = 127
    Image.fromarray(grey).save(tmp_path / "labels.png")
    assert rows_ignored(ignore_mask([str(tmp_path / "labels.png")], (20, 20), None, (20, 20))) == list(range(11))


def test_a_turned_regions_centre_may_lie_on_the_frames_first_pixel_but_not_past_its_last():
    image = np.zeros((20, 20, 3), np.uint8)
    for box in (Box(-8, -8, 16, 16, 90.0), Box(-8, 2, 16, 16, 90.0), Box(2, -8, 16, 16, 90.0)):  # centre x or y 0
        assert crop(image, box).shape == (16, 16, 3)
    for box in (Box(12, 2, 16, 16, 30.0), Box(2, 12, 16, 16, 30.0)):  # centre (20, 10), (10, 20): past pixel 19
        with pytest.raises(InspectorError, match="does not contain"):
            crop(image, box)


def test_a_finding_in_a_plain_region_moves_by_the_regions_place():
    assert box_in_frame((3, 4, 5, 6), (10, 20, 40, 40), (100, 100)) == (13, 24, 5, 6)


def checkers(size: int = 100, side: int = 8) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size]
    board = (((ys // side) + (xs // side)) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


@pytest.mark.parametrize(("roi", "box"), [
    ((20, 20, 30, 30), (16, 16, 38, 38)),  # a tenth of 30 is 3: the least context, 4 px, all round
    ((20, 20, 60, 60), (14, 14, 72, 72)),  # a tenth of 60: 6 px all round
    ((2, 2, 30, 30), (0, 0, 36, 36)),  # cut at the frame's top left: 2 px there, 4 on the other sides
])
def test_the_locate_template_holds_the_region_and_some_context(roi, box):
    image = checkers()
    framing = Framing.fitted(roi, 6, lambda: iter([(image, "a.png"), (image, "b.png")]))
    assert framing.box == box and framing.step == 1 and framing.margin == 6


def test_check_size_takes_a_region_that_touches_the_frames_far_edges():
    framing = Framing((4, 4, 16, 16))
    framing.check_size((20, 20), "a.png")
    for size in ((19, 20), (20, 19)):
        with pytest.raises(InspectorError, match="does not contain"):
            framing.check_size(size, "a.png")


def located(roi, box, margin, template_shape) -> Framing:
    return Framing(roi, margin, png_b64(np.zeros(template_shape, np.uint8)), 1, box)


def test_a_located_region_beyond_the_frame_needs_the_whole_template_within_the_search():
    # template box (10, 10, 30, 30), 5 px margin: in a 30 x 30 frame the search spans 5..35 either way, 30 px, which
    # just holds the 30 px template; a pixel less of frame, and it cannot
    framing = located((12, 12, 26, 26), (10, 10, 30, 30), 5, (30, 30))
    framing.check_size((30, 30), "a.png")
    for size in ((29, 30), (30, 29)):
        with pytest.raises(InspectorError, match="does not contain"):
            framing.check_size(size, "a.png")


def test_a_located_region_may_be_as_wide_or_high_as_the_frame():
    # a 26 x 26 region at (12, 12), its 20 px template searched over 5..31 of a 26 px frame: it fits at (0, 0)
    framing = located((12, 12, 26, 26), (10, 10, 30, 30), 5, (20, 20))
    framing.check_size((26, 40), "a.png")
    framing.check_size((40, 26), "a.png")
    with pytest.raises(InspectorError, match="does not contain"):
        framing.check_size((25, 40), "a.png")


def test_a_found_turned_part_keeps_its_regions_centre_in_the_frame(monkeypatch):
    # the region (40, 40, 20, 20) is centred on its template box's centre (50, 50): turned, its centre moves by the
    # match's shift alone, and a 20 px region's corner is centre - 10; the centre is kept within 1..99 of 100 px
    framing = replace(located((40, 40, 20, 20), (30, 30, 40, 40), 60, (40, 40)), weak=0.5)
    image = np.zeros((100, 100, 3), np.uint8)
    for (dx, dy), (x, y) in (((-20, 15), (20, 55)), ((-55, 0), (-9, 40)), ((55, 0), (89, 40)), ((0, -55), (40, -9)),
                             ((0, 55), (40, 89))):
        monkeypatch.setattr(Framing, "_match", lambda self, rgb, name, d=(dx, dy): (*d, 10.0, 0.9))
        assert framing.located(image) == (Box(x, y, 20, 20, 10.0), None), (dx, dy)


def test_a_part_whose_search_the_frame_cannot_hold_is_not_moved_and_is_warned_of():
    # a 50 px template in a 40 px search: nothing is matched (score -1), the region stays where it was fitted
    framing = replace(located((12, 12, 16, 16), (10, 10, 30, 30), 5, (50, 50)), weak=0.25)
    box, warning = framing.located(np.zeros((40, 40, 3), np.uint8))
    assert box == (12, 12, 16, 16) and "only weakly" in warning


def test_a_finding_filling_a_turned_square_region_fills_its_place():
    # a square turned a quarter is itself: what fills it fills its place, up to the frame's last pixel
    assert box_in_frame((0, 0, 16, 16), Box(0, 0, 16, 16, 90.0), (16, 16)) == (0, 0, 16, 16)


def test_a_search_wholly_beyond_the_frame_is_refused():
    # template box (30, 30, 4, 4), 5 px margin: the search starts at 25, which is past a 25 px frame's last pixel
    framing = located((30, 30, 16, 16), (30, 30, 4, 4), 5, (4, 4))
    for size in ((25, 100), (100, 25)):
        with pytest.raises(InspectorError, match="does not contain"):
            framing.check_size(size, "a.png")
    framing.check_size((26, 100), "a.png")  # a column of frame in it


def test_the_least_frame_holds_the_region_or_the_masks_frame():
    assert Framing((10, 20, 30, 40)).least_frame() == (40, 60)
    assert Framing(ignore="bWFzaw==", frame=(50, 60)).least_frame() == (50, 60)
    assert Framing().least_frame() == (64, 64)


def test_an_ignore_rectangle_covers_its_pixels_and_one_more_all_round():
    expected = np.zeros((20, 20), bool)
    expected[4:10, 4:10] = True  # the 4 x 4 rectangle at (5, 5), grown by a pixel
    assert (ignore_mask(["5,5,4,4"], (20, 20), None, (20, 20)) == expected).all()
    # at half the size: input pixels 2-4 each way hold some of frame pixels 5-8; grown by a pixel, 1-5
    expected = np.zeros((10, 10), bool)
    expected[1:6, 1:6] = True
    assert (ignore_mask(["5,5,4,4"], (20, 20), None, (10, 10)) == expected).all()
    # a frame 40 wide and 20 high at 20 x 10: the rectangle x 8-11, y 4-7 in input pixels x 4-5, y 2-3; grown, 3-6 and 1-4
    expected = np.zeros((10, 20), bool)
    expected[1:5, 3:7] = True
    assert (ignore_mask(["8,4,4,4"], (20, 40), None, (10, 20)) == expected).all()


def test_a_mask_grey_at_seven_eighths_of_its_white_is_still_white(tmp_path):
    grey = np.zeros((20, 20), np.uint8)
    grey[:5] = 248  # its white
    grey[5:10] = 217  # 7/8 of 248: not below it, so not light grey
    Image.fromarray(grey).save(tmp_path / "dim.png")
    assert rows_ignored(ignore_mask([str(tmp_path / "dim.png")], (20, 20), None, (20, 20))) == list(range(11))


# --- overlap ---------------------------------------------------------------------------------------------------------

def points(*rows: list[float]) -> list[torch.Tensor]:
    """One level of [N, C, 1, 1] descriptors, a point each."""
    return [torch.tensor(rows, dtype=torch.float32)[:, :, None, None]]


def one_hot(n: int, channels: int = 8) -> list[torch.Tensor]:
    return [torch.eye(channels)[:n, :, None, None] * 10.0]


def test_a_tie_with_the_rank_th_nearest_is_not_nearer():
    # one-hot points are all equally far apart: at ratio 1 the nearest is not below the 4th nearest, so no twin or part
    assert twins(one_hot(4), [t[4:5] for t in one_hot(5)], ratio=1.0).tolist() == [-1]
    assert part_groups(one_hot(5), ratio=1.0).tolist() == [0, 1, 2, 3, 4]


def test_an_images_third_nearest_capture_joins_its_part():
    # A at 0 with B, C 1 away and D 1.2 away; E-H 1.25 beyond D each (1.733 from A). A's 4th nearest is 1.733, and
    # 1.2 < 0.75 x 1.733 = 1.30: A, B, C, D are one part, though D is A's third nearest and B and C are not near D
    e = np.eye(7)
    d = 1.2 * e[2]
    a_to_h = [np.zeros(7), e[0], e[1], d, *(d + 1.25 * e[k] for k in range(3, 7))]
    groups = part_groups(points(*(p.tolist() for p in a_to_h)))
    assert groups[0] == groups[1] == groups[2] == groups[3]


def test_distances_on_a_level_that_varies_little_are_on_its_own_scale():
    # 0 and 0.02: variance 0.0002, so they differ by 0.02 / sqrt(0.0002) = sqrt(2), as 0 and 2 do
    train = [torch.tensor([0.0, 0.02]).reshape(2, 1, 1, 1)]
    assert overlap._distances(train, train) == pytest.approx(torch.tensor([[0.0, 2**0.5], [2**0.5, 0.0]]), abs=1e-4)


def test_distances_are_computed_a_block_of_rows_at_a_time(monkeypatch):
    calls: list[int] = []
    cdist = torch.cdist

    def spy(x1, x2, **kw):
        calls.append(x1.shape[1])  # [cells, rows, C]: the rows of this block
        return cdist(x1, x2, **kw)

    g = torch.Generator().manual_seed(0)
    train, other = [torch.randn(9, 3, 8, 8, generator=g)], [torch.randn(7, 3, 8, 8, generator=g)]
    monkeypatch.setattr(torch, "cdist", spy)
    for block, rows in ((64 * 9, [1] * 7), (64 * 9 * 3, [3, 3, 1])):  # 64 cells x 9 training images a row
        calls.clear()
        monkeypatch.setattr(overlap, "BLOCK_FLOATS", block)
        assert overlap._distances(train, other).shape == (7, 9) and calls == rows


@pytest.mark.parametrize(("roi", "box"), [((35, 35, 50, 50), (30, 30, 60, 60)), ((35, 45, 50, 30), (30, 40, 60, 40))])
def test_a_turned_part_is_found_at_its_angle_up_to_the_turn_allowed(roi, box):
    img = np.zeros((120, 120), np.uint8)
    img[40:80, 40:50] = 255  # an L, and a mark inside it: a part with one way up
    img[70:80, 40:80] = 255
    img[45:50, 60:75] = 160
    part = np.repeat(img[..., None], 3, axis=2)
    framing = Framing.fitted(roi, 6, lambda: iter([(part, "a.png")]), turn=4.0)
    assert framing.box == box  # centred on (60, 60): the part turns about it in place
    # tried every 2 degrees from -4 to 4, then 1 and 0.5 either side of the best: whole degrees are found exactly;
    # a part turned further than --turn is found at the most it allows
    for angle, found in ((3.0, 3.0), (-3.0, -3.0), (1.0, 1.0), (5.0, 4.0), (-5.0, -4.0)):
        turned_part = cv2.warpAffine(part, cv2.getRotationMatrix2D((60.0, 60.0), angle, 1.0), (120, 120))
        assert framing.located(turned_part)[0] == Box(*roi, found), angle


def test_a_finding_wholly_left_of_the_frame_is_shown_in_its_first_column():
    # the region's top left corner, turned 30 degrees about (0, 30), lies near (-27, 23): a finding there is 25 px or
    # more left of the frame, and shown as a box 1 px wide at its left edge
    x, _, w, _ = box_in_frame((0, 0, 2, 2), Box(-20, 10, 40, 40, 30.0), (100, 100))
    assert (x, w) == (0, 1)
    # and about (30, 0), near (3, -7): above the frame, shown 1 px high in its first row
    _, y, _, h = box_in_frame((0, 0, 2, 2), Box(10, -20, 40, 40, 30.0), (100, 100))
    assert (y, h) == (0, 1)


def test_the_search_is_counted_at_the_templates_step():
    # at step 2, a 30 px search is 15 px: just the 15 px template; a 28 px frame leaves 14
    framing = replace(located((12, 12, 26, 26), (10, 10, 30, 30), 5, (15, 15)), step=2)
    framing.check_size((30, 30), "a.png")
    with pytest.raises(InspectorError, match="does not contain"):
        framing.check_size((28, 30), "a.png")


def test_a_part_moved_past_the_margin_is_followed_as_far_as_the_margin():
    img = np.zeros((120, 120), np.uint8)
    img[40:80, 40:50] = 255
    img[70:80, 40:80] = 255
    img[45:50, 60:75] = 160
    part = np.repeat(img[..., None], 3, axis=2)
    framing = Framing.fitted((35, 35, 50, 50), 6, lambda: iter([(part, "a.png")]))
    # moved 7 px (one past the 6 px margin) each way: the region goes 6 px that way and no further
    for (dx, dy), (x, y) in (((6, 0), (41, 35)), ((7, 0), (41, 35)), ((0, 7), (35, 41)), ((-7, 0), (29, 35)),
                             ((0, -7), (35, 29))):
        assert framing.located(np.roll(part, (dy, dx), axis=(0, 1)))[0] == (x, y, 50, 50), (dx, dy)
