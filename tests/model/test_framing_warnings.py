"""Part framing warnings: a located region that reaches past the frame's edge (kept inside it, so part of the region
went uninspected, unsaid), and fit's note on a region that touches the first training image's edge (the --locate
template then never holds that side's outline)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from inspector import Inspector
from inspector.engines.base import HeadOutput, ModelMeta
from model.framing import Box, Framing, _beyond, locate_warning
from reports.i18n import translations
from reports.warnings import translate_warning, warning_kind
from tests.inspector.test_roi import NOMINAL, PART, marked, placed
from tests.synthetic import good_image

SHIFTS = [(0, 0), (3, -4), (-8, 2), (12, 9), (-2, -13)]  # the training parts; the first is where the region is
EDGE = "the part's region reaches past the frame's edge"


@cache
def framing(turn: float = 0.0) -> Framing:
    """--locate 40 around NOMINAL (30 px from the 140x130 frame's left edge): a part may move 10 px out of view."""
    return Framing.fitted(NOMINAL, 40, lambda: ((placed(marked(good_image(k)), dx, dy, k), f"{k}.png")
                                                for k, (dx, dy) in enumerate(SHIFTS)), turn)


def frame(dx: int, dy: int, angle: float = 0.0) -> np.ndarray:
    return placed(marked(good_image(77)), dx, dy, 3, angle)


@pytest.mark.parametrize(("dx", "dy", "clipped"), [(-38, 0, (0, 26)), (0, -31, (30, 0)), (-36, -30, (0, 0))])
def test_a_part_partly_out_of_view_is_inspected_with_a_warning(dx, dy, clipped):
    # the part found 8 px (or 5, or 6 and 4) past the frame's edge: its region was moved back inside and the part judged
    # on what remains, unsaid
    box, warning = framing().located(frame(dx, dy), "f", edge=True)
    assert box == (*clipped, PART, PART)  # still kept in the frame, as before
    assert warning is not None and warning.startswith(EDGE), warning
    assert warning_kind(warning) == "edge"  # counted apart (result.warning_kinds, inspector_warnings_total)
    for lang in ("es", "zh"):  # and shown in a report's language
        assert translate_warning(translations(lang).gettext, warning) != warning
    assert translate_warning(translations("en").gettext, warning) == warning[0].upper() + warning[1:]
    # fit reads a training image's warning as a part it could not find: it says nothing of the edge there
    assert framing().located(frame(dx, dy), "f") == (box, None)


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (-30, 0), (38, 0), (-31, 0), (0, 33)])
def test_a_part_in_view_or_at_the_edge_to_the_search_s_step_has_no_warning(dx, dy):
    # at the edge, or a pixel past it (found to `step` px: 1 here): no warning on every part of a line whose parts stop there
    box, warning = framing().located(frame(dx, dy), "f", edge=True)
    assert warning is None, (dx, dy, box)


def test_a_weak_match_is_said_rather_than_the_edge():
    # nothing surely found, so neither is how far it reaches: the one warning is the weak match's
    blank = placed(np.full((PART, PART, 3), 45, np.uint8), -38, 0, 9)
    _, warning = framing().located(blank, "f", edge=True)
    assert warning is not None and "only weakly" in warning


def test_a_turned_region_whose_corners_leave_the_frame_is_warned_of():
    # with --turn the region's centre is kept in the frame and its corners filled from the edge: as unseen
    box, warning = framing(10.0).located(frame(-36, 0, 8.0), "f", edge=True)
    assert warning is not None and warning.startswith(EDGE), (box, warning)
    assert framing(10.0).located(frame(0, 0, 8.0), "f", edge=True)[1] is None


class _Engine:
    """Scores every image 0 with a flat map, framed by `framing()`."""

    def __init__(self) -> None:
        self.meta = ModelMeta(model_id="m", backbone="b", input_size=(32, 32), image_threshold=1.0, pixel_threshold=1.0,
                              sha256="0" * 64, path="fake.onnx", runtime="fake", framing=framing())

    def infer(self, batch: np.ndarray) -> HeadOutput:
        return HeadOutput(np.zeros(len(batch), np.float32), np.zeros((len(batch), 32, 32), np.float32))

    def close(self) -> None:
        pass


def test_the_inspector_records_the_edge_warning_with_its_kind():
    with Inspector(_Engine()) as inspector:
        out, inside = inspector.inspect_batch([frame(-38, 0), frame(5, 5)])
    assert out.roi == (0, 26, PART, PART) and [warning_kind(w) for w in out.warnings] == ["edge"]
    assert out.to_record()["warning_kinds"] == ["edge"]
    assert inside.warnings == []


def test_fit_notes_a_region_that_touches_the_first_training_image_s_edge():
    # its template then never holds that side's outline: parts are located less surely
    note = locate_warning((0, 12, 96, 96), 10, (120, 130))
    assert note.startswith("--locate 10: the region 0,12,96,96 of the 130x120 px training images touches their left edge")
    assert "give the --roi in a first training image" in note
    assert "left and top edges" in locate_warning((0, 0, 96, 96), 10, (120, 130))
    assert "right and bottom edges" in locate_warning((34, 24, 96, 96), 10, (120, 130), turn=5.0)  # turned alike
    assert locate_warning((1, 12, 96, 96), 10, (120, 130)) is None  # clear of the edge by a pixel: the template holds it
    assert locate_warning((0, 0, 130, 120), 10, (120, 130), turn=5.0) is None  # it fills the frame: nothing to miss


def test_fit_says_so_and_goes_on(capsys, tiny_data, tmp_path, monkeypatch):
    import model.fit
    from model.errors import InspectorError
    from tests.cli import cli

    def stop(*_a, **_k):
        raise InspectorError("stopped before fitting")

    monkeypatch.setattr(model.fit, "fit", stop)
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--roi", "0,20,60,60", "--locate", 10, "--synth", 0)
    assert err.splitlines()[0].startswith("warning: --locate 10: the region 0,20,60,60 of the 96x96 px training images "
                                          "touches their left edge"), err
    assert "stopped before fitting" in err  # a warning: fit goes on


# --- model.framing ---------------------------------------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.


def test_beyond_measures_each_edge_of_a_frame_that_is_not_square():
    shape = (50, 200)  # H, W: a swapped shape, or one maximum over x and y, reads another edge
    assert _beyond((10, 10, 20, 20), shape) == 0.0
    assert _beyond((-3, 10, 20, 20), shape) == 3.0  # left
    assert _beyond((5, -7, 20, 20), shape) == 7.0  # top
    assert _beyond((190, 10, 20, 20), shape) == 10.0  # right: 210 - 200
    assert _beyond((10, 40, 20, 20), shape) == 10.0  # bottom: 60 - 50
    assert _beyond((180, 30, 20, 20), shape) == 0.0  # in the corner, touching both far edges
    # a 20 px square turned 45 degrees about its centre (10, 10): its corners 10 * sqrt(2) from it, 4.14 px past the left
    assert _beyond(Box(0, 0, 20, 20, 45.0), (100, 100)) == pytest.approx(10 * 2 ** 0.5 - 10)


def test_locate_warning_is_none_for_a_region_beyond_the_frame_on_one_side_alone():
    # 40 + 96 > 130: fit's one-line error says so; a warning of the top edge beside it would be about a region never used
    assert locate_warning((40, 0, 96, 96), 10, (120, 130)) is None
    assert locate_warning((0, 30, 96, 96), 10, (120, 130)) is None  # 30 + 96 > 120


def test_locate_warning_names_three_edges_and_the_room_left_on_the_fourth():
    # 130 px wide, 100 of 120 high: 20 px of room below, none elsewhere; it touches three edges
    note = locate_warning((0, 0, 130, 100), 20, (120, 130))
    assert note.startswith("--locate 20: the region 0,0,130,100 of the 130x120 px training images touches their left, top "
                           "and right edges, so the template holds no outline"), note
    assert locate_warning((0, 0, 130, 100), 21, (120, 130)).endswith("can move at most 20 px within them; give --locate 20 or less")



def test_a_part_found_two_pixels_past_the_edge_is_warned_of():
    # found to `step` px (1 here): a pixel past the edge is the search's own error, two are not
    assert framing().located(frame(-31, 0), "f", edge=True)[1] is None  # 30 px from the left edge, 1 px past
    box, warning = framing().located(frame(-32, 0), "f", edge=True)
    assert box[:2] == (0, 26) and warning is not None and warning.startswith(EDGE)


def test_a_part_two_pixels_past_the_right_edge_or_turned_past_the_left_one_is_warned_of():
    # NOMINAL's 72 px part is 38 px from the 140 px frame's right edge: 40 px to the right, two columns of it are cut
    assert framing().located(frame(38, 0), "f", edge=True)[1] is None
    warning = framing().located(frame(40, 0), "f", edge=True)[1]
    assert warning is not None and warning.startswith(EDGE)
    # upright, it would just touch the left edge (30 px from it); turned 8 degrees its corners reach
    # 36 * (cos 8 + sin 8) - 36 = 4.7 px past it
    warning = framing(10.0).located(frame(-30, 0, 8.0), "f", edge=True)[1]
    assert warning is not None and warning.startswith(EDGE)
