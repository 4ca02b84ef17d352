"""Don't-care regions (`fit --ignore`): what shows there (a printed code that differs on every part) is neither learnt
nor judged, in fit, inspect, exports and overlays; the rest is inspected as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.api import Inspector
from model.errors import InspectorError
from model.framing import Framing, region_mask
from tests.cli import assert_one_line_error, cli
from tests.synthetic import defect_image, good_image

CODE = (58, 4, 34, 16)  # x, y, w, h in the tiny dataset's 96 px images: where each part carries its own printed code
ARGS = ("--size", 64, "--coreset", 0.25)


def stamped(rgb: np.ndarray, seed: int) -> np.ndarray:
    """The part with a code printed in CODE, another on every part (dark digits on a light label)."""
    out = rgb.copy()
    x, y, w, h = CODE
    label = np.full((h, w, 3), 235, np.uint8)
    digits = "".join(str(d) for d in np.random.default_rng(seed).integers(0, 10, 4))
    cv2.putText(label, digits, (1, h - 3), cv2.FONT_HERSHEY_PLAIN, 0.8, (20, 20, 20), 1)
    out[y : y + h, x : x + w] = label
    return out


@pytest.fixture(scope="module")
def stamped_data(tiny_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stamped") / "data"
    shutil.copytree(tiny_data, root)
    for i, path in enumerate(sorted(p for p in root.rglob("*.png") if "ground_truth" not in p.parts)):
        cv2.imwrite(str(path), stamped(cv2.imread(str(path)), i))
    return root


@pytest.fixture(scope="module")
def models(stamped_data, tmp_path_factory) -> tuple[Path, Path]:
    """(a model of the stamped parts, the same with the code ignored and a learnt branch, which hides it too)."""
    from inspector.cli import main

    out = tmp_path_factory.mktemp("ignore_models")
    assert main([str(a) for a in ("fit", stamped_data, "--out", out / "plain", *ARGS, "--synth", 0)]) == 0
    assert main([str(a) for a in ("fit", stamped_data, "--out", out / "ignore", *ARGS, "--synth", 24, "--synth-steps", 30,
                                  "--ignore", ",".join(map(str, CODE)))]) == 0
    return out / "plain", out / "ignore"


def test_what_shows_in_an_ignored_region_changes_nothing(models):
    plain, ignoring = (Inspector.load(m) for m in models)
    assert 0.05 < ignoring.engine.meta.framing.ignored_share < 0.2
    for seed in range(3):
        for part, verdict in ((good_image(40 + seed), "PASS"), (defect_image(seed)[0], "FAIL")):
            a, b = (ignoring.inspect(stamped(part, s)) for s in (100 + seed, 200 + seed))
            assert b.score == pytest.approx(a.score, abs=1e-5) and a.verdict == verdict
            np.testing.assert_allclose(b.anomaly_map, a.anomaly_map, atol=1e-5)
            assert a.anomaly_map[region_mask(a.anomaly_map.shape, CODE)].max() <= a.anomaly_map.min() + 1e-3  # never marked
            assert not any(r.box[0] >= CODE[0] and r.box[1] + r.box[3] <= CODE[1] + CODE[3] for r in a.regions)
    # the plain model judges the code, so the test above could fail
    c, d = (plain.inspect(stamped(good_image(40), s)) for s in (100, 200))
    assert abs(c.score - d.score) > 1e-3
    # a smudge on the code is not a defect; the same smudge on the part is
    part = stamped(good_image(45), 300)
    smudged, beside = part.copy(), part.copy()
    x, y, w, h = CODE
    smudged[y + 2 : y + h - 2, x + 4 : x + 20] = 0
    beside[y + 40 : y + 52, x + 4 : x + 20] = 0
    base, on_code, off_code = (ignoring.inspect(img) for img in (part, smudged, beside))
    assert on_code.score == pytest.approx(base.score, abs=1e-5)
    assert off_code.score > base.score + 1.0 and off_code.verdict == "FAIL"


def test_the_onnx_export_hides_the_region_as_its_checkpoint_does(models, tmp_path):
    from exporters.export import export

    (done,) = export(models[1], ["onnx"], tmp_path)
    net = json.loads(done.path.with_name(done.path.name + ".json").read_text())["net"]
    assert net["ignore"]["mask"] and net["ignore"]["frame"] == [96, 96]
    onnx, ckpt = Inspector.load(done.path), Inspector.load(models[1])
    for seed in (1, 2):
        image = stamped(defect_image(seed)[0], 500 + seed)
        a, b = ckpt.inspect(image), onnx.inspect(image)
        assert b.score == pytest.approx(a.score, abs=1e-3)
        np.testing.assert_allclose(b.anomaly_map, a.anomaly_map, atol=2e-3)


def test_the_overlay_dims_the_ignored_region(models):
    from inspector.overlay import render_overlay
    from model.framing import ignored_in

    image = stamped(defect_image(1)[0], 9)
    r = Inspector.load(models[1]).inspect(image)
    ignored = ignored_in(r.ignored, r.image_shape, r.roi)
    assert ignored[region_mask(ignored.shape, CODE)].all() and ignored.mean() < 0.2
    plain = render_overlay(image, r.anomaly_map, r.pixel_threshold, r.verdict, r.regions)
    dimmed = r.overlay(image)
    boxes = (plain != render_overlay(image, r.anomaly_map, r.pixel_threshold, r.verdict, [])).any(axis=2)  # drawn over the dimming
    np.testing.assert_array_equal(dimmed[ignored & ~boxes], plain[ignored & ~boxes] // 3)
    np.testing.assert_array_equal(dimmed[~ignored], plain[~ignored])


def test_the_ignored_pixels_hold_the_maps_least_value_at_the_images_size(models):
    """Where the map is brought to the image's size (resized, placed in the frame, turned back), the pixels named
    ignored there read exactly its least value: a mask resized on its own took in a row the map's interpolation mixes."""
    from model.framing import Box, ignored_in, place_map
    from model.images import resize_map

    r = Inspector.load(models[1]).inspect(stamped(defect_image(2)[0], 3))
    ignored = ignored_in(r.ignored, r.image_shape, r.roi)
    assert ignored[region_mask(ignored.shape, CODE)].all()  # what --ignore asked for, all of it
    assert (r.anomaly_map[ignored] == r.anomaly_map.min()).all()
    small = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    hidden = np.zeros((64, 64), bool)
    hidden[5:17, 30:50] = True
    small[hidden] = small.min()  # as the graph leaves its map (model.head)
    for box in ((7, 5, 90, 70), Box(20, 15, 90, 70, 17.0)):  # a region, a turned one
        full = place_map(resize_map(small, (70, 90)), (120, 130), box)
        ignored = ignored_in(hidden, (120, 130), box)
        assert ignored.sum() > 100 and np.allclose(full[ignored], full.min(), rtol=0, atol=1e-6)  # OpenCV < 5 resizes a step off


def test_a_part_failed_all_over_has_no_region_in_the_ignored_pixels(models):
    """A missing part maps high everywhere, its least value (held by the ignored pixels) above the pixel threshold too:
    its region took them in, though nothing there is judged."""
    insp = Inspector.load(models[1])
    empty = np.full((96, 96, 3), 20, np.uint8)
    r = insp.with_thresholds(pixel=float(insp.inspect(empty).anomaly_map.min()) - 1.0).inspect(empty)
    assert r.verdict == "FAIL" and r.anomaly_map.min() > r.pixel_threshold
    x, y, w, h = CODE
    assert 0 < sum(reg.area_px for reg in r.regions) <= 96 * 96 - w * h


def test_a_mask_image_and_a_region_of_interest(stamped_data, tmp_path):
    """A mask image ignores as the same rectangle does; with --roi the mask is cut as the frames are."""
    from inspector.cli import main
    from model.framing import ignored_in

    mask = np.zeros((96, 96), np.uint8)
    mask[region_mask(mask.shape, CODE)] = 255
    cv2.imwrite(str(tmp_path / "code.png"), mask)
    args = [str(a) for a in ("fit", stamped_data, *ARGS, "--synth", 0)]
    assert main([*args, "--out", str(tmp_path / "rect"), "--ignore", ",".join(map(str, CODE))]) == 0
    assert main([*args, "--out", str(tmp_path / "mask"), "--ignore", str(tmp_path / "code.png")]) == 0
    rect, masked = (Inspector.load(tmp_path / m) for m in ("rect", "mask"))
    assert masked.engine.meta.framing == rect.engine.meta.framing
    image = stamped(defect_image(3)[0], 7)
    assert masked.inspect(image).score == pytest.approx(rect.inspect(image).score, abs=1e-6)
    # a region of interest that holds the code: the mask is the code's place within it; the frame may be any size
    assert main([*args, "--out", str(tmp_path / "roi"), "--roi", "8,0,88,88", "--ignore", str(tmp_path / "code.png")]) == 0
    roi = Inspector.load(tmp_path / "roi")
    assert roi.engine.meta.framing.frame is None
    a, b = (roi.inspect(np.pad(stamped(good_image(60), s), ((0, 20), (0, 30), (0, 0)))) for s in (1, 2))
    assert b.score == pytest.approx(a.score, abs=1e-5) and a.anomaly_map.shape == (116, 126)
    ignored = ignored_in(a.ignored, a.image_shape, a.roi)
    assert ignored[region_mask((116, 126), CODE)].all() and not ignored[:, :8].any()


def test_eval_leaves_the_ignored_pixels_out_of_the_pixel_metrics(capsys, models, stamped_data, tmp_path):
    """Defect masks that reach into the ignored region, or that stop at it, read alike: a defect pixel there is not asked for."""
    reports = []
    for name, value in (("into", 255), ("beside", 0)):
        data = tmp_path / name
        shutil.copytree(stamped_data, data)
        for mask in (data / "ground_truth").rglob("*.png"):
            m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
            m[region_mask(m.shape, CODE)] = value
            cv2.imwrite(str(mask), m)
        rc, out, err = cli(capsys, "eval", models[1], data, "--json", "--no-overlap")
        assert rc == 0, err
        reports.append(json.loads(out))
    for key in ("pixel_auroc", "pixel_ap", "aupro"):
        assert reports[0][key] == reports[1][key], key
    # the figures alike; where the masks were chosen on is another matter ("into" redrew them: masks_changed)
    figures = [{k: r["at_pixel_threshold"][k] for k in ("threshold", "precision", "recall", "f1")} for r in reports]
    assert figures[0] == figures[1] and reports[0]["at_pixel_threshold"].get("masks_changed") is True
    # for the model that judges the code, the two differ, so the test above could fail
    judged = [json.loads(cli(capsys, "eval", models[0], tmp_path / n, "--json", "--no-overlap")[1])["pixel_auroc"] for n in ("into", "beside")]
    assert abs(judged[0] - judged[1]) > 1e-3


def test_bad_ignore_regions_and_frames_are_refused_in_one_line(capsys, models, stamped_data, tmp_path):
    out = tmp_path / "m"
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((50, 60), np.uint8))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for bad, needles in (("1,2,3", ("--ignore 1,2,3", "no such file", "X,Y,W,H")),
                         ("0,0,0,10", ("--ignore 0,0,0,10", "X,Y,W,H")),
                         ("90,0,10,10", ("--ignore 90,0,10,10", "beyond the 96x96 px training images")),
                         ("0,0,96,96", ("leaves 0.0% of the image to inspect",)),
                         (str(tmp_path / "small.png"), ("small.png", "60x50 px, but the training images are 96x96 px")),
                         (str(tmp_path / "junk.png"), (f"--ignore {tmp_path / 'junk.png'}: cannot be decoded", "give a mask image"))):
        rc, _, err = cli(capsys, "fit", stamped_data, "--out", out, *ARGS, "--synth", 0, f"--ignore={bad}")
        assert_one_line_error(rc, err, *needles)
    rc, _, err = cli(capsys, "fit", stamped_data, "--out", out, *ARGS, "--roi", "0,30,60,60", "--ignore", ",".join(map(str, CODE)))
    assert_one_line_error(rc, err, "covers nothing of the region of interest")
    rc, _, err = cli(capsys, "fit", stamped_data, "--out", out, *ARGS, "--roi", "50,0,60,60", "--ignore", ",".join(map(str, CODE)))
    assert_one_line_error(rc, err, "train/good/000.png", "does not contain the model's region of interest")
    assert not out.exists()
    # without a region, the mask is drawn on frames of one size: another is refused, in fit and in inspect
    other = stamped_data.parent / "other"
    shutil.copytree(stamped_data / "train" / "good", other)
    cv2.imwrite(str(other / "005.png"), np.zeros((80, 96, 3), np.uint8))
    rc, _, err = cli(capsys, "fit", other, "--out", out, *ARGS, "--synth", 0, "--ignore", ",".join(map(str, CODE)))
    assert_one_line_error(rc, err, "005.png", "96x80 px, but the model's --ignore regions are drawn on 96x96 px images")
    with pytest.raises(InspectorError, match="96x80 px, but the model's --ignore regions"):
        Inspector.load(models[1]).inspect(np.zeros((80, 96, 3), np.uint8))


def test_a_checkpoint_without_ignored_regions_keeps_its_manifest_as_before(models):
    from model.net import NetConfig
    from model.new_parts import options_from_manifest

    assert not {"ignore", "fill_around"} & NetConfig().to_dict().keys()  # a version without --ignore still reads a model that has none
    manifest = json.loads((models[1] / "manifest.json").read_text())
    assert Framing.of(NetConfig.from_dict(manifest["net"])).ignore == manifest["net"]["ignore"]["mask"]
    assert options_from_manifest(manifest["options"], "m").ignore == (",".join(map(str, CODE)),)  # --new-parts refits
    with pytest.raises(InspectorError, match="--ignore mask cannot be decoded"):
        Framing(ignore="not a PNG").keep()


def test_the_fill_follows_the_pixels_around_it():
    """What is hidden takes the colour around it, so the fill leaves no edge where the part's shade runs across it; kept
    pixels stay as they are, and filling twice changes nothing (fit hides once before its flips, the graph again)."""
    import torch

    from model.net import fill_around

    for h, w in ((64, 64), (40, 72)):
        ramp = torch.linspace(0.0, 1.0, w).expand(2, 3, h, w).clone()
        ramp[1] = 1.0 - ramp[1]
        keep = torch.ones(h, w)
        keep[10:30, w // 4 : w // 2] = 0.0
        out = fill_around(ramp, keep)
        assert torch.equal(out * keep, ramp * keep)
        assert torch.allclose(fill_around(out, keep), out, atol=1e-6)
        hole = keep == 0
        mean_fill = (ramp * keep).mean(dim=(2, 3), keepdim=True) / keep.mean()
        assert (out - ramp)[..., hole].abs().max() < 0.1 < (mean_fill - ramp).expand_as(ramp)[..., hole].abs().max()


def test_a_model_fitted_with_the_mean_fill_keeps_it(models):
    """Models of the version before `fill_around` learnt a mean-coloured fill; they are judged with it still, and a new
    model's field makes that version refuse it rather than fill it wrongly (an unknown NetConfig field)."""
    import torch

    from model.net import InspectorNet, NetConfig

    net = json.loads((models[1] / "manifest.json").read_text())["net"]
    assert net["fill_around"] is True
    older = {k: v for k, v in net.items() if k != "fill_around"}
    image = torch.rand(1, 3, *net["input_size"])
    fills = [InspectorNet(NetConfig.from_dict(d), load_weights=False).hide(image) for d in (net, older)]
    keep = torch.from_numpy(Framing.of(net).keep())
    mean = (image * keep).mean(dim=(2, 3), keepdim=True) / keep.mean()
    torch.testing.assert_close(fills[1], image * keep + mean * (1 - keep))
    assert not torch.allclose(fills[0], fills[1], atol=1e-2)
