"""Audit 51 of inspecting images: regions, descriptions, overlays and `inspect`'s files."""

from __future__ import annotations

import numpy as np

from inspector.decision import FAIL, DecisionConfig, decide


def test_a_part_failed_overall_is_shown_where_its_map_peaks_not_at_its_largest_warm_patch():
    """With no pixel over the pixel threshold, the one region shown (and described as "where the anomaly map peaks")
    was the largest patch above half the map's height: a broad warm edge, not the small hot spot at the peak."""
    amap = np.zeros((100, 100), np.float32)
    amap[10:50, 10:50] = 2.0  # a broad warm patch, above half height
    amap[70:76, 70:76] = 3.5  # the peak, smaller than the patch
    amap[0, 99] = np.nan
    verdict, regions = decide(9.0, amap, 5.0, 4.0, DecisionConfig())
    assert verdict == FAIL and [(r.box, r.area_px, r.peak, r.located_by) for r in regions] == [((70, 70, 6, 6), 36, 3.5, "map_peak")]
    amap[70:76, 70:76], amap[72, 72] = 0.0, 3.5  # a peak of one pixel, under min_region_px, is still where it peaks
    assert [(r.box, r.peak) for r in decide(9.0, amap, 5.0, 4.0, DecisionConfig())[1]] == [((72, 72, 1, 1), 3.5)]
