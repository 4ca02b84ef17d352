"""A part with more defect regions than DecisionConfig.max_regions says how many it had, not only the ones listed."""

from __future__ import annotations

import numpy as np

import reports
from inspector import Inspector
from inspector.decision import DecisionConfig, find_regions
from inspector.engines.base import HeadOutput, ModelMeta

SIZE = (64, 64)


def speckled() -> np.ndarray:
    """36 separate 4x4 blobs on a 64x64 map, one of them hotter."""
    amap = np.zeros(SIZE, np.float32)
    for y in range(2, 60, 10):
        for x in range(2, 60, 10):
            amap[y:y + 4, x:x + 4] = 2.0
    amap[52:56, 52:56] = 9.0
    return amap


class SpeckledEngine:
    def __init__(self) -> None:
        self.meta = ModelMeta(model_id="m", backbone="b", input_size=SIZE, image_threshold=1.0, pixel_threshold=1.0,
                              sha256="0" * 64, path="fake.onnx", runtime="fake")

    def infer(self, batch: np.ndarray) -> HeadOutput:
        return HeadOutput(np.full(len(batch), 5.0, np.float32), np.stack([speckled()] * len(batch)))

    def close(self) -> None:
        pass


def test_find_regions_counts_what_max_regions_leaves_out():
    regions = find_regions(speckled(), 1.0, DecisionConfig(min_region_px=1, max_regions=5))
    assert len(regions) == 5 and regions.found == 36
    assert max(r.peak for r in regions) == 9.0  # the hot one kept among the five


def test_the_record_description_and_report_say_how_many_regions_there_were(tmp_path):
    """Beyond 20 regions the record listed 20 and nothing said that more were found."""
    insp = Inspector(SpeckledEngine(), DecisionConfig(min_region_px=1, max_regions=5))
    result = insp.inspect(np.full((64, 64, 3), 120, np.uint8))
    record = result.to_record()
    assert result.verdict == "FAIL" and len(record["defects"]) == 5 and record["defects_found"] == 36
    text = result.describe()
    assert "36 defect regions found" in text and "The 5 most severe are listed." in text
    assert "仅列出其中最严重的 5 个" in result.describe("zh")
    html = reports.render_inspection(record, tmp_path, formats=("html",))["html"].read_text(encoding="utf-8")
    assert "36 defect regions were found; the 5 most severe are listed." in html
    html_es = reports.render_inspection(record, tmp_path / "es", formats=("html",), lang="es")["html"].read_text(encoding="utf-8")
    assert "se listan las 5 más graves" in html_es


def test_a_part_whose_regions_are_all_listed_says_nothing_more(tmp_path):
    insp = Inspector(SpeckledEngine(), DecisionConfig(min_region_px=1))
    result = insp.inspect(np.full((64, 64, 3), 120, np.uint8))
    record = result.to_record()
    assert len(record["defects"]) == 20 and record["defects_found"] == 36  # the default keeps 20
    few = Inspector(SpeckledEngine(), DecisionConfig(min_region_px=1, max_regions=50)).inspect(np.full((64, 64, 3), 120, np.uint8))
    assert few.to_record()["defects_found"] == 36 == len(few.regions) and "most severe" not in few.describe()
    html = reports.render_inspection(few.to_record(), tmp_path, formats=("html",))["html"].read_text(encoding="utf-8")
    assert "defects-listed" not in html
