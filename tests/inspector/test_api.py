"""The Python API: `Inspector.load(ckpt).inspect(image)` on the tiny fitted checkpoint."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from inspector import Inspector
from model.errors import InspectorError


@pytest.fixture(scope="module")
def insp(tiny_ckpt) -> Inspector:
    return Inspector.load(tiny_ckpt)


def defect(tiny_data, i: int = 0):
    return tiny_data / "test" / "blob" / f"{i:03d}.png", cv2.imread(str(tiny_data / "ground_truth" / "blob" / f"{i:03d}_mask.png"), 0) > 0


def test_defect_fails_with_a_region_on_it(insp, tiny_data):
    path, mask = defect(tiny_data, 1)
    r = insp.inspect(path, serial="SN-1")
    # calibrated for escape 1% on the 4 test defects: every one of them fails by construction
    assert r.verdict == "FAIL" and r.score >= r.threshold
    assert r.anomaly_map.shape == mask.shape == (96, 96)  # back at the image's own size, not the model's 64 px
    assert r.regions
    x, y, w, h = r.regions[0].box
    assert mask[y : y + h, x : x + w].any()  # the largest region overlaps the planted blob
    text = r.describe("en")
    assert "SN-1" in text and "FAILED" in text and "\n" not in text
    assert r.describe("zh") != text and r.describe("es") != text


def test_good_part_passes_under_a_high_threshold(insp, tiny_data):
    r = insp.with_thresholds(image=1e9).inspect(tiny_data / "test" / "good" / "000.png")
    assert r.verdict == "PASS" and r.regions == [] and r.threshold == 1e9
    assert "passed" in r.describe("en")


def test_with_thresholds_keeps_earlier_overrides(insp):
    both = insp.with_thresholds(image=3.0).with_thresholds(pixel=2.0)
    assert (both.image_threshold, both.pixel_threshold) == (3.0, 2.0)
    assert insp.image_threshold == insp.engine.meta.image_threshold  # the original is unchanged


def test_with_thresholds_refuses_a_threshold_that_is_not_finite(insp):
    for given in ({"image": float("nan")}, {"pixel": float("inf")}):  # NaN would PASS every part
        with pytest.raises(InspectorError, match="threshold (nan|inf): give a finite score"):
            insp.with_thresholds(**given)


def test_path_bytes_and_array_inputs_agree(insp, tiny_data):
    path, _ = defect(tiny_data, 2)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    a, b, c = insp.inspect(path), insp.inspect(path.read_bytes()), insp.inspect(rgb)
    assert a.score == pytest.approx(b.score, abs=1e-6) and a.score == pytest.approx(c.score, abs=1e-6)
    assert a.image_sha256 == b.image_sha256  # both hash the file's bytes
    gray = insp.inspect(rgb[..., 0])  # grayscale arrays are accepted (this texture is grey anyway)
    assert gray.score == pytest.approx(a.score, abs=1e-4)
    batch = insp.inspect_batch([path, rgb])
    assert [r.score for r in batch] == pytest.approx([a.score, c.score], abs=1e-5)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])  # read as a PNG with alpha would be
    assert insp.inspect(rgba).score == pytest.approx(c.score, abs=1e-6)
    mono16 = rgb[..., 0].astype(np.uint16) * 256 + 128  # a 16-bit camera frame: stretched to its range, like 16-bit files
    assert insp.inspect(mono16).score == pytest.approx(insp.inspect(_stretched(rgb[..., 0])).score, abs=1e-6)


def _stretched(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float64)
    return ((g - g.min()) / (g.max() - g.min()) * 255.0).astype(np.uint8)


def test_record_is_json_and_follows_the_contract(insp, tiny_data):
    path, _ = defect(tiny_data, 0)
    rec = json.loads(json.dumps(insp.inspect(path, serial="S9", inspection_id="id-1").to_record()))
    assert rec["inspection_id"] == "id-1" and rec["serial"] == "S9" and rec["verdict"] == "FAIL"
    assert {"timestamp", "score", "threshold", "defects", "model", "timings_ms", "images", "source"} <= rec.keys()
    assert rec["model"]["backbone"] == "efficientnet-lite0" and len(rec["model"]["sha256"]) == 64
    d = rec["defects"][0]
    assert {"type", "confidence", "box", "area_px", "severity"} <= d.keys() and d["area_px"] > 0


def test_the_record_agrees_with_the_verdict_at_the_threshold(insp, tiny_data):
    path, _ = defect(tiny_data, 0)
    score = float(insp.inspect(path).score)
    for threshold, verdict in [(math.nextafter(score, math.inf), "PASS"), (score, "FAIL")]:
        rec = json.loads(json.dumps(insp.with_thresholds(image=threshold).inspect(path).to_record()))
        assert rec["verdict"] == verdict and (rec["score"] >= rec["threshold"]) == (verdict == "FAIL")  # both read equal before


@pytest.mark.parametrize("bad, match", [
    ("missing.png", "no such file"),
    ("", "a folder, not an image file; give an image file"),
    (b"not an image", "cannot be decoded"),
    (np.zeros((32, 32, 3), np.float32), "dtype float32"),
    (np.zeros((32, 32, 5), np.uint8), r"shape \(32, 32, 5\)"),
    (np.zeros((4, 32), np.uint16), r"shape \(4, 32\);"),
    (42, "type int"),
])
def test_bad_images_raise_clear_errors(insp, tmp_path, bad, match):
    if isinstance(bad, str):
        bad = tmp_path / bad
    with pytest.raises(InspectorError, match=match):
        insp.inspect(bad)


def test_bad_arguments_raise_clear_errors(insp, tiny_data):
    """Each raised IndexError, ValueError, TypeError or a cv2.error of several lines."""
    path = tiny_data / "test" / "good" / "000.png"
    r = insp.inspect(path)
    for call, match in [(lambda: insp.inspect(""), "image '': an empty path"),
                        (lambda: insp.inspect_batch([path, path], serials=["x"]), "1 serials for 2 images; give one for each"),
                        (lambda: insp.inspect_batch([path, path], sources=["x"]), "1 sources for 2 images"),
                        (lambda: insp.inspect_batch(str(path)), "give a list of images, not one str"),
                        (lambda: insp.with_thresholds(image="4"), "image threshold '4': give a number"),
                        (lambda: r.overlay(np.zeros((10, 10, 3), np.uint8)), r"overlay: give the inspected image's RGB pixels, uint8 \(\d+, \d+, 3\)"),
                        (lambda: r.overlay(str(path)), "not a str")]:
        with pytest.raises(InspectorError, match=match):
            call()


def test_an_empty_batch_has_no_results(insp):
    assert insp.inspect_batch([]) == []


def test_unknown_language(insp, tiny_data):
    r = insp.inspect(tiny_data / "test" / "good" / "000.png")
    with pytest.raises(InspectorError, match="choose one of en, zh, es"):
        r.describe("fr")


def test_describe_tells_score_from_threshold_agrees_in_number_and_fails_a_nan():
    from inspector.decision import Region
    from inspector.result import InspectionResult

    def result(score, regions=()):
        return InspectionResult(inspection_id="x", verdict="PASS" if score < 4.2 else "FAIL", score=score, threshold=4.2, pixel_threshold=1.0,
                                regions=list(regions), anomaly_map=np.zeros((100, 200)), image_shape=(100, 200), image_sha256="0",
                                model={}, timings_ms={})

    assert "score 4.199999 is below the threshold 4.2" in result(4.1999995).describe("en")  # "4.20 is below the threshold 4.20" before
    assert "4,199999" in result(4.1999995).describe("es")
    one = result(9.0, [Region(box=(1, 2, 3, 4), area_px=12000, peak=9.0, mean=5.0, severity="high")]).describe("en")
    assert "1 defect region found: " in one and "12,000 px (60.00% of the image)" in one  # "1 defect region(s) found" before
    assert "score 9 is at or above the threshold 4.2 (by 4.8)." in one  # "(3.1x the margin of a good part)" before
    assert "（高出 4.8）" in result(9.0).describe("zh") and "(lo supera en 4,8)" in result(9.0).describe("es")
    big = result(123456.7, [Region(box=(1, 2, 3, 4), area_px=5, peak=9.0, mean=5.0, severity="high", confidence=0.87)])
    assert "score 123,457 is at or above" in big.describe("en")  # 123,500: rounded, yet it looked exact
    assert "confianza del 87\xa0%" in big.describe("es")  # "87%" beside "60,00 %"
    crack = result(9.0, [Region(box=(1, 2, 3, 4), area_px=12, peak=9.0, mean=5.0, severity="low", type="crack")])
    assert "：裂纹（严重程度：低）" in crack.describe("zh") and ": grieta (gravedad baja)" in crack.describe("es")  # as the reports name it
    assert ": crack (low severity)" in crack.describe("en") and "pixel threshold" not in crack.describe("en")
    peak = result(9.0, [Region(box=(1, 2, 3, 4), area_px=12, peak=0.3, mean=0.2, severity="low", located_by="map_peak")])
    assert "No pixel reached the pixel threshold: the region is where the anomaly map peaks" in peak.describe("en")  # unsaid before
    assert "没有像素达到像素阈值" in peak.describe("zh") and "Ningún píxel alcanzó el umbral de píxel" in peak.describe("es")
    nan = result(float("nan"))
    assert nan.verdict == "FAIL" and "no valid score (NaN or infinite)" in nan.describe("en") and nan.to_record()["score"] is None
    json.dumps(nan.to_record(), allow_nan=False)  # "score": NaN is not JSON


def test_the_verdict_tag_never_covers_a_defect_box():
    from inspector.decision import Region
    from inspector.overlay import COLOURS, render_overlay

    amap = np.zeros((64, 64), np.float32)
    amap[2:10, 0:20] = 5.0
    out = render_overlay(np.full((64, 64, 3), 128, np.uint8), amap, 1.0, "FAIL", [Region(box=(0, 0, 20, 16), area_px=160, peak=5.0, mean=4.0, severity="high")])
    fail_rgb = COLOURS["FAIL"][::-1]
    tag = np.all(out == fail_rgb, axis=2)
    assert tag[1:15, 1:19].sum() == 0  # inside the box outline; a full-width banner hid the box and the defect before
    assert tag[:20, 40:].sum() > 300  # the tag went to the free corner at the top right


def test_a_pil_image_is_inspected_upright_like_its_file(insp, tiny_data):
    from PIL import Image

    path = tiny_data / "test" / "blob" / "001.png"
    with Image.open(path) as img:
        img.load()
        r = insp.inspect(img)  # refused before: "give a path, encoded bytes or a uint8/uint16 array"
        assert r.score == pytest.approx(insp.inspect(path).score, abs=1e-5) and r.source == "PIL image"
        wide = img.crop((0, 0, 96, 64))
        exif = wide.getexif()
        exif[0x0112] = 6  # stored turned a quarter: inspected as the camera meant it, 64 wide and 96 high
        buf = __import__("io").BytesIO()
        wide.save(buf, "PNG", exif=exif)
    with Image.open(buf) as turned:
        assert insp.inspect(turned).anomaly_map.shape == insp.inspect(buf.getvalue()).anomaly_map.shape == (96, 64)
    with pytest.raises(InspectorError, match="give a path, encoded bytes, a PIL image or a uint8/uint16 array"):
        insp.inspect([1, 2, 3])


def test_a_checkpoints_manifest_path_opens_the_checkpoint(insp, tiny_ckpt, tiny_data):
    image = tiny_data / "test" / "good" / "000.png"
    assert Inspector.load(tiny_ckpt / "manifest.json").inspect(image).score == pytest.approx(insp.inspect(image).score)  # refused before


def test_the_folder_one_is_in_opens_as_a_model_or_is_named(insp, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    # "." and "/" have no name: Path.with_suffix raised ValueError, exit 70 for `inspector inspect . part.png` in a checkpoint
    image = tiny_data / "test" / "good" / "000.png"
    monkeypatch.chdir(tiny_ckpt)
    assert Inspector.load(".").inspect(image).score == pytest.approx(insp.inspect(image).score)
    monkeypatch.chdir(tmp_path)
    for model in (".", "/"):
        with pytest.raises(InspectorError, match="no manifest.json inside"):
            Inspector.load(model)


def test_an_image_unlike_the_training_images_is_flagged(insp, tiny_data):
    from inspector.api import unlike_training

    sizes = insp.engine.meta.manifest["training"]["image_size"]
    assert sizes == {"min": [96, 96], "max": [96, 96], "aspect": [1.0, 1.0]}
    assert insp.inspect(tiny_data / "test" / "good" / "000.png").warnings == []
    wide = np.tile(cv2.imread(str(tiny_data / "test" / "good" / "000.png")), (1, 3, 1))  # a camera cropped otherwise: 288x96
    r = insp.inspect(wide)
    assert r.warnings == ["image 288x96 px is unlike the training images (96x96 px); check the camera's resolution, crop and "
                          "orientation, or fit on images like it"] and r.to_record()["warnings"] == r.warnings  # judged silently before
    assert unlike_training((100, 100), None) is None  # a checkpoint that records no sizes
    from reports.i18n import translations
    from reports.warnings import translate_warning

    # a report in Chinese reads it in Chinese (it would stay English if this text and the report's pattern drifted apart)
    assert translate_warning(translations("zh").gettext, r.warnings[0]).startswith("图像 288x96 像素与训练图像（96x96 像素）不同")
    seen = unlike_training((900, 100), {"min": [120, 240], "max": [600, 290], "aspect": [0.43, 2.45]})
    assert "(120x240–600x290 px)" in translate_warning(translations("en").gettext, seen)
    assert unlike_training((250, 400), {"min": [120, 240], "max": [600, 290], "aspect": [0.43, 2.45]}) is None  # tiles of many sizes


def test_a_frame_spoiled_by_the_camera_or_the_light_is_named(insp, tiny_data, monkeypatch):
    from model.quality import STATS, WARNINGS

    training = insp.engine.meta.manifest["training"]
    assert set(training["image_quality"]) == set(STATS)  # fit keeps the good images' range
    good = cv2.imread(str(tiny_data / "test" / "good" / "000.png"))
    assert insp.inspect(good).warnings == []
    dark = insp.inspect(np.zeros_like(good))  # failed before too, blaming the part ("blob", its regions)
    assert dark.verdict == "FAIL" and dark.warnings == [WARNINGS["dark"]] and dark.to_record()["warnings"] == dark.warnings
    assert dark.describe("en").endswith(" Warning: Image is much darker than the training images (no light, a covered lens or too "
                                        "short an exposure); check the light and the camera.")  # blamed on the part alone before
    assert dark.describe("zh").endswith("警告：图像比训练图像暗得多（无光照、镜头被遮挡或曝光时间过短）；请检查光源和相机。")
    two = insp.inspect(np.zeros((40, 40, 3), np.uint8))  # small and dark: each warning its own sentence, not run together
    assert len(two.warnings) >= 2 and "or fit on images like it. Warning: " in two.describe("en"), two.describe("en")
    assert insp.inspect(np.full_like(good, 128)).warnings == [WARNINGS["blank"]]
    assert [r.warnings for r in insp.inspect_batch([good, np.full_like(good, 255)])] == [[], [WARNINGS["overexposed"]]]
    monkeypatch.delitem(training, "image_quality")  # a model fitted before the range was kept
    assert insp.inspect(np.zeros_like(good)).warnings == []


def test_a_loaded_image_keeps_the_source_it_is_given(insp, tiny_data):
    from inspector.api import load_image

    image = load_image(tiny_data / "test" / "good" / "000.png")
    assert insp.inspect(image, source="cam3/part-17").source == "cam3/part-17"  # the file's path before
    assert insp.inspect(image).source == str(tiny_data / "test" / "good" / "000.png")
