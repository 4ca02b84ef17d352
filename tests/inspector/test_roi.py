"""A region of interest (`fit --roi`): the model inspects one part of every frame, the same in fit, eval, inspect,
exports and the daemon."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.api import Inspector
from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.inspector.conftest import png, running, wait_until
from tests.synthetic import defect_image

ROI = (20, 12, 96, 96)  # the tiny dataset's 96 px images, placed here in each frame
FRAME = (120, 130)  # h, w


def frame(rgb: np.ndarray, seed: int, fill: int | None = None) -> np.ndarray:
    """The image at ROI in a larger frame of clutter (another each time), as a camera sees a part beside its fixture."""
    x, y, w, h = ROI
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (*FRAME, *rgb.shape[2:]), dtype=np.uint8) if fill is None else np.full((*FRAME, *rgb.shape[2:]), fill, np.uint8)
    out[y : y + h, x : x + w] = rgb
    return out


@pytest.fixture(scope="module")
def framed_data(tiny_data, tmp_path_factory) -> Path:
    """The tiny dataset with every image (and mask) framed: the clutter differs per image, masks are empty outside."""
    root = tmp_path_factory.mktemp("framed") / "data"
    shutil.copytree(tiny_data, root)
    for i, path in enumerate(sorted(root.rglob("*.png"))):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), frame(img, i, fill=0 if "ground_truth" in path.parts else None))
    return root


@pytest.fixture(scope="module")
def models(tiny_data, framed_data, tmp_path_factory) -> tuple[Path, Path]:
    """(a model of the plain images, a model of the framed ones with --roi), fitted alike."""
    out = tmp_path_factory.mktemp("roi_models")
    args = ("--size", 64, "--coreset", 0.25, "--synth", 0)
    for data, name, extra in ((tiny_data, "plain", ()), (framed_data, "roi", ("--roi", ",".join(map(str, ROI))))):
        from inspector.cli import main

        assert main([str(a) for a in ("fit", data, "--out", out / name, *args, *extra)]) == 0
    return out / "plain", out / "roi"


def test_the_region_model_judges_a_frame_as_the_plain_model_judges_the_part_in_it(models):
    plain, roi = (Inspector.load(m) for m in models)
    assert roi.engine.meta.roi == ROI and plain.engine.meta.roi is None
    assert roi.image_threshold == pytest.approx(plain.image_threshold, abs=1e-5)
    assert roi.pixel_threshold == pytest.approx(plain.pixel_threshold, abs=1e-5)
    x, y, w, h = ROI
    for seed in range(3):
        part = defect_image(seed)[0]
        a = plain.inspect(part)
        b = roi.inspect(frame(part, 100 + seed))  # the clutter around it is new to the model
        assert b.score == pytest.approx(a.score, abs=1e-4) and b.verdict == a.verdict == "FAIL"
        assert b.anomaly_map.shape == FRAME
        np.testing.assert_allclose(b.anomaly_map[y : y + h, x : x + w], a.anomaly_map, atol=1e-4)
        outside = b.anomaly_map.copy()
        outside[y : y + h, x : x + w] = np.nan
        assert np.nanmax(outside) <= a.anomaly_map.min() + 1e-6  # not inspected: never marked
        assert [r.box for r in b.regions] == [(r.box[0] + x, r.box[1] + y, *r.box[2:]) for r in a.regions]
        assert [r.area_px for r in b.regions] == [r.area_px for r in a.regions]


def test_eval_of_the_framed_data_equals_eval_of_the_plain_data(capsys, models, tiny_data, framed_data):
    reports = []
    for model, data in zip(models, (tiny_data, framed_data), strict=True):
        rc, out, err = cli(capsys, "eval", model, data, "--json")
        assert rc == 0, err
        reports.append(json.loads(out))
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "n_good", "n_defect"):
        assert reports[1][key] == pytest.approx(reports[0][key], abs=1e-3), key
    assert reports[1]["model"]["roi"] == list(ROI) and "roi" not in reports[0]["model"]


def test_a_frame_without_the_region_is_refused_in_one_line(capsys, models, tiny_data, tmp_path):
    roi = Inspector.load(models[1])
    small = defect_image(0)[0]  # 96 px: the region reaches to x = 116
    with pytest.raises(InspectorError, match="96x96 px does not contain the model's region of interest 20,12,96,96"):
        roi.inspect(small)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    assert_one_line_error(*cli(capsys, "inspect", models[1], tmp_path / "small.png")[::2], "small.png", "region of interest")
    # fitting: a region beyond the training images, and one that is not a region
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--roi", "0,0,97,64", "--synth", 0)
    assert_one_line_error(rc, err, "train/good/000.png", "96x96 px does not contain", "--roi")
    for bad in ("0,0,64", "0,0,8,64", "-1,0,64,64", "a,b,c,d"):
        rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", f"--roi={bad}")
        assert_one_line_error(rc, err, "--roi", "X,Y,W,H")
    assert not (tmp_path / "m").exists()


def test_the_onnx_export_crops_as_its_checkpoint_does(models, tmp_path):
    from exporters.export import export

    (done,) = export(models[1], ["onnx"], tmp_path)
    assert json.loads(done.path.with_name(done.path.name + ".json").read_text())["input"]["crop"] == list(ROI)
    onnx, ckpt = Inspector.load(done.path), Inspector.load(models[1])
    assert onnx.engine.meta.roi == ROI
    image = frame(defect_image(5)[0], 7)
    a, b = ckpt.inspect(image), onnx.inspect(image)
    assert b.score == pytest.approx(a.score, abs=1e-3) and b.anomaly_map.shape == FRAME
    assert [r.box for r in b.regions] == [r.box for r in a.regions]


def test_the_overlay_dims_what_the_model_does_not_inspect(models):
    from inspector.overlay import render_overlay

    image = frame(defect_image(2)[0], 3)
    r = Inspector.load(models[1]).inspect(image)
    dimmed = r.overlay(image)
    plain = render_overlay(image, r.anomaly_map, r.pixel_threshold, r.verdict, r.regions)
    x, y, w, h = ROI
    outside = np.ones(FRAME, bool)
    outside[y : y + h, x : x + w] = False
    # all but the verdict tag, drawn over both alike
    assert (dimmed[outside] == plain[outside] // 3).all(axis=1).mean() > 0.8
    np.testing.assert_array_equal(dimmed[y + 30 : y + h - 30, x : x + w], plain[y + 30 : y + h - 30, x : x + w])


def test_a_checkpoint_without_a_region_keeps_its_manifest_as_before(models):
    from model.net import NetConfig
    from model.new_parts import options_from_manifest

    assert "roi" not in NetConfig().to_dict()  # a version without regions still reads a model that has none
    assert NetConfig.from_dict(NetConfig(roi=ROI).to_dict()).roi == ROI
    manifest = json.loads((models[1] / "manifest.json").read_text())
    assert manifest["net"]["roi"] == list(ROI) and options_from_manifest(manifest["options"], "m").roi == ROI  # --new-parts refits


def test_the_daemon_answers_a_frame_without_the_region_on_the_error_topic(station, broker, listen, models):
    cfg = station(model={"path": str(models[1])})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, Inspector.load(models[1])) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 5, "status online")
        lst.publish("image", png(defect_image(0)[0]), user={"inspection_id": "small"})
        lst.publish("image", png(frame(defect_image(0)[0], 1)), user={"inspection_id": "framed"})
        errors = wait_until(lambda: lst.json("error"), 15, "an error")
        results = wait_until(lambda: lst.json("result"), 15, "a result")
        assert errors[0]["inspection_id"] == "small" and "does not contain the model's region of interest" in errors[0]["error"]
        assert results[0]["inspection_id"] == "framed" and results[0]["verdict"] == "FAIL"
        assert results[0]["image"]["width"] == FRAME[1]
        assert d.metrics.total("inspector_rejected_total") == 1
