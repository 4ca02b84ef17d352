"""Audit of the framing options (fit --roi, --locate, --turn, --ignore) end to end: found regions in the full frame,
parts at the frame's edge, mask images, images of another size, bad option values."""

from __future__ import annotations

from model.framing import Box, box_in_frame, corners
from tests.cli import assert_one_line_error, cli


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
