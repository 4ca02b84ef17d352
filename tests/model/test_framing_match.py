"""Locating a part (--locate, --turn) where the correlation has no answer (a blank frame, NaN scores) and where a turned
part leaves the frame's edge, so that its search window reaches past it: what `Framing._match` must return there."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.framing import Framing
from tests.model.test_framing_options import _blocks  # a 200x180 frame, its 96 px part at (x, 42) turned by angle

ROI = (4, 42, 96, 96)  # the part's place in the training frame, _blocks(4): 4 px from the left edge


@pytest.fixture(scope="module")
def turning() -> Framing:
    # a 24 px margin reaches 24 px past the frame's left edge (the template box starts at 0): a part 10 or 18 px out
    # of the frame is still within reach of the search
    return Framing.fitted(ROI, 24, lambda: iter([(_blocks(4), "first")] * 3), 10.0)


@pytest.mark.parametrize(("x", "angle"), [(-10, 5.0), (-10, -5.0), (-18, 5.0), (-18, -5.0)])
def test_a_turned_part_beyond_the_frames_edge_is_found_at_its_place_and_angle(turning, x, angle):
    # the part is placed at x (10 or 18 px of it beyond the left edge) and turned exactly 5 degrees, an angle the search
    # tries: its template box moved by x - 4 and not at all up or down. What is beyond the edge is filled from it for the
    # turn, and must count as unseen at the angle tried (the mask turned with the window): counted as seen, or unturned,
    # the fill's streaks pulled the found angle half a degree off (mutants of _match that no test caught)
    dx, dy, found, score = turning._match(_blocks(x, angle), "out")
    assert (dx, dy, found) == (x - 4, 0, angle) and score >= turning.weak


@pytest.mark.parametrize("turn", [0.0, 10.0])
def test_a_blank_frame_leaves_the_region_where_it_was_fitted(turn):
    # a blank frame correlates 0 everywhere: the ties put the region in the search's top left corner (14 px left and
    # up) and, with --turn, at its first angle (-10 degrees), a place and angle nothing in the frame asked for
    framing = Framing.fitted(ROI, 14, lambda: iter([(_blocks(4), "first")] * 3), turn)
    for level in (0, 20, 255):
        blank = np.full((180, 200, 3), level, np.uint8)
        assert framing._match(blank, "blank") == (0, 0, 0.0, 0.0)
        box, warning = framing.located(blank, "blank")
        assert box == ROI and "only weakly" in warning


def _with_nan(where):
    """cv2.matchTemplate as a build without OpenCV's guard for flat windows gives it: NaN at `where(scores)`."""
    real = cv2.matchTemplate

    def match(image, templ, method):
        scores = real(image, templ, method)
        scores[where(scores)] = np.nan
        return scores

    return match


def _corners(scores: np.ndarray) -> np.ndarray:
    where = np.zeros(scores.shape, bool)
    where[0, 0] = where[0, -1] = where[-1, -1] = True
    return where


def test_nan_correlations_are_no_match(monkeypatch):
    framing = Framing.fitted(ROI, 14, lambda: iter([(_blocks(4), "first")] * 3))
    moved = _blocks(-2)
    expected = framing._match(moved, "moved")
    assert expected[:3] == (-6, 0, 0.0) and expected[3] > 0.9
    # NaN in the search's corners (cv2.minMaxLoc, given a NaN first, answers NaN at (-1, -1)): the part is found as before
    monkeypatch.setattr(cv2, "matchTemplate", _with_nan(_corners))
    assert framing._match(moved, "moved") == expected
    # NaN everywhere: nothing matched, the lowest score, and the region is not moved
    monkeypatch.setattr(cv2, "matchTemplate", _with_nan(lambda s: np.ones(s.shape, bool)))
    assert framing._match(moved, "moved") == (0, 0, 0.0, -1.0)
    box, warning = framing.located(moved, "moved")
    assert box == ROI and "only weakly" in warning


# --- a faint match --------------------------------------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.
def test_a_faint_but_positive_match_still_moves_the_region(monkeypatch):
    # only no correlation at all (0 or less) leaves the region where it was fitted: a faint best match is a place
    import cv2

    from tests.model.test_framing_options import _blocks

    framing = Framing.fitted(ROI, 14, lambda: iter([(_blocks(4), "first")] * 3))
    real = cv2.matchTemplate
    monkeypatch.setattr(cv2, "matchTemplate", lambda image, templ, method: real(image, templ, method) * 0.01)
    dx, dy, angle, score = framing._match(_blocks(-2), "moved")
    assert (dx, dy, angle) == (-6, 0, 0.0) and 0 < score < 0.011
