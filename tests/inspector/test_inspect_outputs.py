"""What an operator and a QA engineer see of one part: regions, the overlay, the description and `inspect`'s files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from inspector.cli import main
from inspector.decision import FAIL, DecisionConfig, decide
from inspector.result import InspectionResult


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


def test_a_rerun_over_a_glob_does_not_inspect_the_last_runs_overlays(capsys, tiny_ckpt, tiny_data, tmp_path):
    """`inspect CK parts/*.png --overlays parts` run twice: the shell's glob gave the first run's overlays by name, so
    each was inspected as a part (FAIL, exit 1 under --exit-code), after the run had overwritten it with its part's."""
    parts = tmp_path / "parts"
    parts.mkdir()
    for p in sorted((tiny_data / "test/good").glob("*.png"))[:2]:
        shutil.copy(p, parts / p.name)
    def glob_run(*extra: str) -> tuple[int, str, str]:
        code = main(["inspect", str(tiny_ckpt), *map(str, sorted(parts.glob("*.png"))), "--overlays", str(parts), "--json", *extra])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = glob_run()
    first = json.loads(out)
    assert code == 0 and first["summary"]["images"] == 2 and len(list(parts.glob("*_overlay.png"))) == 2
    code, out, err = glob_run("--exit-code")
    second = json.loads(out)
    assert code == (1 if first["summary"]["fail"] else 0)
    assert [r["verdict"] for r in second["results"]] == [r["verdict"] for r in first["results"]]
    assert second["summary"]["images"] == 2 and "2 image(s) given in the --overlays folder" in err
    assert not list(parts.glob("*_overlay_overlay.png"))
    # nothing but overlays there: one line, exit 2
    assert main(["inspect", str(tiny_ckpt), str(parts / "000_overlay.png"), "--overlays", str(parts)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "an overlay in the --overlays folder" in err and "another folder" in err


def _tag_and_line(out: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """The verdict tag's height and width (FAIL red from the top-left corner) and the box's left line's width."""
    red = np.all(out == (220, 40, 40), axis=2)
    tag_h = int(np.argmin(red[:, 0])) if not red[:, 0].all() else out.shape[0]
    tag_w = int(np.argmin(red[0])) if not red[0].all() else out.shape[1]
    x, y, w, h = box
    row = red[y + h // 2, x - 20 : x + 20]
    return tag_h, tag_w, int(row.sum())


def test_an_overlay_of_a_line_scan_strip_shows_its_verdict_and_boxes_when_seen_whole():
    """Sizes followed the short side: on a 4000 x 200 strip, seen shrunk to a screen's width, the verdict was 17 px
    tall (7 px on the screen) and the boxes 1 px (gone)."""
    from inspector.decision import Region
    from inspector.overlay import render_overlay

    box = (1000, 60, 1500, 80)
    regions = [Region(box=box, area_px=1000, peak=5.0, mean=4.0, severity="high")]
    out = render_overlay(np.full((200, 4000, 3), 128, np.uint8), np.zeros((200, 4000), np.float32), 3.0, "FAIL", regions)
    tag_h, tag_w, line = _tag_and_line(out, box)
    assert 40 <= tag_h <= 100 and tag_w >= 100 and line >= 3
    # a square image's as it was
    square = render_overlay(np.full((400, 400, 3), 128, np.uint8), np.zeros((400, 400), np.float32), 3.0, "FAIL",
                            [Region(box=(100, 100, 100, 100), area_px=1000, peak=5.0, mean=4.0, severity="high")])
    assert _tag_and_line(square, (100, 100, 100, 100))[2] == 1
    # a very thin strip: the tag stays within half its height (its text whole), lines within a twentieth
    thin = render_overlay(np.full((60, 8000, 3), 128, np.uint8), np.zeros((60, 8000), np.float32), 3.0, "FAIL",
                          [Region(box=(3000, 10, 1000, 40), area_px=1000, peak=5.0, mean=4.0, severity="high")])
    tag_h, _, line = _tag_and_line(thin, (3000, 10, 1000, 40))
    assert tag_h <= 30 and line <= 5  # not the 9 px a third of its length asks for


def _described(**kw) -> InspectionResult:
    from inspector.decision import Region

    base = dict(inspection_id="i1", verdict="FAIL", score=9.0, threshold=5.0, pixel_threshold=3.0,
                regions=[Region(box=(4000, 3000, 4, 4), area_px=16, peak=6.0, mean=5.0, severity="high")],
                anomaly_map=np.zeros((1, 1), np.float32), image_shape=(3000, 4000), image_sha256="ab", model={}, timings_ms={})
    return InspectionResult(**(base | kw))


@pytest.mark.parametrize(("lang", "share"), [("en", "(0.00013% of the image)"), ("zh", "（占图像 0.00013%）"), ("es", "(0,00013\u00a0% de la imagen)")])
def test_a_small_defect_on_a_large_image_is_not_said_to_cover_none_of_it(lang, share):
    """16 px of a 12 MP image read "covering 16 px (0.00% of the image)"."""
    assert share in _described().describe(lang)
    big = _described(regions=[replace(_described().regions[0], area_px=1_200_000)]).describe(lang)
    assert {"en": "(10.00% of", "zh": "占图像 10.00%", "es": "(10,00\u00a0% de"}[lang] in big


def test_beyond_the_most_regions_shown_a_small_severe_defect_is_kept_over_faint_large_ones():
    """The 20 largest were kept: a pit far over the pixel threshold ("high") was dropped behind 25 faint stains."""
    from inspector.decision import find_regions

    amap = np.zeros((200, 200), np.float32)
    for i in range(25):  # 25 faint stains of 36 px: "low"
        y, x = divmod(i, 5)
        amap[y * 30 : y * 30 + 6, x * 30 : x * 30 + 6] = 1.2
    amap[180:184, 180:184] = 9.0  # 16 px, far over the threshold: "high"
    regions = find_regions(amap, 1.0, DecisionConfig())
    assert len(regions) == 20 and (180, 180, 4, 4) in [r.box for r in regions]
    assert [r.area_px for r in regions] == [36] * 19 + [16]  # still largest first
    assert regions[-1].severity == "high"


def test_an_overlay_of_a_large_image_takes_little_more_memory_than_the_image():
    """The blend was done on the whole image in float: a 48 MP image's overlay took 1.6 GB more than its pixels (2.9 GB
    for `inspect --overlays` against 1.4 GB without). Measured here on 6 MP: its pixels are 18 MB, its map 24 MB."""
    import tracemalloc

    from inspector.overlay import render_overlay

    rgb = np.full((2000, 3000, 3), 128, np.uint8)
    amap = np.random.default_rng(0).random((2000, 3000), dtype=np.float32) * 5
    tracemalloc.start()
    try:
        out = render_overlay(rgb, amap, 3.0, "FAIL", [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == rgb.shape and peak < 80 * 2**20, f"{peak / 2**20:.0f} MB"


def test_a_small_region_at_a_fine_scale_has_an_area_in_mm2_not_zero():
    """Areas were rounded to 3 decimals of a mm2: at 1 um a pixel, a 100 px defect was recorded as 0.0 mm2."""
    from inspector.decision import find_regions

    amap = np.zeros((100, 100), np.float32)
    amap[10:20, 10:20] = 2.0  # 100 px
    assert [r.area_mm2 for r in find_regions(amap, 1.0, DecisionConfig(mm_per_px=0.001))] == [0.0001]
    assert [r.area_mm2 for r in find_regions(amap, 1.0, DecisionConfig(mm_per_px=0.0123))] == [0.015]  # as before
    assert [r.area_mm2 for r in find_regions(amap, 1.0, DecisionConfig(mm_per_px=0.5))] == [25.0]


def test_the_spanish_description_does_not_say_con_twice():
    """Spanish said "con 900 px (...) con una confianza del 80 %" (with ... with)."""
    from inspector.decision import Region
    from model.quality import WARNINGS

    r = _described(regions=[Region(box=(10, 20, 30, 40), area_px=900, peak=6.0, mean=5.0, severity="high", type="crack", confidence=0.8)],
                   defect_type="crack", type_confidence=0.8, warnings=[WARNINGS["dark"]])
    es = r.describe("es")
    assert "de 30x40 px, que cubre 900 px (0,0075\u00a0% de la imagen), con una confianza del 80\u00a0%." in es
    assert "El defecto" not in es and "Advertencia: La imagen es mucho más oscura" in es
