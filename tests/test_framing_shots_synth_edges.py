"""Edges found by mutating the code (framing's edge and --locate warnings, a fixed region's
size check, eval's framing_warnings and its note, --shots hints, synth's disk check, bench of exports alone): each
kills mutants the earlier tests let live. Expected values are worked out by hand from the documented rules."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from inspector.api import unlike_training
from model.errors import InspectorError
from model.evaluate import framing_note, framing_report
from model.fit_types import most_shots, shots_command
from model.framing import Box, Framing, _beyond, locate_warning
from model.synth.writer import _stored_bytes, check_count, check_room
from tests.model.types_data import write_labels

# --- model.framing ---------------------------------------------------------------------------------------------------


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


# --- Framing.fixed ---------------------------------------------------------------------------------------------------


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


# --- model.evaluate: framing_report, framing_note --------------------------------------------------------------------


def test_an_image_with_two_warnings_of_one_kind_counts_once():
    fw = framing_report([True], ["a.png"], [["size", "size"]], ["size"])
    assert fw["kinds"] == {"size": 1} and fw["examples"] == [{"file": "a.png", "kind": "size"}] and fw["defect"] == 1


def test_framing_note_in_full():
    # a: good, size; b: defective, edge and size; c: good, locate; d, e: no warning. Kinds in the order first met
    fw = framing_report([False, True, False, False, True], list("abcde"), [["size"], ["edge", "size"], ["locate"], [], []],
                        ["size", "locate", "edge"])
    assert fw["kinds"] == {"size": 2, "edge": 1, "locate": 1}
    assert framing_note(fw, 5) == (
        "framing: inspection would warn about 3 of the 5 test images (2 good, 1 defective): 2 of a size unlike the training "
        "images' (size), 1 whose part's region reaches past the frame's edge (edge), 1 whose part was found only weakly "
        "(locate); first: a; check how the parts lie in those frames and the camera's framing, or fit on images like them")


def test_framing_note_words_a_kind_it_does_not_know_as_given():
    fw = {"good": 0, "defect": 1, "kinds": {"tilt": 1}, "examples": [{"file": "x.png", "kind": "tilt"}]}
    assert "defective): 1 tilt (tilt); first: x.png;" in framing_note(fw, 4)


# --- model.fit_types: most_shots, shots_command ----------------------------------------------------------------------


def test_most_shots():
    assert most_shots({}) == 5  # no type to keep it lower: the hint's own
    assert most_shots({"a": 9, "b": 7}) == 5
    assert most_shots({"a": 4, "b": 9}) == 3  # one of a's 4 kept to score
    assert most_shots({"a": 2}) == 1  # one to fit, one to score: enough
    assert most_shots({"a": 3}, least=2) == 2 and most_shots({"a": 2}, least=2) is None
    assert most_shots({"a": 1, "b": 8}) is None


def test_shots_command_names_every_short_type_in_the_plural(tmp_path):
    data = write_labels(tmp_path / "d", 3, ("blob",))
    write_labels(data, 1, ("scratch", "stain"))
    assert shots_command("m", data).endswith("--shots 1` (once scratch, stain have 2 images or more: one to fit, one to score)")


def _typed(data: Path, kind: str, n: int) -> None:
    """A type folder `kind` of `n` blob images (write_labels draws only the types it knows)."""
    shutil.copytree(write_labels(data.parent / f"src-{kind}", n, ("blob",)) / "blob", data / kind)


def test_shots_command_leaves_out_empty_and_hidden_folders(tmp_path):
    data = write_labels(tmp_path / "d", 3, ("blob", "scratch"))
    (data / "empty").mkdir()  # eval refuses it in words of its own
    _typed(data, ".thumbs", 1)  # hidden: not a type
    assert shots_command("m", data) == f"`inspector eval m {data} --shots 2`"


def test_shots_command_names_only_the_types_below_two_images(tmp_path):
    data = write_labels(tmp_path / "d", 2, ("blob",))  # two are enough for --shots 1
    _typed(data, "scratch", 1)
    assert shots_command("m", data).endswith("--shots 1` (once scratch has 2 images or more: one to fit, one to score)")


def test_shots_command_leaves_out_a_good_folder_whatever_its_case(tmp_path):
    data = write_labels(tmp_path / "d", 3, ("blob", "scratch"))
    _typed(data, "Good", 1)  # good images, not a type short of examples
    assert shots_command("m", data) == f"`inspector eval m {data} --shots 2`"


def test_shots_command_of_a_type_named_test(tmp_path):
    # a labelled folder's type called "test" holds images, not type folders: it is not an MVTec test/ folder
    data = write_labels(tmp_path / "d", 2, ("blob",))
    _typed(data, "test", 2)
    assert shots_command("m", data) == f"`inspector eval m {data} --shots 1`"


def test_shots_command_of_a_folder_that_is_not_there_is_still_a_command(tmp_path):
    missing = tmp_path / "missing"
    assert shots_command("m", missing) == f"`inspector eval m {missing} --shots 5`"  # eval says what is wrong with it


# --- model.synth.writer: check_count, _stored_bytes, check_room ------------------------------------------------------


def test_one_image_is_enough():
    check_count(1)
    with pytest.raises(InspectorError, match="--n 0: give the number"):
        check_count(0)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_stored_bytes_bound_in_whole_blocks():
    # the bound: pixels * 1.01 (rounded down) + a filter byte a row + a 4096-byte block, in whole 4096-byte blocks, for
    # the image and its mask (a plane), and 512 bytes of labels.json
    # 100x100 colour: 30300 + 100 + 4096 = 34496 -> 9 blocks; mask 10100 + 100 + 4096 = 14296 -> 4 blocks
    assert _stored_bytes(_noise(100, 100), encode=False) == 9 * 4096 + 4 * 4096 + 512
    # grey (three equal channels), stored as one plane: 14296 -> 4 blocks, twice
    grey = np.repeat(_noise(100, 100)[..., :1], 3, axis=2)
    assert _stored_bytes(grey, encode=False) == 8 * 4096 + 512
    # 32x42 colour: 4032 * 1.01 = 4072 + 32 + 4096 = 8200, just past 2 blocks (the 1 % or the filter bytes make it 3);
    # mask 1357 + 32 + 4096 = 5485 -> 2 blocks
    assert _stored_bytes(_noise(32, 42), encode=False) == 3 * 4096 + 2 * 4096 + 512
    # encoded: a flat 16x16 image and its empty mask are each far below a block
    assert _stored_bytes(np.full((16, 16, 3), 90, np.uint8), encode=True) == 2 * 4096 + 512


class _Cache:
    """model.synth.writer._GoodCache's load, from arrays by path."""

    def __init__(self, images: dict[Path, np.ndarray]) -> None:
        self.images = images

    def load(self, path: Path, _goods: list[Path]) -> tuple[Path, np.ndarray]:
        return path, self.images[path]


def _free(monkeypatch, free: int) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(1 << 40, (1 << 40) - free, free))


FLAT = np.full((16, 16, 3), 90, np.uint8)  # encoded: 2 blocks and the record, 8704 bytes; bound: 2 x 2 blocks + 512


def _room(tmp_path: Path, n: int, images: list[np.ndarray], replace: bool = False) -> None:
    goods = [tmp_path / f"{i}.png" for i in range(len(images))]
    check_room(tmp_path / "out", n, goods, _Cache(dict(zip(goods, images, strict=True))), replace)


def test_check_room_at_the_estimate_exactly(tmp_path, monkeypatch):
    # beyond the bound (16896), so the encoded estimate (8704 an image) decides: a set that just fits is made
    _free(monkeypatch, 8704)
    _room(tmp_path, 1, [FLAT])
    _free(monkeypatch, 8703)
    with pytest.raises(InspectorError) as refused:
        _room(tmp_path, 1, [FLAT])
    assert str(refused.value).endswith("need about 0 MB; free space or choose another folder")  # no "--n 0"
    _free(monkeypatch, 2 * 8704 + 100)
    with pytest.raises(InspectorError, match="give --n 2 or fewer"):
        _room(tmp_path, 3, [FLAT])
    _room(tmp_path, 2, [FLAT])


def test_check_room_counts_what_replace_frees(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.json").write_text(json.dumps({"generator": "inspector synth", "images": [{"image": "a.png", "mask": "m.png"}]}))
    (out / "a.png").write_bytes(b"\0" * 5000)
    (out / "m.png").write_bytes(b"")
    _free(monkeypatch, 4000)  # and 5000 freed: one image of 8704 fits
    _room(tmp_path, 1, [FLAT], replace=True)
    with pytest.raises(InspectorError) as refused:
        _room(tmp_path, 2, [FLAT], replace=True)
    assert "(and 0 MB of the earlier output it replaces)" in str(refused.value) and "give --n 1 or fewer" in str(refused.value)
    with pytest.raises(InspectorError):  # without --force nothing is freed
        _room(tmp_path, 1, [FLAT])


def test_check_room_samples_the_middle_image_and_takes_the_mean_of_the_largest(tmp_path, monkeypatch):
    # four flat 16x16 images and, in the middle, a 300x300 colour one of noise (PNG can't shrink it): its bound is
    # 68 + 24 blocks + 512 = 377344; encoded, about 270300 + 4096 + 512. The mean over the first, middle and last
    # is about 98800
    images = [FLAT, FLAT, _noise(300, 300), FLAT, FLAT]
    _free(monkeypatch, 50_000)  # the flat images' bound alone, or the least estimate, would fit
    with pytest.raises(InspectorError, match="free space or choose another folder"):
        _room(tmp_path, 1, images)
    _free(monkeypatch, 150_000)  # the mean fits, the largest image's estimate would not
    _room(tmp_path, 1, images)


# --- inspector.commands.bench_model ----------------------------------------------------------------------------------


def _engine(path: Path, source: dict) -> Path:
    from exporters.manifest import FORMAT, write_sidecar

    write_sidecar(path, {"format": FORMAT, "kind": "tensorrt-fp16", "input": {"name": "image"}, "outputs": ["score", "amap"],
                         "net": {"input_size": [64, 64]}, "thresholds": {"image": 1.0, "pixel": 1.0}, "source": source},
                  b"engine bytes")
    return path


def test_an_export_naming_no_checkpoint_has_no_baseline_and_says_so(tmp_path):
    from inspector.commands.bench_model import _source_checkpoint

    engine = _engine(tmp_path / "model-fp16.engine", {"weights_sha256": "ab" * 32})
    ckpt, note = _source_checkpoint(engine)
    assert ckpt is None and note.startswith(f"no torch eager baseline (x torch): {engine}'s manifest names no checkpoint; ")


def test_an_export_whose_checkpoint_is_damaged_has_no_baseline_and_says_why(tmp_path):
    from inspector.commands.bench_model import _source_checkpoint

    damaged = tmp_path / "m.ckpt"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{not json")
    ckpt, note = _source_checkpoint(_engine(tmp_path / "model-fp16.engine", {"checkpoint": str(damaged), "weights_sha256": "ab" * 32}))
    assert ckpt is None and note.startswith("no torch eager baseline (x torch): ") and str(damaged) in note


def test_exports_alone_skip_an_unreadable_one_and_need_one(tmp_path):
    from inspector.commands.bench_model import _check_exported_from

    first = _engine(tmp_path / "a.engine", {"checkpoint": "/x/m.ckpt", "weights_sha256": "ab" * 32})
    broken = tmp_path / "b.onnx"
    broken.write_bytes(b"no sidecar")  # listed as skipped, with why, where it is opened
    _check_exported_from(None, [first, broken])
    _check_exported_from(None, [])


def test_no_calibration_is_asked_only_of_int8_without_calib(tmp_path):
    from inspector.commands.bench_model import _no_calibration

    gone = tmp_path / "gone.ckpt"  # reading it fails: asked at all, the answer is a reason
    assert _no_calibration(gone, "calib/", ["onnx-int8", "tensorrt-int8"]) is None  # a --calib that fails is the user's
    assert _no_calibration(gone, None, ["onnx", "onnx-fp16"]) is None  # nothing to calibrate
    assert _no_calibration(gone, None, ["onnx-fp16", "onnx-int8"])  # its training data is not there: why INT8 is skipped


def test_a_part_found_two_pixels_past_the_edge_is_warned_of():
    # found to `step` px (1 here): a pixel past the edge is the search's own error, two are not
    from tests.model.test_framing_warnings import EDGE, frame, framing

    assert framing().located(frame(-31, 0), "f", edge=True)[1] is None  # 30 px from the left edge, 1 px past
    box, warning = framing().located(frame(-32, 0), "f", edge=True)
    assert box[:2] == (0, 26) and warning is not None and warning.startswith(EDGE)


def test_a_part_two_pixels_past_the_right_edge_or_turned_past_the_left_one_is_warned_of():
    # NOMINAL's 72 px part is 38 px from the 140 px frame's right edge: 40 px to the right, two columns of it are cut
    from tests.model.test_framing_warnings import EDGE, frame, framing

    assert framing().located(frame(38, 0), "f", edge=True)[1] is None
    warning = framing().located(frame(40, 0), "f", edge=True)[1]
    assert warning is not None and warning.startswith(EDGE)
    # upright, it would just touch the left edge (30 px from it); turned 8 degrees its corners reach
    # 36 * (cos 8 + sin 8) - 36 = 4.7 px past it
    warning = framing(10.0).located(frame(-30, 0, 8.0), "f", edge=True)[1]
    assert warning is not None and warning.startswith(EDGE)


def test_a_faint_but_positive_match_still_moves_the_region(monkeypatch):
    # only no correlation at all (0 or less) leaves the region where it was fitted: a faint best match is a place
    import cv2

    from tests.model.test_framing_match import ROI
    from tests.model.test_framing_options import _blocks

    framing = Framing.fitted(ROI, 14, lambda: iter([(_blocks(4), "first")] * 3))
    real = cv2.matchTemplate
    monkeypatch.setattr(cv2, "matchTemplate", lambda image, templ, method: real(image, templ, method) * 0.01)
    dx, dy, angle, score = framing._match(_blocks(-2), "moved")
    assert (dx, dy, angle) == (-6, 0, 0.0) and 0 < score < 0.011


# --- reports.validation: framing_warned, framing_line ----------------------------------------------------------------


def test_framing_warned_by_defect_images_alone_and_not_by_a_null():
    from reports.validation import framing_warned

    assert framing_warned({"framing_warnings": {"good": 0, "defect": 1}})
    assert not framing_warned({"framing_warnings": None}) and not framing_warned({})  # JSON null: an eval that did not check


def test_framing_line_of_kinds_unknown_or_none_in_the_language_s_numbers():
    from reports.i18n import translations
    from reports.numbers import STYLES
    from reports.validation import framing_line
    from tests.reports.test_validation import run_of

    def line(framing: dict, lang: str = "en") -> dict:
        return framing_line(run_of([0.0, 2.0], ["good", "crack"], framing_warnings=framing), translations(lang).gettext, STYLES[lang])

    assert line({"good": 0, "defect": 12000, "kinds": {"tilt": 12000}, "examples": []}, "es") == {
        "good": 0, "defect": 12000, "kinds": "12.000 tilt", "first": "—"}  # Spanish groups 5 digits up
    assert line({"good": 1, "defect": 0})["kinds"] == "—"  # a hand-made JSON without kinds: no list, not a TypeError
