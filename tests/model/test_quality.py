"""Image quality: a frame's light, exposure and focus against the training images' range (model.quality)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.images import preprocess
from model.quality import STATS, WARNINGS, quality_causes, quality_report, quality_stats, quality_summary
from tests.conftest import shared_dataset
from tests.synthetic import defect_image, good_image


def batch(images: list[np.ndarray], size: int = 64) -> np.ndarray:
    return np.stack([preprocess(img, (size, size)) for img in images])


def part(seed: int, size: int = 96) -> np.ndarray:
    """Grey plates of other grey levels on a grey ground, with a camera's noise: edges that blur softens."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 120.0)
    for _ in range(10):
        (x, y), (w, h) = rng.integers(0, size - 20, 2), rng.integers(8, 30, 2)
        img[y : y + h, x : x + w] = rng.uniform(60, 200)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def summary() -> dict:
    return quality_summary(quality_stats(batch([part(i) for i in range(12)])))


def causes(image: np.ndarray, summary: dict) -> list[str]:
    return quality_causes(quality_stats(batch([image]))[0], summary)


def test_the_range_is_kept_per_statistic(summary):
    assert list(summary) == list(STATS) and all(lo <= hi for lo, hi in summary.values())
    assert summary["white"] == [0.0, 0.0] and 0.3 < summary["brightness"][0] < 0.6  # the plates sit around mid grey


def test_dimming_keeps_contrast_and_sharpness_and_blur_lowers_sharpness():
    image = part(3)
    normal, dim, blurred = quality_stats(batch([image, (image * 0.4).astype(np.uint8), cv2.GaussianBlur(image, (0, 0), 1.5)]))
    assert dim[0] == pytest.approx(0.4 * normal[0], rel=0.05)
    assert dim[1] == pytest.approx(normal[1], rel=0.1) and dim[3] == pytest.approx(normal[3], rel=0.1)
    assert blurred[3] < 0.6 * normal[3] and blurred[0] == pytest.approx(normal[0], rel=0.02)


def test_each_fault_of_the_camera_or_light_is_named(summary):
    image = part(500)
    rng = np.random.default_rng(0)
    assert causes(image, summary) == []
    assert causes((image * 0.8).astype(np.uint8), summary) == []  # a little less light: the model copes, no warning
    assert causes(rng.integers(0, 4, image.shape).astype(np.uint8), summary) == ["dark"]  # a covered lens
    assert causes((image * 0.15).astype(np.uint8), summary) == ["dark"]
    assert causes(np.clip(image * 2.5, 0, 255).astype(np.uint8), summary) == ["overexposed"]
    assert causes(np.full_like(image, 128), summary) == ["blank"]  # nothing in view
    assert causes(cv2.GaussianBlur(image, (0, 0), 2.0), summary) == ["blurred"]
    assert set(WARNINGS) == {"dark", "overexposed", "blank", "blurred"}


def test_a_defect_is_not_blamed_on_the_camera():
    stripes = quality_summary(quality_stats(batch([good_image(i) for i in range(12)])))
    assert all(causes(defect_image(i)[0], stripes) == [] for i in range(6))
    assert all(causes(good_image(500 + i), stripes) == [] for i in range(6))
    # blur that flattens a fine texture is still blur ("blank" before); a constant frame is blank
    assert [causes(cv2.GaussianBlur(good_image(500), (0, 0), sigma), stripes) for sigma in (2.0, 3.0)] == [["blurred"]] * 2
    assert causes(np.full((96, 96, 3), 128, np.uint8), stripes) == ["blank"]


def test_a_range_lacking_a_statistic_judges_the_others():
    """A hand-edited manifest: every inspection raised KeyError before."""
    summary = {"brightness": [0.4, 0.6], "contrast": [0.1, 0.3]}
    stats = quality_stats(batch([np.zeros((96, 96, 3), np.uint8), part(1)]))
    assert quality_causes(stats[0], summary) == ["dark"] and quality_causes(stats[1], summary) == []


def test_a_model_without_a_range_warns_of_nothing():
    assert quality_causes(np.zeros(len(STATS)), None) == [] and quality_causes(np.zeros(len(STATS)), {}) == []


def test_the_report_counts_warned_test_images_by_label_and_cause(summary):
    images = [part(500), np.full((96, 96, 3), 2, np.uint8), part(501), cv2.GaussianBlur(part(502), (0, 0), 2.0)]
    report = quality_report([False, False, True, True], ["g0", "g1", "d0", "d1"], quality_stats(batch(images)), summary)
    assert report == {"good": 1, "defect": 1, "causes": {"dark": 1, "blurred": 1},
                      "examples": [{"file": "g1", "cause": "dark"}, {"file": "d1", "cause": "blurred"}]}


@pytest.mark.data
def test_on_real_tiles_no_test_image_is_blamed_and_a_spoiled_frame_is():
    """magnetic_tile at 256 px: the range of its 252 good training tiles, against its 434 real test tiles (none warned
    about, defects included) and spoiled copies of every 8th good test tile (no light; blurred at 3 px in the frame)."""
    from model.data import load_dataset
    from model.images import read_image

    data = load_dataset(shared_dataset("magnetic_tile"))

    def stats(paths, spoil=lambda x: x):
        return quality_stats(np.stack([preprocess(spoil(read_image(p)), (256, 256)) for p in paths]))

    summary = quality_summary(stats([s.path for s in data.train]))
    test = stats([s.path for s in data.test])
    assert quality_report([s.is_defect for s in data.test], [str(s.path) for s in data.test], test, summary)["causes"] == {}
    some = [s.path for s in data.test if not s.is_defect][::8]
    for spoil, cause in ((lambda x: (x * 0.05).astype(np.uint8), "dark"), (lambda x: cv2.GaussianBlur(x, (0, 0), 3.0), "blurred")):
        assert all(quality_causes(row, summary) == [cause] for row in stats(some, spoil)), cause
