"""exporters/verify.py's compare(), judged where a mutation of it went unnoticed: its documented tolerances at their
boundaries, map and NaN checks, the AUROC's swapped-pair allowance, data without an AUROC, region overlap at 0.5,
and type probabilities only one side gives. Engines are scripted: each answers the scores and maps it is given."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from model.errors import InspectorError
from model.framing import Framing

SIZE = 16
WHOLE = Framing()  # whole frames, as a checkpoint without a region of interest


class _Engine:
    """An engine answering the given scores (and maps, type probabilities), in the order compare() asks for them."""

    def __init__(self, scores, maps=None, types=None, threshold=5.0, pixel=None, size=(SIZE, SIZE), framing=WHOLE,
                 class_names=("dark", "bright")):
        n = len(scores)
        self.scores = np.asarray(scores, np.float32)
        self.maps = np.zeros((n, *size), np.float32) if maps is None else np.asarray(maps, np.float32)
        self.types = None if types is None else np.asarray(types, np.float32)
        self.at = 0
        self.meta = SimpleNamespace(input_size=size, runtime="scripted", framing=framing, image_threshold=threshold,
                                    pixel_threshold=pixel, class_names=class_names)

    def infer(self, x):
        s = slice(self.at, self.at + len(x))
        self.at += len(x)
        return SimpleNamespace(score=self.scores[s], amap=self.maps[s], type_probs=None if self.types is None else self.types[s])


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """150 small images: compare() reads each, though the scripted engines answer without looking."""
    from PIL import Image

    root = tmp_path_factory.mktemp("verify55")
    out = []
    for i in range(150):
        out.append(root / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(out[-1])
    return out


def _compare(ref, got, paths, labels, kind, **kw):
    from exporters.verify import compare

    return compare(ref, got, paths[: len(ref.scores)], labels, kind, **kw)


def test_compare_refuses_no_images_another_input_size_and_another_framing(paths):
    from exporters.verify import compare

    with pytest.raises(InspectorError, match="^verify: no images to compare on$"):
        compare(_Engine([]), _Engine([]), [], None, "onnx")
    with pytest.raises(InspectorError, match=r"the export takes \(8, 8\) but the checkpoint \(16, 16\); they are different models"):
        compare(_Engine([1.0]), _Engine([1.0], size=(8, 8)), paths[:1], None, "onnx")
    other = dataclasses.replace(WHOLE, fill_around=True)
    with pytest.raises(InspectorError, match="the export frames images otherwise than the checkpoint"):
        compare(_Engine([1.0]), _Engine([1.0], framing=other), paths[:1], None, "onnx")


def test_the_tolerances_are_shared_and_cannot_be_changed_in_place():
    from exporters.verify import EXACT

    with pytest.raises(dataclasses.FrozenInstanceError):
        EXACT.score_rel = 1.0  # every float32 export after it would be judged by it


@pytest.mark.parametrize(("change", "passed"), [(0.0008, True), (0.0015, False)])
def test_float32_scores_are_judged_by_1e_4_relative_to_at_least_1(paths, change, passed):
    """docs/export.md: float32 scores 1e-4 relative, relative meaning |diff| / max(|torch|, 1)."""
    labels = np.array([False, False, True, True])
    ref = [0.5, 1.0, 9.0, 10.0]
    got = [0.5, 1.0, 9.0, 10.0 + change]  # relative: change / 10
    r = _compare(_Engine(ref), _Engine(got), paths, labels, "onnx")
    assert r["passed"] is passed and r["score_max_rel"] == pytest.approx(change / 10, rel=1e-2)
    assert r["score_max_abs"] == pytest.approx(change, rel=1e-2) and r["score_mean_abs"] == pytest.approx(change / 4, rel=1e-2)
    if not passed:
        assert r["failures"] == ["score relative difference 1.50e-04 > 1e-04"]
    near_zero = _compare(_Engine(ref), _Engine([0.5 + change / 10, 1.0, 9.0, 10.0]), paths, labels, "onnx")
    assert near_zero["score_max_rel"] == pytest.approx(change / 10, rel=1e-2)  # / 1, not / 0.5
    assert r["batch"] == 8  # the default, as `export --verify` runs it


@pytest.mark.parametrize(("change", "passed"), [(0.0008, True), (0.0015, False)])
def test_float32_maps_are_judged_by_1e_3_relative_to_at_least_1(paths, change, passed):
    labels = np.array([False, True])
    maps = np.zeros((2, SIZE, SIZE), np.float32)
    maps[1, 3, 4] = 4.0
    got = maps.copy()
    got[0, 7, 7] = change  # beside 0: relative to 1
    r = _compare(_Engine([1.0, 9.0], maps), _Engine([1.0, 9.0], got), paths, labels, "onnx", batch=1)
    assert r["passed"] is passed and r["map_max_abs"] == pytest.approx(change, rel=1e-3)
    assert r["map_max_rel"] == pytest.approx(change, rel=1e-3)
    if not passed:
        assert r["failures"] == ["map relative difference 1.50e-03 > 1e-03"]
    got = maps.copy()
    got[1, 3, 4] = 4.0 + 4 * change  # the largest difference in the second batch, relative to 4
    r = _compare(_Engine([1.0, 9.0], maps), _Engine([1.0, 9.0], got), paths, labels, "onnx", batch=1)
    assert r["passed"] is passed and r["map_max_abs"] == pytest.approx(4 * change, rel=1e-3)
    assert r["map_max_rel"] == pytest.approx(change, rel=1e-3)


def test_a_nan_in_the_exports_map_fails_it_however_close_the_rest(paths):
    labels = np.array([False, True])
    got = np.zeros((2, SIZE, SIZE), np.float32)
    got[1, 0, 0] = np.nan
    got[1, 5, 5] = np.inf
    r = _compare(_Engine([1.0, 9.0]), _Engine([1.0, 9.0], got), paths, labels, "onnx-fp16")
    assert not r["passed"] and r["failures"] == ["0 scores and 2 map values are NaN or infinity in the export"]
    assert r["map_max_abs"] == 0.0  # the finite values agree; the rest are counted


def _ranked(swaps: int):
    """50 good images and 100 defects (5000 pairs), each defect above every good one; in the export the best good image
    outscores the `swaps` lowest defects, by as little as a float32 export can differ."""
    good = [float(i) for i in range(49)] + [100.0]
    defects = [100.0 + 0.001 * (k + 1) for k in range(100)]
    got = good[:49] + [100.0 + 0.001 * swaps + 0.0005] + defects
    return good + defects, got, np.array([False] * 50 + [True] * 100)


@pytest.mark.parametrize(("kind", "allowed"), [("onnx", 5), ("onnx-fp16", 25)])
def test_the_auroc_tolerances_are_as_documented(paths, kind, allowed):
    """float32: AUROC 0.001; FP16 and INT8: 0.005 (5000 pairs: 5 and 25 swapped pairs), a change of exactly the
    tolerance allowed."""
    for swaps, passed in ((allowed, True), (allowed + 1, False)):
        ref, got, labels = _ranked(swaps)
        r = _compare(_Engine(ref, threshold=500.0), _Engine(got, threshold=500.0), paths, labels, kind)
        assert r["auroc_change"] == pytest.approx(-swaps / 5000) and r["defects"] == 100
        assert r["passed"] is passed, (swaps, r["failures"])


def test_on_a_small_test_set_two_swapped_pairs_are_allowed_not_three(paths):
    """180 good/defect pairs: the AUROC tolerance is 2 / 180 (two swapped pairs), beyond 0.005."""
    labels = np.array([False] * 10 + [True] * 18)
    ref = [float(i) for i in range(10)] + [10.5, 11.5, 12.5] + [20.0 + i for i in range(15)]
    for best_good, swaps, passed in ((12.0, 2, True), (13.0, 3, False)):
        r = _compare(_Engine(ref), _Engine(ref[:9] + [best_good] + ref[10:]), paths, labels, "onnx-fp16")
        assert r["auroc_change"] == pytest.approx(-swaps / 180) and r["tolerance"]["auroc"] == pytest.approx(2 / 180)
        assert r["passed"] is passed, r["failures"]


@pytest.mark.parametrize("labels", [None, [False] * 4, [True] * 4], ids=["unlabelled", "all-good", "all-defects"])
@pytest.mark.parametrize(("change", "passed"), [(0.24, True), (0.25, True), (0.26, False)])
def test_without_both_good_and_defect_images_the_mean_score_change_judges(paths, labels, change, passed):
    """No AUROC without both classes: FP16 and INT8 are judged by the mean score change, 0.25 (docs/export.md)."""
    ref = [1.0, 2.0, 3.0, 4.0]
    r = _compare(_Engine(ref, threshold=50.0), _Engine([s + change for s in ref], threshold=50.0), paths,
                 None if labels is None else np.array(labels), "onnx-int8")
    assert r["auroc_change"] is None and r["auroc_torch"] is None and "defects" not in r
    assert r["passed"] is passed
    if not passed:
        assert r["failures"] == ["mean score change 0.2600 > 0.25 (no defects in the data for an AUROC)"]
    assert r["verdicts"]["escapes"] == 0


def test_an_export_scoring_nan_has_no_auroc(paths):
    labels = np.array([False, False, True, True])
    r = _compare(_Engine([1.0, 2.0, 8.0, 9.0]), _Engine([1.0, 2.0, 8.0, float("nan")]), paths, labels, "onnx-fp16")
    assert r["auroc_change"] is None and r["failures"] == ["1 scores and 0 map values are NaN or infinity in the export"]


def test_a_new_escape_is_a_defect_failed_by_more_than_the_tolerance(paths):
    """FP16: failed by more than 0.25 score units; one failed by exactly that may flip by rounding."""
    labels = np.array([False, True, True, False])
    for ref_defect, escapes in ((9.25, 0), (9.26, 1)):
        # the good image the export passes where the checkpoint failed it is no escape: a false alarm fewer
        r = _compare(_Engine([1.0, 9.5, ref_defect, 9.5], threshold=9.0), _Engine([1.0, 9.5, 8.9, 8.0], threshold=9.0), paths, labels,
                     "onnx-fp16")
        assert r["verdicts"]["escapes"] == escapes and r["verdicts"]["differ"] == 2 and r["passed"] is (escapes == 0)
    labels = np.array([False, True, True])
    on_it = _compare(_Engine([1.0, 9.0, 9.5], threshold=9.0), _Engine([1.0, 8.99, 9.5], threshold=9.0), paths, labels, "onnx-fp16")
    assert on_it["verdicts"]["differ"] == 1 and on_it["verdicts"]["escapes"] == 0  # a score on the threshold fails, as decide() has it


def test_a_float32_escape_is_judged_relative_to_the_score(paths):
    """float32: failed by more than 1e-4 relative (to at least 1). A defect 0.005 above a threshold of 100 (5e-5 of it)
    that the export scores 0.006 lower (6e-5: within its score tolerance) is a flip by rounding, not a new escape."""
    labels = np.array([False, True, True])
    r = _compare(_Engine([1.0, 150.0, 100.005], threshold=100.0), _Engine([1.0, 150.0, 99.999], threshold=100.0), paths, labels, "onnx")
    assert r["verdicts"]["differ"] == 1 and r["verdicts"]["escapes"] == 0 and r["passed"], r["failures"]
    r = _compare(_Engine([1.0, 150.0, 100.02], threshold=100.0), _Engine([1.0, 150.0, 99.999], threshold=100.0), paths, labels, "onnx")
    assert r["verdicts"]["escapes"] == 1 and any(f.endswith("new escapes") for f in r["failures"])
    # relative to at least 1: 1.5e-4 above a threshold of 1 is clear, 0.8e-4 above one of 0.5 is not
    for thr, ref_defect, escapes in ((1.0, 1.00015, 1), (0.5, 0.50008, 0)):
        r = _compare(_Engine([0.0, 150.0, ref_defect], threshold=thr), _Engine([0.0, 150.0, thr - 1e-5], threshold=thr), paths, labels, "onnx")
        assert r["verdicts"]["differ"] == 1 and r["verdicts"]["escapes"] == escapes


def test_the_report_names_the_first_three_images_that_differ(paths):
    n = 5
    r = _compare(_Engine([8.0] * n), _Engine([1.0] * n), paths, None, "onnx-fp16")
    assert r["verdicts"]["differ"] == n and r["verdicts"]["examples"] == [str(p) for p in paths[:3]]
    maps = np.zeros((n, SIZE, SIZE), np.float32)
    maps[:, 2:6, 2:6] = 3.0
    moved = np.zeros((n, SIZE, SIZE), np.float32)
    moved[:, 10:14, 10:14] = 3.0
    types = [[0.8, 0.1, 0.1]] * n
    r = _compare(_Engine([8.0] * n, maps, types=types, pixel=1.0), _Engine([8.0] * n, moved, types=[[0.1, 0.8, 0.1]] * n, pixel=1.0),
                 paths, None, "onnx-fp16")
    assert r["regions"]["differ"] == n and r["regions"]["examples"] == [f"{p} (overlap 0.00)" for p in paths[:3]]
    assert r["types"]["differ"] == n and r["types"]["examples"] == [f"{p} (dark -> bright)" for p in paths[:3]]


def test_compare_reports_progress_per_batch(paths):
    said = []
    _compare(_Engine([1.0] * 5), _Engine([1.0] * 5), paths, None, "onnx", batch=2, progress=said.append)
    assert said == [2, 2, 1]


def test_regions_overlapping_less_than_half_are_said_to_differ_and_half_is_alike(paths):
    """Both fail four images; the export draws one region 2 px to the right (overlap 8 / 24) and one twice as wide
    (overlap 16 / 32 = 0.5: alike); an image only the export fails, and one only the checkpoint fails, are no region
    comparison."""
    ref_maps = np.zeros((6, SIZE, SIZE), np.float32)
    ref_maps[:, 2:6, 2:6] = 3.0  # 16 px
    got_maps = ref_maps.copy()
    got_maps[1] = 0.0
    got_maps[1, 2:6, 4:8] = 3.0
    got_maps[2, 2:6, 2:10] = 3.0
    ref = _Engine([8.0, 8.0, 8.0, 8.0, 1.0, 8.0], ref_maps, pixel=1.0)
    got = _Engine([8.0, 8.0, 8.0, 8.0, 8.0, 1.0], got_maps, pixel=1.0)
    r = _compare(ref, got, paths, np.array([True] * 6), "onnx-int8")
    assert r["regions"] == {"pixel_threshold": 1.0, "failed_images": 4, "differ": 1, "min_overlap": 0.3333,
                            "examples": [f"{paths[1]} (overlap 0.33)"]}
    r = _compare(_Engine([1.0, 2.0], pixel=1.0), _Engine([1.0, 2.0], pixel=1.0), paths, np.array([False, True]), "onnx-int8")
    assert r["regions"] == {"pixel_threshold": 1.0, "failed_images": 0, "differ": 0, "min_overlap": None, "examples": []}


def test_type_probabilities_only_one_side_gives_or_of_another_count_are_another_model(paths):
    scores = [1.0, 9.0]
    types = [[0.5, 0.3, 0.2]] * 2
    r = _compare(_Engine(scores), _Engine(scores, types=types), paths, np.array([False, True]), "onnx-fp16")
    assert not r["passed"] and r["types"] is None
    assert r["failures"] == ["the export gives defect-type probabilities and the checkpoint none: they are different models"]
    r = _compare(_Engine(scores, types=types), _Engine(scores), paths, np.array([False, True]), "onnx-fp16")
    assert r["failures"] == ["the checkpoint gives defect-type probabilities and the export none: they are different models"]
    r = _compare(_Engine(scores, types=types), _Engine(scores, types=[[0.5, 0.3, 0.1, 0.1]] * 2), paths, np.array([False, True]), "onnx-fp16")
    assert not r["passed"] and r["types"] is None
    assert r["failures"] == ["the export gives 4 defect-type probabilities, the checkpoint 3: they are different models"]


@pytest.mark.parametrize(("change", "passed"), [(0.0008, True), (0.0015, False)])
def test_float32_type_probabilities_are_judged_by_1e_3(paths, change, passed):
    scores = [1.0, 9.0]
    types = [[0.5, 0.3, 0.2]] * 2
    got = [[0.5, 0.3, 0.2], [0.5 + change, 0.3 - change, 0.2]]
    r = _compare(_Engine(scores, types=types), _Engine(scores, types=got), paths, np.array([False, True]), "onnx")
    assert r["passed"] is passed and r["types"]["max_abs"] == pytest.approx(change, rel=1e-3)
    assert r["types"]["failed_images"] == 1 and r["types"]["differ"] == 0


def test_types_are_compared_only_on_images_both_fail(paths):
    """An image only the export fails names another type there: not counted as a naming difference."""
    types = [[0.8, 0.1, 0.1]] * 3
    got = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]]
    r = _compare(_Engine([1.0, 1.0, 9.0], types=types), _Engine([1.0, 9.0, 9.0], types=got), paths,
                 np.array([False, True, True]), "onnx-fp16")
    assert r["types"]["failed_images"] == 1 and r["types"]["differ"] == 1
    assert r["types"]["examples"] == [f"{paths[2]} (dark -> bright)"]


def _report(**kw):
    r = {"kind": "onnx", "images": 6, "batch": 8, "runtime": "onnxruntime CPU", "score_max_abs": 1.5e-5, "score_max_rel": 2.5e-6,
         "score_mean_abs": 4e-6, "map_max_abs": 3e-4, "map_max_rel": 1e-4, "auroc_torch": 0.875, "auroc_export": 0.875,
         "auroc_change": 0.0, "tolerance": {"score_rel": 1e-4, "map_rel": 1e-3, "auroc": 0.25, "drift": 1e-4, "types_abs": 1e-3},
         "defects": 2, "verdicts": {"threshold": 5.0, "differ": 0, "escapes": 0, "examples": []}, "regions": None, "types": None,
         "failures": [], "passed": True}
    r.update(kw)
    return r


def test_the_printed_report_says_each_check_and_its_tolerance():
    from exporters.verify import format_report

    assert format_report(_report()) == [
        "verify onnx on 6 images (2 defect), batch 8: torch vs onnxruntime CPU",
        "  score  max |diff| 1.50e-05  max rel 2.50e-06  mean |diff| 4.00e-06  (tolerance rel 1e-04)",
        "  map    max |diff| 3.00e-04  max rel 1.00e-04  (tolerance rel 1e-03)",
        "  image AUROC torch 0.8750  export 0.8750  change +0.0000  (tolerance ±0.25)",
        "  verdicts at threshold 5.0000: all 6 agree",
        "  PASS"]
    reduced = _report(kind="onnx-int8", defects=0, auroc_torch=None, auroc_export=None, auroc_change=None, score_mean_abs=0.125,
                      tolerance={"score_rel": None, "map_rel": None, "auroc": 0.005, "drift": 0.25, "types_abs": None},
                      regions={"pixel_threshold": 1.5, "failed_images": 3, "differ": 1, "min_overlap": 0.2, "examples": ["a.png (overlap 0.20)"]},
                      types={"max_abs": 0.5, "failed_images": 3, "differ": 0, "examples": []},
                      verdicts={"threshold": 5.0, "differ": 2, "escapes": 1, "examples": ["a.png", "b.png"]},
                      failures=["1 defect image(s) the checkpoint fails pass", "another"], passed=False)
    assert format_report(reduced) == [
        "verify onnx-int8 on 6 images, batch 8: torch vs onnxruntime CPU",
        "  score  max |diff| 1.50e-05  max rel 2.50e-06  mean |diff| 1.25e-01",
        "  map    max |diff| 3.00e-04  max rel 1.00e-04",
        "  mean score change 0.1250  (tolerance 0.25; no defect images for an AUROC)",
        "  regions at pixel threshold 1.5000: of 3 images both fail, 1 placed otherwise (first: a.png (overlap 0.20))",
        "  types  max |diff| 5.00e-01; of 3 images both fail, all named alike",
        "  verdicts at threshold 5.0000: 2 of 6 differ (first: a.png, b.png)",
        "  FAIL: 1 defect image(s) the checkpoint fails pass; another"]
    # float32 without defect images: judged by the relative differences, no drift line; no region failed in both: unsaid
    lines = format_report(_report(auroc_change=None, defects=0, regions={"pixel_threshold": 1.5, "failed_images": 0, "differ": 0,
                                                                           "min_overlap": None, "examples": []},
                                  types={"max_abs": 2e-4, "failed_images": 2, "differ": 1, "examples": ["c.png (dark -> bright)"]}))
    assert lines[3:5] == ["  types  max |diff| 2.00e-04  (tolerance 1e-03); of 2 images both fail, 1 named another type (first: c.png (dark -> bright))",
                          "  verdicts at threshold 5.0000: all 6 agree"]
