"""Inspecting images: regions, descriptions, overlays and `inspect`'s files."""

from __future__ import annotations

import json

import numpy as np
import pytest

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


def test_a_16_bit_colour_pil_image_keeps_its_bits_as_its_file_does(tmp_path):
    """A 12-bit camera's colour frame opened with Pillow and given to the API was read by Pillow's top 8 bits (8 grey
    levels, nearly black), while its path was stretched over 0-255; a TIFF turned by its orientation tag came out
    turned twice."""
    import cv2
    from PIL import Image

    from inspector.api import load_image

    frame = np.zeros((40, 60, 3), np.uint16)
    frame[:, :, 0] = np.arange(60) * 60  # 0 to 3540 of 4095
    frame[:10, :20] = 4000
    cv2.imwrite(str(tmp_path / "frame.png"), frame[..., ::-1])
    stored = np.rot90(frame, 1).copy()  # stored turned, with orientation 6 to show it upright
    tifffile = pytest.importorskip("tifffile", reason="tifffile comes with scikit-image (the demo extra)")

    tifffile.imwrite(tmp_path / "turned.tif", stored, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    for name in ("frame.png", "turned.tif"):
        from_file = load_image(tmp_path / name).rgb
        assert from_file.shape == (40, 60, 3) and from_file.max() == 255
        with Image.open(tmp_path / name) as img:
            assert np.array_equal(load_image(img).rgb, from_file), name
            assert img.load() is not None and img.size == (60, 40)  # the caller's image is still usable


def test_a_closed_paged_pil_image_is_one_line(tmp_path):
    """A GIF or TIFF whose `with Image.open(...)` block ended raised Pillow's ValueError (Operation on closed image)."""
    import pytest
    from PIL import Image

    from inspector.api import load_image
    from model.errors import InspectorError

    for suffix in ("gif", "tif"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / f"part.{suffix}")
        with Image.open(tmp_path / f"part.{suffix}") as img:
            pass
        with pytest.raises(InspectorError, match="closed before its pixels were read"):
            load_image(img)


def test_describe_gives_a_regions_area_in_mm2_where_the_station_knows_its_scale():
    """With DecisionConfig(mm_per_px=...) the record and reports gave each region's area in mm², the description only
    in pixels, which a QA engineer cannot hold against a spec in mm²."""
    from inspector.decision import Region
    from inspector.describe import LANGUAGES, describe
    from inspector.result import InspectionResult

    def failed(mm2: float | None) -> InspectionResult:
        region = Region(box=(30, 42, 35, 34), area_px=937, peak=9.0, mean=8.0, severity="medium", area_mm2=mm2)
        return InspectionResult(inspection_id="x", verdict=FAIL, score=9.0, threshold=5.0, pixel_threshold=8.0, regions=[region],
                                anomaly_map=np.zeros((96, 96), np.float32), image_shape=(96, 96), image_sha256="", model={}, timings_ms={})

    said = {lang: describe(failed(9.37), lang) for lang in LANGUAGES}
    assert "covering 937 px, 9.37 mm² (10.17% of the image)" in said["en"]
    assert "937 px, 9,37 mm² (10,17\u00a0% de la imagen)" in said["es"]
    assert "面积 937 像素，合 9.37 平方毫米（占图像 10.17%）" in said["zh"]
    assert "0.0012 mm²" in describe(failed(0.0012), "en")
    assert all("mm" not in describe(failed(None), lang) and "毫米" not in describe(failed(None), lang) for lang in LANGUAGES)


def test_inspect_says_how_many_regions_it_found_beyond_those_it_lists(capsys, monkeypatch, tiny_ckpt, tiny_data):
    """Beyond DecisionConfig.max_regions (20) only the most severe regions are listed; inspect's line read "regions 20"
    for a part with 35, while its record said defects_found 35."""
    import inspector.api
    from inspector.cli import main
    from inspector.decision import Region, Regions

    def many(*_args, **_kwargs):
        regions = Regions(Region(box=(i, 0, 1, 1), area_px=1, peak=9.0, mean=9.0, severity="high") for i in range(20))
        regions.found = 35
        return FAIL, regions

    monkeypatch.setattr(inspector.api, "decide", many)
    image = sorted((tiny_data / "test/blob").glob("*.png"))[0]
    assert main(["inspect", str(tiny_ckpt), str(image)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "regions 20 of 35  " in line
    assert main(["inspect", str(tiny_ckpt), str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["defects_found"] == 35


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns of the damage the test makes
def test_a_tiff_cut_short_is_said_to_be_so_in_one_line(capfd, tmp_path):
    """A TIFF cut short (its directory, written after the pixels, lost) read "cannot be decoded (UnidentifiedImageError);
    is it a PNG/JPEG/BMP/TIFF?" after OpenCV's own TIFF_Error lines, printed raw; fit's header check let it through."""
    import io

    import pytest
    from PIL import Image

    from inspector.api import load_image
    from model.errors import InspectorError
    from model.images import read_image_header

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, "TIFF", compression="tiff_lzw")
    (tmp_path / "part.tif").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 9 // 10])
    capfd.readouterr()
    for read in (load_image, read_image_header):
        with pytest.raises(InspectorError, match=r"part.tif: cannot be decoded \(its TIFF directory lies beyond the end of its "
                                                  r"\d+ bytes\); the TIFF data is damaged or cut short"):
            read(tmp_path / "part.tif")
    assert capfd.readouterr().err == ""
    (tmp_path / "whole.tif").write_bytes(buf.getvalue())
    assert load_image(tmp_path / "whole.tif").rgb.shape == (64, 64, 3)
