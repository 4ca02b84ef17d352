"""inspector/decision.py where a mutation of it went unnoticed: margins just below the severity rules, a map with no
finite pixel, how many regions an empty map has, areas too small for a float, models that name no types, and the
largest scale a station may give."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.decision import FAIL, MAX_MM_PER_PX, DecisionConfig, Regions, SeverityRules, decide, find_regions, name_defect
from model.errors import InspectorError


def test_a_margin_just_below_a_rule_keeps_the_grade_below():
    rules = SeverityRules()
    assert rules.grade(0.99, 0.0) == "low"  # below the default medium margin 1.0
    assert rules.grade(2.99, 0.0) == "medium"  # below the default high margin 3.0
    assert rules.grade(0.0, 0.0999) == "medium"  # below 10 % of the image


@pytest.mark.parametrize("fill", [np.nan, -np.inf])
def test_a_failed_part_whose_map_has_no_finite_pixel_fails_with_no_region(fill):
    """Nothing to locate: no region, and no error (the half height of an empty set of pixels has no minimum)."""
    amap = np.full((8, 8), fill, np.float32)
    assert decide(9.0, amap, 5.0, 1.0, DecisionConfig()) == (FAIL, [])


def test_a_map_with_no_pixel_over_the_threshold_found_no_regions():
    regions = find_regions(np.zeros((8, 8), np.float32), 1.0, DecisionConfig())
    assert isinstance(regions, Regions) and regions == [] and regions.found == 0


def test_an_area_too_small_for_a_float_is_zero_mm2():
    amap = np.zeros((8, 8), np.float32)
    amap[2:6, 2:6] = 2.0
    (region,) = find_regions(amap, 1.0, DecisionConfig(mm_per_px=1e-200))  # 16 * 1e-400 is 0.0 in a float
    assert region.area_mm2 == 0.0


def test_a_tiny_area_in_mm2_keeps_two_significant_digits():
    amap = np.zeros((8, 8), np.float32)
    amap[3, 3] = 2.0
    (region,) = find_regions(amap, 1.0, DecisionConfig(mm_per_px=0.011, min_region_px=1))  # 0.000121 mm2
    assert region.area_mm2 == 0.00012
    (region,) = find_regions(amap, 1.0, DecisionConfig(mm_per_px=1.111, min_region_px=1))  # 1.234321 mm2: 3 decimals
    assert region.area_mm2 == 1.234


def test_a_model_that_names_no_types_gives_no_type():
    """(None, None, {}) without class names, even from a one-element `unknown`-only probability vector."""
    assert name_defect(np.array([0.9]), (), DecisionConfig()) == (None, None, {})


def test_one_nan_probability_names_the_defect_unknown():
    assert name_defect(np.array([0.1, np.nan, 0.3]), ("scratch", "dent"), DecisionConfig()) == ("unknown", None, {})


def test_the_largest_scale_a_station_may_give_is_a_metre_a_pixel():
    from inspector.api import _region_rules

    assert MAX_MM_PER_PX == 1000.0
    assert _region_rules(DecisionConfig(mm_per_px=1000.0))["mm_per_px"] == 1000.0
    with pytest.raises(InspectorError, match=r"DecisionConfig mm_per_px=1000\.5: give the millimetres per pixel, above 0 and at most 1000, or None"):
        _region_rules(DecisionConfig(mm_per_px=1000.5))
    amap = np.zeros((8, 8), np.float32)
    amap[0, 0] = 2.0
    assert [r.area_mm2 for r in find_regions(amap, 1.0, DecisionConfig(mm_per_px=1000.0, min_region_px=1))] == [1e6]


def _result(score=9.0, regions=(), **kw):
    from inspector.result import InspectionResult

    return InspectionResult(inspection_id="x", verdict="PASS" if score < 4.2 else FAIL, score=score, threshold=4.2, pixel_threshold=1.0,
                            regions=list(regions), anomaly_map=np.zeros((100, 200), np.float32), image_shape=(100, 200),
                            image_sha256="0", model={}, timings_ms={}, **kw)


def _spot(**kw):
    from inspector.decision import Region

    return Region(box=(1, 2, 3, 4), area_px=12, peak=9.0, mean=5.0, severity="low", **kw)


def test_a_failed_part_with_no_region_says_the_type_the_model_named():
    """No region, but a type named for the image: said after "no localised region", with its confidence if any."""
    fail = "The part FAILED inspection: score 9 is at or above the threshold 4.2 (by 4.8). "
    none = "No localised defect region was found; the part differs from good parts overall."
    assert _result().describe("en") == fail + none
    assert _result(defect_type="crack", type_confidence=0.8).describe("en") == fail + none + " The defect looks like crack with 80% confidence."
    assert _result(defect_type="unknown").describe("en") == fail + none + " The defect looks like a defect of a type not seen before (unknown)."
    assert _result(defect_type="crack", type_confidence=0.8).describe("es").endswith(
        " El defecto parece ser grieta, con una confianza del 80\u00a0%.")  # the type as the reports translate it


def test_a_region_names_its_part_and_its_kind():
    one = "1 defect region found: {} (low severity) at x=1, y=2, 3x4 px, covering 12 px (0.06% of the image)."  # 12 / 20000 px
    assert _result(regions=[_spot()], serial="SN-7").describe("en") == (
        "Part SN-7 FAILED inspection: score 9 is at or above the threshold 4.2 (by 4.8). " + one.format("an unclassified anomaly"))
    assert _result(regions=[_spot(type="unknown", confidence=0.61)]).describe("en") == (
        "The part FAILED inspection: score 9 is at or above the threshold 4.2 (by 4.8). "
        + one.format("a defect of a type not seen before (unknown)")[:-1] + " with 61% confidence.")


def test_chinese_sentences_run_on_without_spaces():
    assert _result(regions=[_spot()], serial="SN-7").describe("zh") == (
        "零件 SN-7 检测不合格：得分 9 达到或高于阈值 4.2（高出 4.8）。"
        "发现 1 个缺陷区域：未分类异常（严重程度：低），位于 x=1, y=2，尺寸 3x4 像素，面积 12 像素（占图像 0.06%）。")


def test_by_how_much_a_score_failed_is_given_to_three_significant_digits():
    assert "(by 5.68)." in _result(score=9.876).describe("en")  # 9.876 - 4.2 = 5.676


def test_a_region_of_no_share_reads_zero_percent():
    from inspector.describe import _share
    from reports.numbers import STYLES

    assert _share(STYLES["en"], 0.0) == "0.00%" and _share(STYLES["es"], 0.0) == "0,00\u00a0%"


def test_of_several_regions_the_first_the_largest_is_described():
    from dataclasses import replace

    big = replace(_spot(), box=(50, 60, 20, 10), area_px=200, severity="high")
    text = _result(regions=[big, _spot()]).describe("en")
    assert text.endswith(" 2 defect regions found. The largest is an unclassified anomaly (high severity) at x=50, y=60, 20x10 px, "
                         "covering 200 px (1.00% of the image).")  # 200 / 20000 px


def test_a_share_of_0_01_percent_or_more_has_two_decimals():
    from dataclasses import replace

    r = _result(regions=[_spot()])
    assert "covering 12 px (0.01% of the image)." in replace(r, image_shape=(100, 1000)).describe("en")  # 0.012 %
    assert "covering 12 px (0.0012% of the image)." in replace(r, image_shape=(1000, 1000)).describe("en")  # below 0.01 %: 2 digits


def test_each_warning_is_one_sentence_ended_once():
    text = _result(warnings=["Check the lens.", "Too dark"]).describe("en")
    assert text.endswith("overall. Warning: Check the lens. Warning: Too dark.")
    assert _result(warnings=["Too dark"]).describe("zh").endswith("差异。警告：Too dark。")


def test_a_regions_area_in_mm2_is_given_to_three_significant_digits():
    assert "covering 12 px, 9.37 mm² (0.06% of the image)." in _result(regions=[_spot(area_mm2=9.3712)]).describe("en")
