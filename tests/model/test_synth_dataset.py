"""Defect generation as a dataset: masks that are exactly the changed pixels, labels.json that says what was
written, inputs of every kind, the contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.images import read_image
from model.synth import CHANGED, DEFECT_TYPES, REGION_TYPES, draw, synthesize
from model.synth.writer import write_synthetic
from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image


def _colour(seed: int, w: int, h: int) -> np.ndarray:
    """A tinted, non-square good image."""
    img = cv2.resize(good_image(seed, 128), (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
    img[..., 0] = img[..., 0] * 3 // 4
    return img.astype(np.uint8)


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_no_pixel_outside_the_mask_changes(kind):
    """A scratch's anti-aliased rim, a stain's blur, a seam changed pixels by up to 40 grey levels outside the mask."""
    for rgb in (good_image(3, 128), _colour(4, 150, 70)):
        donor = good_image(7, 96) if kind == "transplant" else None
        for seed in range(3):
            img, mask = synthesize(rgb, kind, np.random.default_rng(seed), 0.8, donor=donor)
            diff = np.abs(img.astype(int) - rgb.astype(int)).max(axis=2)
            assert mask.sum() >= 6 and not diff[~mask].any(), (kind, seed, int(diff[~mask].max()))
            if kind not in REGION_TYPES:
                assert (diff[mask] > CHANGED).all(), (kind, seed)


def test_a_region_that_changes_nothing_is_drawn_again():
    """A transplant on a flat part whose re-lit donor matched it was written with a 1861 px mask and no change."""
    flat = np.full((64, 64, 3), 128, np.uint8)
    for seed in range(8):
        img, mask = synthesize(flat, "transplant", np.random.default_rng(seed), 0.5, donor=flat)
        changed = np.abs(img.astype(int) - flat.astype(int)).max(axis=2) > CHANGED
        assert mask.any() and changed[mask].mean() >= 0.5, seed


def test_fit_keeps_the_core_masks_it_was_tuned_on():
    """`fit --synth` learns from the defects' cores (what its accuracy was measured with), not the exact masks."""
    from model.defect_learning import _synthesize_set

    rgbs = np.stack([good_image(s, 96) for s in range(3)])
    imgs, masks, _ = _synthesize_set(rgbs, 6, ("scratch", "stain"), 0)
    rims = 0
    for i, (img, mask) in enumerate(zip(imgs, masks)):
        rng, pick, sev = draw(0, i, 3)
        core = synthesize(rgbs[pick], ("scratch", "stain")[i % 2], rng, sev, exact=False)
        assert np.array_equal(img, core[0]) and np.array_equal(mask, core[1])
        rims += int((np.abs(img.astype(int) - rgbs[pick].astype(int)).max(axis=2)[~mask] > CHANGED).sum())
    assert rims > 0


def _folder(tmp_path: Path) -> Path:
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "a.png"), _colour(1, 120, 64)[..., ::-1])
    cv2.imwrite(str(good / "b.png"), good_image(2, 80)[..., 0])  # grey, another size
    cv2.imwrite(str(good / "c.png"), _colour(3, 64, 100)[..., ::-1])
    return good


def test_written_images_differ_from_their_source_only_under_their_mask(tmp_path, monkeypatch):
    good = _folder(tmp_path)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    write_synthetic(Path("good"), Path("out"), 18, seed=2)
    monkeypatch.chdir(Path(__file__).parent)
    labels = json.loads((out / "labels.json").read_text())
    assert labels["severity"] == [0.3, 0.9] and str(CHANGED) in labels["mask_rule"]
    assert Path(labels["good_dir"]) == good.resolve()  # was "good": relative to where synth ran, not to labels.json
    for r in labels["images"]:
        src, img = read_image(r["source"]), read_image(out / r["image"])
        mask = cv2.imread(str(out / r["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == img.shape[:2] == src.shape[:2] and set(np.unique(mask)) <= {0, 255}
        diff = np.abs(img.astype(int) - src.astype(int)).max(axis=2)
        assert not diff[mask == 0].any(), r
        assert (mask > 0).sum() == r["area_px"] > 0
        if r["type"] == "transplant":  # where its region came from was not recorded
            assert r["donor"] and Path(r["donor"]).parent == good.resolve() and r["donor"] != r["source"]
        else:
            assert r["donor"] is None


def test_sixteen_bit_good_images_are_said_to_be_written_in_eight_bits(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "a.png"), good_image(1, 64)[..., 0].astype(np.uint16) * 200 + 1000)
    write_synthetic(good, tmp_path / "o", 2, ["scratch"])
    assert "a.png have 16-bit or float pixels: the defect images are written as 8-bit PNGs" in capsys.readouterr().err
    cv2.imwrite(str(good / "a.png"), good_image(1, 64))
    write_synthetic(good, tmp_path / "o2", 2, ["scratch"])
    assert "16-bit" not in capsys.readouterr().err


def test_the_contact_sheet_keeps_thin_masks_and_the_parts_shape(tmp_path):
    from model.synth.writer import SynthRecord, contact_sheet

    (tmp_path / "test").mkdir()
    img = np.full((160, 1600, 3), 200, np.uint8)  # a wide line-scan strip
    mask = np.zeros((160, 1600), np.uint8)
    mask[:, 801] = 255  # a one-pixel scratch across it: nearest sampling missed it, no outline was drawn
    cv2.imwrite(str(tmp_path / "test" / "i.png"), img)
    cv2.imwrite(str(tmp_path / "test" / "m.png"), mask)
    rec = SynthRecord("test/i.png", "test/m.png", "scratch", "x", 0.5, 160, [801, 0, 1, 160])
    contact_sheet(tmp_path, [rec], tmp_path / "sheet.png")
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    outlined = sheet[:, 110 + 160 : 110 + 320]
    red = (outlined[..., 2] > 200) & (outlined[..., 0] < 50)
    assert red.sum() >= 10
    plain = sheet[:, 110:270]
    assert (plain[0] == 255).all() and (plain[80] == 200).all()  # letterboxed on white: it was squeezed into a square


def test_the_good_image_cache_is_bounded_in_bytes(tmp_path):
    """65 decoded frames were kept whatever their size: 200 MB line-scan frames would need 13 GB."""
    from model.synth.writer import _GoodCache

    good = _folder(tmp_path)
    paths = sorted(good.iterdir())
    cache = _GoodCache(limit=2 * 120 * 64 * 3)
    for p in paths * 2:
        used, rgb = cache.load(p, paths)
        assert used == p and cache.nbytes <= cache.limit
    assert np.array_equal(cache.load(paths[0], paths)[1], read_image(paths[0]))


def test_a_bad_request_is_named_before_the_out_folder(tmp_path, capsys):
    """A misspelt type in front of a non-empty --out read "not empty; pass --force", and then the type error."""
    good = _folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("")
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--types", "dent")
    assert_one_line_error(rc, err, "'dent' is unknown")
    rc, _, err = cli(capsys, "synth", tmp_path / "nowhere", "--out", out)
    assert_one_line_error(rc, err, "no such folder")
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--severity", "0.9,0.3")
    assert_one_line_error(rc, err, "--severity")
