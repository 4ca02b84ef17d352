"""What an operator and a QA engineer see of one part: regions, the overlay, the description and `inspect`'s files."""

from __future__ import annotations

import numpy as np

from inspector.decision import FAIL, DecisionConfig, decide


def test_a_part_failed_all_over_shows_its_peak_not_its_dont_care_pixels():
    """Don't-care pixels (fit --ignore) hold -inf in the map regions are found in: a part failed on its whole appearance
    was shown with the whole image as its region, don't-care pixels and all (mean -inf); a NaN pixel hid the region."""
    amap = np.zeros((64, 64), np.float32)
    amap[30:40, 30:40] = 1.0  # where the map peaks, below the pixel threshold 3.0
    amap[:10, :10] = -np.inf  # don't care
    verdict, regions = decide(9.0, amap, 5.0, 3.0, DecisionConfig())
    assert verdict == FAIL and [(r.box, r.area_px, r.mean, r.located_by) for r in regions] == [((30, 30, 10, 10), 100, 1.0, "map_peak")]
    amap[5, 20] = np.nan
    assert [r.box for r in decide(9.0, amap, 5.0, 3.0, DecisionConfig())[1]] == [(30, 30, 10, 10)]
