"""`inspector eval` counts the test images a station would warn about for how the part lies in the frame (a size unlike
the training images', a part found only weakly, a region reaching past the frame's edge), as it counts image_quality's:
a QA engineer validating a --locate model learnt of them only at the station."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.evaluate import framing_note, framing_report
from tests.cli import cli
from tests.inspector.test_roi import NOMINAL, PART, marked, placed
from tests.synthetic import defect_image, good_image

MARGIN = 38  # --locate: as far as the region can move in the 140x130 px frames (30 px from their left edge)


def _wide(frame: np.ndarray) -> np.ndarray:
    """The frame with 200 px more belt on its right: a camera whose crop changed (the part where it was)."""
    belt = np.random.default_rng(99).integers(30, 60, (frame.shape[0], 200, 3), dtype=np.uint8)
    return np.concatenate([frame, belt], axis=1)


@pytest.fixture(scope="module")
def located(tmp_path_factory) -> tuple[Path, Path]:
    """(data, a --roi/--locate model of it): its test set holds a blank belt (locate), a part 6 px past the frame's
    left edge (edge) and a defect in a wider frame (size), among parts in view."""
    from inspector.cli import main

    root = tmp_path_factory.mktemp("eval56")
    data = root / "data"
    rng = np.random.default_rng(1)
    images = {f"train/good/{i:03d}.png": placed(marked(good_image(i)), *((int(v) for v in rng.integers(-12, 13, 2)) if i else (0, 0)), i)
              for i in range(12)}
    images.update({f"test/good/{i:03d}.png": placed(marked(good_image(40 + i)), 3 * i - 5, 4 - 2 * i, 40 + i) for i in range(4)})
    images["test/good/blank.png"] = placed(np.full((PART, PART, 3), 45, np.uint8), 0, 0, 50)
    images["test/good/edge.png"] = placed(marked(good_image(51)), -36, 0, 51)
    images.update({f"test/blob/{i:03d}.png": placed(marked(defect_image(i)[0]), 2 * i, -i, 60 + i) for i in range(3)})
    images["test/blob/wide.png"] = _wide(placed(marked(defect_image(3)[0]), 4, 2, 63))
    for name, rgb in images.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / name), rgb)
    assert main([str(a) for a in ("fit", data, "--out", root / "m", "--size", 64, "--coreset", 0.25, "--synth", 0,
                                  "--roi", ",".join(map(str, NOMINAL)), "--locate", MARGIN)]) == 0
    return data, root / "m"


def test_eval_counts_the_framing_warnings_a_station_would_give(capsys, located, tmp_path):
    data, model = located
    rc, out, err = cli(capsys, "eval", model, data, "--json", "--no-overlap")
    assert rc == 0, err
    fw = json.loads(out)["framing_warnings"]
    assert fw["checked"] == ["size", "locate", "edge"]
    assert fw["kinds"] == {"locate": 1, "edge": 1, "size": 1} and (fw["good"], fw["defect"]) == (2, 1)
    assert sorted((Path(e["file"]).name, e["kind"]) for e in fw["examples"]) == [
        ("blank.png", "locate"), ("edge.png", "edge"), ("wide.png", "size")]
    # and said in the text output, and in the validation report in its own line (not as eval's English note)
    rc, out, err = cli(capsys, "eval", model, data, "--no-overlap", "--report", tmp_path, "--format", "html")
    assert rc == 0, err
    (line,) = [ln for ln in out.splitlines() if "note: framing:" in ln]
    assert "would warn about 3 of the 10 test images (2 good, 1 defective)" in line
    assert "1 whose part's region reaches past the frame's edge (edge)" in line and "1 whose part was found only weakly (locate)" in line
    (html,) = tmp_path.glob("*.html")
    text = html.read_text().replace("&#39;", "'")
    assert 'id="framing-warnings">2 good and 1 defect test images are framed so that inspection would warn about them' in text
    assert "framing:" not in text


def test_eval_of_a_model_without_a_region_counts_only_sizes(capsys, tiny_ckpt, tiny_data):
    # as image_quality: zeros where the check applies and nothing was found; a part is not located, so neither kind is
    rc, out, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--no-overlap")
    assert rc == 0, err
    report = json.loads(out)
    assert report["framing_warnings"] == {"checked": ["size"], "good": 0, "defect": 0, "kinds": {}, "examples": []}
    assert not any(n.startswith("framing:") for n in report.get("notes", []))


def test_the_examples_name_the_first_few_of_each_kind():
    # a hundred size warnings named first hid the one part found past the frame's edge
    files = [f"{i}.png" for i in range(8)]
    kinds = [["size"]] * 6 + [["size", "edge"], []]
    fw = framing_report([False] * 4 + [True] * 4, files, kinds, ["size", "locate", "edge"])
    assert fw["kinds"] == {"size": 7, "edge": 1} and (fw["good"], fw["defect"]) == (4, 3)  # images, not warnings
    assert fw["examples"] == [{"file": f"{i}.png", "kind": "size"} for i in range(3)] + [{"file": "6.png", "kind": "edge"}]
    assert framing_note(framing_report([False], ["a.png"], [[]], ["size"]), 1) is None


# --- model.evaluate: framing_report, framing_note --------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.


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
