"""Severity boundaries, region order and the defaults of inspector/decision.py, and naming a defect's type: faults a
mutation showed no test caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inspector.decision import FAIL, DecisionConfig, Region, apply_type, decide, find_regions, name_defect


def test_decision_default_severity_rules_and_their_boundaries():
    rules = DecisionConfig().severity
    assert rules.grade(0.0, 0.0199) == "low"
    assert rules.grade(0.0, 0.02) == "medium"  # 2 % of the image, however faint
    assert rules.grade(0.0, 0.10) == "high"  # 10 % of the image, however faint
    assert rules.grade(1.0, 0.0) == "medium"  # margins at exactly the rule's value count
    assert rules.grade(3.0, 0.0) == "high"
    assert rules.grade(2.99, 0.09) == "medium"
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.high_margin = 9.0


def test_decision_default_min_region_and_max_regions():
    amap = np.zeros((100, 100), np.float32)
    amap[0:3, 0:5] = 1.0  # 15 px: dropped by the default min_region_px 16
    amap[10:14, 0:4] = 1.0  # 16 px: kept
    assert [r.area_px for r in find_regions(amap, 0.5, DecisionConfig())] == [16]
    many = np.zeros((100, 100), np.float32)
    for i in range(25):  # 25 regions of 25 px, 4 px apart
        y, x = divmod(i, 5)
        many[y * 20 : y * 20 + 5, x * 20 : x * 20 + 5] = 1.0
    assert len(find_regions(many, 0.5, DecisionConfig())) == 20


def test_decision_a_pixel_exactly_at_the_threshold_belongs_to_the_region():
    amap = np.zeros((20, 20), np.float32)
    amap[5:10, 5:10] = 2.0
    assert [r.area_px for r in find_regions(amap, 2.0, DecisionConfig(min_region_px=1))] == [25]


def test_decision_regions_sorted_largest_first_then_hottest_and_peak_is_the_maximum():
    amap = np.zeros((100, 100), np.float32)
    amap[2:4, 2:12] = 3.0  # 20 px, first in raster order
    amap[50:60, 50:60] = np.linspace(1.0, 2.123456, 100).reshape(10, 10)  # 100 px, varying
    amap[80:82, 2:12] = 4.0  # 20 px, hotter than the first one
    regions = find_regions(amap, 0.5, DecisionConfig(min_region_px=1, mm_per_px=0.0123))
    assert [r.area_px for r in regions] == [100, 20, 20]
    assert [r.peak for r in regions] == [2.1235, 4.0, 3.0]  # the maximum, rounded to 4 places
    assert regions[0].mean == round(float(amap[50:60, 50:60].mean()), 4)
    assert regions[0].area_mm2 == round(100 * 0.0123**2, 3) == 0.015
    assert (regions[0].type, regions[0].confidence) == ("anomaly", None)


def test_decision_whole_appearance_fallback_is_half_height_above_the_minimum_and_one_region():
    amap = np.full((100, 100), 1.0, np.float32)  # a map whose floor is not 0
    amap[20:60, 20:60] = 1.5
    amap[30:50, 30:50] = 2.0
    amap[80:90, 80:90] = 1.6  # a second, smaller area above half height
    verdict, regions = decide(9.0, amap, 5.0, 100.0, DecisionConfig())
    # half height: (2.0 + 1.0) / 2 = 1.5 -> the 40 x 40 square (the 10 x 10 one is dropped: one region only)
    assert verdict == FAIL and [r.box for r in regions] == [(20, 20, 40, 40)]


def test_decision_region_to_dict_box_is_a_list():
    d = Region(box=(1, 2, 3, 4), area_px=12, peak=1.0, mean=0.5, severity="low").to_dict()
    assert d["box"] == [1, 2, 3, 4] and d["type"] == "anomaly" and d["confidence"] is None


def test_decision_name_defect_cutoff_rounding_and_mismatch():
    names = ("scratch", "dent")
    cfg = DecisionConfig()
    assert name_defect(np.array([0.1, 0.245679, 0.654321]), names, cfg)[:2] == ("unknown", 0.6543)  # default cut-off 0.5
    t, c, probs = name_defect(np.array([0.2, 0.3, 0.5]), names, cfg)
    assert (t, c) == ("unknown", 0.5)  # p(unknown) AT the cut-off names it unknown, with p(unknown) as confidence
    t, c, probs = name_defect(np.array([0.1234567, 0.3765433, 0.5 - 1e-9]), names, cfg)
    assert (t, c) == ("dent", round(0.3765433 / 0.5, 4))
    assert probs == {"scratch": 0.1235, "dent": 0.3765, "unknown": 0.5}
    assert name_defect(np.array([0.5, 0.5]), names, cfg) == (None, None, {})  # K + 1 probabilities or nothing


def test_decision_apply_type_names_every_region():
    regions = [Region(box=(0, 0, 1, 1), area_px=1, peak=1.0, mean=1.0, severity="low") for _ in range(2)]
    apply_type(regions, None, None)
    assert [(r.type, r.confidence) for r in regions] == [("anomaly", None)] * 2
    apply_type(regions, "scratch", 0.9)
    assert [(r.type, r.confidence) for r in regions] == [("scratch", 0.9)] * 2


@pytest.mark.parametrize("score", [float("nan"), float("-inf"), float("inf")])
def test_a_score_that_is_no_number_fails(score):
    """-inf was below every threshold: a broken model's part passed, its score published as null."""
    verdict, regions = decide(score, np.zeros((8, 8), np.float32), 0.0, 1.0, DecisionConfig())
    assert verdict == FAIL and len(regions) == 1
