"""Verdicts and defect regions from constructed maps."""

from __future__ import annotations

import numpy as np

from inspector.decision import FAIL, PASS, DecisionConfig, SeverityRules, decide, find_regions


def two_blobs() -> np.ndarray:
    amap = np.zeros((100, 200), np.float32)
    amap[10:20, 30:60] = 5.0  # 10 x 30 = 300 px
    amap[70:80, 150:155] = 2.0  # 10 x 5 = 50 px
    amap[50, 100] = 9.0  # a single hot pixel: below min_region_px
    return amap


def test_regions_are_connected_components_largest_first():
    regions = find_regions(two_blobs(), 1.0, DecisionConfig(min_region_px=16))
    assert [r.box for r in regions] == [(30, 10, 30, 10), (150, 70, 5, 10)]  # x, y, w, h
    assert [r.area_px for r in regions] == [300, 50]
    assert [r.peak for r in regions] == [5.0, 2.0] and regions[0].mean == 5.0
    assert len(find_regions(two_blobs(), 1.0, DecisionConfig(min_region_px=1))) == 3
    assert len(find_regions(two_blobs(), 1.0, DecisionConfig(max_regions=1))) == 1
    assert find_regions(two_blobs(), 10.0, DecisionConfig()) == []


def test_diagonal_neighbours_form_one_region():
    amap = np.zeros((20, 20), np.float32)
    for i in range(10):
        amap[i + 2, i + 2] = amap[i + 2, i + 3] = 1.0  # a 2-px-wide diagonal staircase, 8-connected
    regions = find_regions(amap, 0.5, DecisionConfig(min_region_px=1))
    assert len(regions) == 1 and regions[0].area_px == 20


def test_severity_and_millimetres():
    rules = SeverityRules(medium_margin=1.0, high_margin=3.0, medium_area_fraction=0.02, high_area_fraction=0.10)
    amap = np.zeros((100, 100), np.float32)
    amap[0:5, 0:5] = 1.5  # margin 0.5, 0.25% of the image -> low
    amap[50:55, 50:55] = 2.5  # margin 1.5 -> medium
    amap[80:85, 80:85] = 5.0  # margin 4 -> high
    amap[20:40, 60:80] = 1.2  # small margin but 4% of the image -> medium
    cfg = DecisionConfig(severity=rules, mm_per_px=0.1, min_region_px=1)
    by_box = {r.box: r for r in find_regions(amap, 1.0, cfg)}
    assert by_box[(0, 0, 5, 5)].severity == "low"
    assert by_box[(50, 50, 5, 5)].severity == "medium"
    assert by_box[(80, 80, 5, 5)].severity == "high"
    assert by_box[(60, 20, 20, 20)].severity == "medium"
    assert by_box[(0, 0, 5, 5)].area_mm2 == 0.25  # 25 px * 0.01 mm2


def test_decide():
    amap = two_blobs()
    assert decide(0.5, amap, 1.0, 1.0, DecisionConfig()) == (PASS, [])  # a pass shows no regions
    verdict, regions = decide(1.0, amap, 1.0, 1.0, DecisionConfig())  # score == threshold fails
    assert verdict == FAIL and len(regions) == 2


def test_a_failed_part_without_a_region_above_the_pixel_threshold_shows_its_peak():
    amap = np.zeros((64, 64), np.float32)
    amap[40:50, 10:20] = 1.0  # below the pixel threshold 3.0
    verdict, regions = decide(7.0, amap, 5.0, 3.0, DecisionConfig())
    assert verdict == FAIL and [(r.box, r.located_by) for r in regions] == [((10, 40, 10, 10), "map_peak")]  # said (unmarked before)
    assert regions[0].to_dict()["located_by"] == "map_peak"
    assert [r.located_by for r in decide(7.0, amap, 5.0, 0.5, DecisionConfig())[1]] == ["pixel_threshold"]


def test_a_part_failed_on_its_whole_appearance_is_graded_by_its_score():
    """No pixel over the pixel threshold: the region shown is where the map peaks, at half its height, so its size and
    margin say nothing; how far the score passed the image threshold does (a faint map's region read "high")."""
    amap = np.zeros((100, 100), np.float32)
    amap[20:60, 20:60] = 0.5  # 16 % of the image, far below the pixel threshold
    for score, grade in ((1.2, "low"), (2.5, "medium"), (4.5, "high")):
        verdict, regions = decide(score, amap, 1.0, 2.0, DecisionConfig())
        assert verdict == FAIL and [(r.box, r.severity) for r in regions] == [((20, 20, 40, 40), grade)]
