"""Numerical robustness: degenerate training sets, extreme frames, and the metrics and calibration against
straightforward references (scikit-learn where the virtual environment has it, brute force otherwise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from scipy import ndimage

from model.calibration import Policy, threshold_for
from model.data import load_dataset
from model.errors import InspectorError
from model.fit import FitOptions, fit
from model.metrics import aupro, average_precision, f1_max, fpr_at_recall, roc_auc, roc_curve, tpr_at_fpr
from tests.cli import assert_one_line_error, cli


def _train(root, images) -> None:
    folder = root / "train" / "good"
    folder.mkdir(parents=True)
    for i, rgb in enumerate(images):
        info = PngImagePlugin.PngInfo()
        info.add_text("frame", str(i))  # other bytes, the same pixels: not left out as a byte-identical copy
        Image.fromarray(rgb).save(folder / f"{i:03d}.png", pnginfo=info)


# --- degenerate training sets -------------------------------------------------------------------------------------


def test_one_picture_in_several_files_is_refused_in_one_line(tmp_path):
    """Six files of one picture: the deepest backbone level was flat over them, its scale of 1e6 overflowed the float16
    patch buffer, and fit blamed --coreset ("all from one training image"), whatever --coreset was given."""
    rgb = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _train(tmp_path, [rgb] * 6)
    for ratio in (0.01, 1.0):
        with pytest.raises(InspectorError, match=r"the 6 good training images are all the same picture at the model's 64x64 px input"):
            fit(load_dataset(tmp_path), FitOptions(input_size=64, coreset_ratio=ratio))


def test_blank_frames_of_any_level_and_size_are_refused_on_the_cli(tmp_path, capsys):
    """Blank frames (black, white, grey; of several sizes) are one picture once each image's contrast is standardised."""
    _train(tmp_path / "data", [np.full((64 + 3 * i, 64 + i, 3), level, np.uint8) for i, level in enumerate((0, 255, 128, 0, 255, 40))])
    rc, _, err = cli(capsys, "fit", tmp_path / "data", "--out", tmp_path / "ck", "--size", "64", "--synth", "0")
    assert_one_line_error(rc, err, "all the same picture", "blank frames of any grey level", "give images of different good parts")
    assert not (tmp_path / "ck").exists()


def test_images_a_pixel_apart_still_fit(tmp_path):
    """The refusal is for one picture only: the same part with one pixel different in each image is fitted."""
    rgb = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    images = []
    for i in range(6):
        one = rgb.copy()
        one[10 + 5 * i, 20] ^= 255
        images.append(one)
    _train(tmp_path, images)
    _, report = fit(load_dataset(tmp_path), FitOptions(input_size=64))
    assert all(math.isfinite(v) for v in report.thresholds.values())
    assert all(math.isfinite(s) for s in report.scores["good"])


def test_blank_and_extreme_frames_score_finite_and_fail(tiny_ckpt):
    """A sound model given a blank, saturated or half-black frame: a finite score far above its threshold."""
    from inspector.api import Inspector

    frames = [np.zeros((96, 96, 3), np.uint8), np.full((96, 96, 3), 255, np.uint8),
              np.r_[np.zeros((48, 96, 3), np.uint8), np.full((48, 96, 3), 255, np.uint8)]]
    with Inspector.load(tiny_ckpt) as inspector:
        for frame in frames:
            result = inspector.inspect(frame)
            assert math.isfinite(result.score) and result.verdict == "FAIL", result


# --- image-level metrics against a reference ----------------------------------------------------------------------


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for n in (2, 3, 5, 10, 60):
        for k in range(12):
            y = rng.random(n) < rng.uniform(0.1, 0.9)
            s = rng.random(n) if k % 3 == 0 else rng.integers(0, 3, n).astype(float) if k % 3 == 1 else np.full(n, 0.5)
            if y.any() and not y.all():
                cases.append((y, s))
    cases += [(np.array([1, 0, 0, 0], bool), np.array([0.9, 0.1, 0.2, 0.3])),  # a single defect, separated
              (np.array([0, 1, 1, 1], bool), np.array([0.9, 0.1, 0.2, 0.3])),  # a single good part, inverted
              (np.array([1, 1, 0, 0], bool), np.array([5.0, 6.0, 1.0, 2.0]))]
    return cases


def _rates(y: np.ndarray, s: np.ndarray) -> list[tuple[float, float, int, int, int]]:
    """(fpr, tpr, tp, fp, fn) of `score >= t` at every distinct score, and at +inf."""
    out = []
    for t in [*np.unique(s), np.inf]:
        p = s >= t
        tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
        out.append((fp / (~y).sum(), tp / y.sum(), tp, fp, fn))
    return out


@pytest.mark.parametrize("case", range(len(_cases())))
def test_image_metrics_match_a_reference(case):
    y, s = _cases()[case]
    rates = _rates(y, s)
    pairs = sum((a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y])
    assert roc_auc(y, s) == pytest.approx(pairs / (y.sum() * (~y).sum()), abs=1e-12)
    assert f1_max(y, s)[0] == pytest.approx(max(2 * tp / (2 * tp + fp + fn) for *_, tp, fp, fn in rates), abs=1e-12)
    f1, thr = f1_max(y, s)  # its threshold reaches it
    p = s >= thr
    assert 2 * (p & y).sum() / (p.sum() + y.sum()) == pytest.approx(f1, abs=1e-12)
    for recall in (0.99, 1.0):
        assert fpr_at_recall(y, s, recall) == pytest.approx(min(f for f, t, *_ in rates if t >= recall - 1e-12), abs=1e-12)
    assert tpr_at_fpr(y, s, 0.01) == pytest.approx(max(t for f, t, *_ in rates if f <= 0.01 + 1e-12), abs=1e-12)
    sklearn = pytest.importorskip("sklearn.metrics")
    assert roc_auc(y, s) == pytest.approx(sklearn.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(sklearn.average_precision_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    ref_fpr, ref_tpr, _ = sklearn.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_one_class_absent_gives_nan_auroc():
    assert math.isnan(roc_auc(np.zeros(4, bool), np.arange(4.0)))
    assert math.isnan(roc_auc(np.ones(4, bool), np.arange(4.0)))


# --- AUPRO against the MVTec AD definition ------------------------------------------------------------------------


def _reference_aupro(masks: np.ndarray, maps: np.ndarray, limit: float = 0.3, valid: np.ndarray | None = None) -> float:
    """MVTec AD's AUPRO written out: at each distinct score, the FPR over all defect-free pixels and the mean overlap of
    each 8-connected defect region; the curve from (0, 0), integrated by trapezoids up to `limit` (interpolated
    there), divided by `limit`. `valid` [H, W]: the only pixels that count, defect or defect-free."""
    valid = np.ones(masks.shape[1:], bool) if valid is None else valid
    masks = masks & valid
    regions = [(i, lab == r) for i in range(len(masks))
               for lab, n in [ndimage.label(masks[i], structure=np.ones((3, 3)))] for r in range(1, n + 1)]
    background = ~masks & valid
    points = [(0.0, 0.0)]
    for t in np.unique(maps[:, valid])[::-1]:
        hit = (maps >= t) & valid
        points.append(((hit & background).sum() / background.sum(), np.mean([(hit[i] & r).sum() / r.sum() for i, r in regions])))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= limit:
            break
        if x1 > limit:
            x1, y1 = limit, y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += (x1 - x0) * (y0 + y1) / 2.0
    return area / limit


def _mask_cases() -> list[np.ndarray]:
    m = np.zeros((3, 6, 7), bool)
    m[0, 0, 0] = True  # a one-pixel region in a corner
    m[0, 2:5, 6] = True  # a region along the border
    m[0, 4, 2] = m[0, 5, 3] = True  # diagonal neighbours: one region (8-connected)
    m[1, 1:3, 1:5] = True  # several regions of different sizes
    m[1, 5, 0] = True
    # image 2: a defect image whose mask is empty, all its pixels defect-free
    single = np.zeros((1, 5, 5), bool)
    single[0, 2, 2] = True
    whole_row = np.zeros((2, 4, 4), bool)
    whole_row[1, 0, :] = True
    return [m, single, whole_row]


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("kind", ["random", "ties", "equal", "perfect", "inverted"])
def test_aupro_matches_the_mvtec_definition(case, kind):
    masks = _mask_cases()[case]
    rng = np.random.default_rng(case)
    maps = {"random": rng.random(masks.shape), "ties": rng.integers(0, 3, masks.shape).astype(float),
            "equal": np.ones(masks.shape), "perfect": masks.astype(float), "inverted": (~masks).astype(float)}[kind]
    assert aupro(masks, maps) == pytest.approx(_reference_aupro(masks, maps), abs=1e-12)


def test_aupro_counts_only_the_valid_pixels():
    """With --ignore's don't-care pixels: regions cut by them, and their scores, count for nothing."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        masks = rng.random((2, 6, 6)) < 0.3
        valid = rng.random((6, 6)) < 0.7
        if not (masks & valid).any() or not (~masks & valid).any():
            continue
        maps = rng.integers(0, 4, masks.shape).astype(float)
        assert aupro(masks, maps, 0.3, valid) == pytest.approx(_reference_aupro(masks, maps, 0.3, valid), abs=1e-12)


def test_aupro_extremes():
    masks = _mask_cases()[0]
    assert aupro(masks, masks.astype(float) + np.random.default_rng(0).random(masks.shape) * 0.5) == pytest.approx(1.0)
    assert aupro(masks, (~masks).astype(float)) == pytest.approx(0.0)
    assert math.isnan(aupro(np.zeros((2, 4, 4), bool), np.ones((2, 4, 4))))  # no defect region at all


# --- calibration delivers its promised rate on the calibration scores ---------------------------------------------


@pytest.mark.parametrize("kind", ["far", "escape"])
@pytest.mark.parametrize("target", [0.0, 1e-300, 1e-9, 0.01, 0.1, 1 / 3, 0.5, 0.99])
def test_threshold_keeps_its_promise_and_is_the_best_that_does(kind, target):
    """On random and tie-heavy scores, few or many: the stored threshold fails at most the allowed share of good parts
    (far) or lets at most the allowed share of defects pass (escape), and no other threshold that keeps the promise
    does better on the other rate."""
    rng = np.random.default_rng(7)
    for trial in range(150):
        n_good, n_defect = int(rng.integers(1, 25)), int(rng.integers(1, 25))
        if trial % 2:
            good, defect = rng.integers(0, 5, n_good).astype(float), rng.integers(2, 8, n_defect).astype(float)
        else:
            good, defect = rng.normal(0.0, 1.0, n_good), rng.normal(2.0, 1.0, n_defect)
        thr = threshold_for(Policy(kind, target), good, defect)
        assert math.isfinite(thr)
        failed_good, passed_defects = int((good >= thr).sum()), int((defect < thr).sum())
        candidates = np.unique(np.r_[good, defect, np.inf])  # every distinct verdict: fail what scores at or above one
        if kind == "far":
            allowed = math.floor(target * n_good + 1e-9)
            assert failed_good <= allowed
            assert all((defect < c).sum() >= passed_defects for c in candidates if (good >= c).sum() <= allowed)
        else:
            allowed = math.floor(target * n_defect + 1e-9)
            assert passed_defects <= allowed
            assert all((good >= c).sum() >= failed_good for c in candidates if (defect < c).sum() <= allowed)


@pytest.mark.parametrize(("target", "hint"), [(5, "(for 5% give 0.05)"), (1.0, "(for 1% give 0.01)"), (99.5, "(for 99.5% give 0.995)")])
def test_a_target_given_as_a_percentage_names_the_fraction(target, hint):
    """Policy("far", 5) for 5 %: refused, as it should be, but with no word of the likely slip."""
    with pytest.raises(InspectorError, match="give a rate in") as caught:
        Policy("far", target)
    assert hint in str(caught.value)


@pytest.mark.parametrize("target", [100.0, 150.0, -0.5])
def test_a_target_beyond_any_percentage_gets_no_hint(target):
    with pytest.raises(InspectorError) as caught:
        Policy("escape", target)
    assert "%" not in str(caught.value)


def test_fit_prints_the_target_it_was_given(tmp_path, tiny_data, capsys):
    """--far 0.9995 printed "far target 1", a rate fit refuses, three significant digits rounding it up."""
    rc, out, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "ck", "--size", "64", "--synth", "0", "--far", "0.9995")
    assert rc == 0, err
    assert "(far target 0.9995; " in out
