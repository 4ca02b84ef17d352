"""A region of interest in pixels, not located, on a frame of another size: it cuts another place of the frame, and only
changes beyond twice or half the training frames' sides were warned of."""

from __future__ import annotations

import numpy as np

import tests.inspector.test_roi as roi_tests
from inspector.api import Inspector, unlike_training
from model.framing import Framing
from tests.inspector.test_roi import FRAME, ROI, frame
from tests.synthetic import good_image

framed_data, models = roi_tests.framed_data, roi_tests.models  # test_roi's fixtures: its two models

SIZES = {"min": [130, 120], "max": [130, 120], "aspect": [130 / 120, 130 / 120]}


def test_a_fixed_region_warns_of_any_frame_size_beyond_the_training_ones():
    assert unlike_training((160, 160), SIZES) is None  # without a region: within twice or half
    said = unlike_training((160, 160), SIZES, fixed_region=True)
    assert said == ("image 160x160 px is unlike the training images (130x120 px); check the camera's resolution, crop and "
                    "orientation, or fit on images like it")
    assert unlike_training((120, 130), SIZES, fixed_region=True) is None  # the training frames' own size
    assert unlike_training((122, 132), SIZES, fixed_region=True) is None  # 2 px more: within 2 %
    assert unlike_training((120, 126), SIZES, fixed_region=True) is not None  # 4 px fewer across: past 2 %, the aspect too


def test_inspect_with_a_region_says_a_frame_of_another_size(models):
    roi = Inspector.load(models[1])
    assert roi.engine.meta.framing.roi == ROI and FRAME == (120, 130)
    assert roi.inspect(frame(good_image(3), 5)).warnings == []
    bigger = np.zeros((160, 170, 3), np.uint8)
    bigger[:120, :130] = frame(good_image(3), 5)
    assert roi.inspect(bigger).warnings == [unlike_training((160, 170), SIZES, fixed_region=True)]


# --- Framing.fixed ---------------------------------------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.


def test_only_a_region_that_is_not_located_is_fixed():
    assert Framing().fixed is False  # whole frames: no region to cut elsewhere
    assert Framing((0, 0, 32, 32)).fixed is True
    assert Framing((0, 0, 32, 32), margin=10).fixed is False  # it follows the part: the 2 % size check is not for it


# --- inspector.api.unlike_training -----------------------------------------------------------------------------------

SQUARE = {"min": [96, 96], "max": [96, 96], "aspect": [1.0, 1.0]}


def test_unlike_training_allows_exactly_twice_or_half_the_sides_and_25_percent_in_shape():
    # "more than twice or half their sides, or a width/height ratio 25 % beyond theirs": the bounds themselves are alike
    assert unlike_training((48, 48), SQUARE) is None and unlike_training((192, 192), SQUARE) is None
    assert unlike_training((47, 47), SQUARE) and unlike_training((193, 193), SQUARE)
    assert unlike_training((100, 125), SQUARE) is None and unlike_training((125, 100), SQUARE) is None  # 1.25 and 0.8
    assert unlike_training((100, 126), SQUARE) and unlike_training((126, 100), SQUARE)


def test_unlike_training_checks_the_height_and_the_shape_the_right_way_round():
    # heights beyond twice the tallest training image, the width and the shape within theirs
    tall = {"min": [50, 50], "max": [100, 100], "aspect": [0.5, 2.0]}
    assert unlike_training((200, 150), tall) is None and unlike_training((201, 150), tall)
    wide = {"min": [100, 50], "max": [100, 50], "aspect": [2.0, 2.0]}  # 100x50 px (W x H) frames
    assert unlike_training((50, 100), wide) is None
    assert unlike_training((100, 50), wide)  # turned upright


def test_a_fixed_region_checks_the_shape_within_2_percent_too():
    # frames of 100x100 to 110x110: a 110x100 one is within each side's range but 10 % wider in shape than any of them
    sizes = {"min": [100, 100], "max": [110, 110], "aspect": [1.0, 1.0]}
    assert unlike_training((100, 110), sizes) is None
    assert unlike_training((100, 110), sizes, fixed_region=True)
    assert unlike_training((105, 105), sizes, fixed_region=True) is None


def test_unlike_training_names_a_range_whose_widths_agree():
    sizes = {"min": [96, 50], "max": [96, 100], "aspect": [0.96, 1.92]}
    assert "(96x50 to 96x100 px)" in unlike_training((500, 96), sizes)


def test_unlike_training_says_nothing_of_sizes_recorded_as_zero():
    # a malformed (hand-edited, resealed) record is no measure: 0 px was read as "any size from nothing"
    assert unlike_training((500, 500), {"min": [0, 0], "max": [96, 96], "aspect": [1.0, 1.0]}) is None
