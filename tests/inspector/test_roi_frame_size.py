"""A region of interest in pixels, not located, on a frame of another size: it cuts another place of the frame, and only
changes beyond twice or half the training frames' sides were warned of."""

from __future__ import annotations

import numpy as np

import tests.inspector.test_roi as roi_tests
from inspector.api import Inspector, unlike_training
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
