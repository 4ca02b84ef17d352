"""Pixel-space defect synthesis: masks, determinism, staying on the part, the writer and its bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.errors import InspectorError
from model.synth import DEFECT_TYPES, REGION_TYPES, check_types, synthesize
from model.synth.writer import write_synthetic
from tests.cli import assert_one_line_error
from tests.synthetic import good_image


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_each_type_changes_exactly_its_mask(kind):
    rgb = good_image(3, 128)
    img, mask = synthesize(rgb, kind, np.random.default_rng(1), severity=0.8)
    assert img.shape == rgb.shape and img.dtype == np.uint8
    assert mask.dtype == bool and mask.sum() >= 6
    changed = np.abs(img.astype(int) - rgb.astype(int)).max(axis=2) > 2
    if kind in REGION_TYPES:  # the mask is the replaced region, a few of whose pixels may keep their value
        assert changed[mask].mean() > 0.8 and changed[~mask].mean() < 0.05
    else:
        assert changed[mask].all()  # the mask marks only pixels that really changed


def test_same_seed_same_defect_and_severity_scales_it():
    rgb = good_image(4, 128)
    a = synthesize(rgb, "stain", np.random.default_rng(7), 0.5)
    b = synthesize(rgb, "stain", np.random.default_rng(7), 0.5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    small = np.mean([synthesize(rgb, "pit", np.random.default_rng(s), 0.1)[1].sum() for s in range(8)])
    large = np.mean([synthesize(rgb, "pit", np.random.default_rng(s), 1.0)[1].sum() for s in range(8)])
    assert large > small


def test_defects_stay_on_the_part():
    rgb = np.zeros((128, 128, 3), np.uint8)  # dark background with a bright textured part in the middle
    rgb[32:96, 32:96] = good_image(5, 64)
    fg = np.zeros((128, 128), np.float32)
    fg[32:96, 32:96] = 1.0
    for kind in ("scratch", "crack", "pit", "stain", "texture", "transplant"):
        for seed in range(3):
            _, mask = synthesize(rgb, kind, np.random.default_rng(seed), 0.7, foreground=fg)
            assert not mask[fg == 0].any(), kind


def test_transplant_fills_its_region_with_the_donors_surface():
    rgb = good_image(1, 128)
    donor = np.repeat(np.random.default_rng(0).integers(60, 200, (128, 128, 1)).astype(np.uint8), 3, axis=2)  # grey, as rgb, unlike it
    for seed in range(4):
        img, mask = synthesize(rgb, "transplant", np.random.default_rng(seed), 0.8, donor=donor)
        inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        out, own = (a[..., 0][inner].astype(float) for a in (img, rgb))
        views = (donor, donor[:, ::-1], donor[::-1], donor[::-1, ::-1])  # the donor may be mirrored either way
        from_donor = max(np.corrcoef(out, v[..., 0][inner].astype(float))[0, 1] for v in views)
        assert inner.sum() > 100 and from_donor > 0.9 and abs(np.corrcoef(out, own)[0, 1]) < 0.3


def test_transplant_mask_is_the_whole_region():
    """Where the new surface happens to match the old value, the pixel is still inside the replaced region."""
    rgb, donor = (np.random.default_rng(s).integers(60, 200, (128, 128, 1)).repeat(3, axis=2).astype(np.uint8) for s in (1, 2))
    unchanged_inside = 0
    for seed in range(4):
        img, mask = synthesize(rgb, "transplant", np.random.default_rng(seed), 0.5, donor=donor)
        same = np.abs(img.astype(int) - rgb.astype(int)).max(axis=2) <= 2
        unchanged_inside += int((mask & same).sum())
        closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) > 0
        assert mask.sum() > 500 and (closed & ~mask).sum() < 0.01 * mask.sum()  # solid, not speckled
    assert unchanged_inside > 0


def test_side_band_runs_along_exactly_one_side():
    from model.synth.shapes import side_band

    sides = set()
    for seed in range(12):
        band = side_band((64, 96), np.random.default_rng(seed), 0.3) > 0.5
        edges = {"top": band[0].all(), "bottom": band[-1].all(), "left": band[:, 0].all(), "right": band[:, -1].all()}
        touching = [k for k, v in edges.items() if v]
        assert len(touching) == 1 and 0.1 < band.mean() < 0.5
        sides.add(touching[0])
    assert sides == {"top", "bottom", "left", "right"}


def _goods(tmp_path: Path, n: int) -> Path:
    """A folder of n textured 96 px good images."""
    good = tmp_path / "good"
    good.mkdir()
    for i in range(n):
        cv2.imwrite(str(good / f"{i}.png"), good_image(i, 96))
    return good


def test_writer_layout_labels_contact_sheet_and_determinism(tmp_path):
    good = _goods(tmp_path, 3)
    recs = write_synthetic(good, tmp_path / "a", 10, ["scratch", "pit"], seed=3)
    write_synthetic(good, tmp_path / "b", 10, ["scratch", "pit"], seed=3)
    labels = json.loads((tmp_path / "a" / "labels.json").read_text())
    assert len(labels["images"]) == 10 and {r["type"] for r in labels["images"]} == {"scratch", "pit"}
    for r in recs:
        img = cv2.imread(str(tmp_path / "a" / r.image))
        mask = cv2.imread(str(tmp_path / "a" / r.mask), cv2.IMREAD_GRAYSCALE)
        assert img.shape[:2] == mask.shape and (mask > 0).sum() == r.area_px > 0
        assert np.array_equal(img, cv2.imread(str(tmp_path / "b" / r.image)))
    assert cv2.imread(str(tmp_path / "a" / "contact_sheet.png")) is not None
    # the written folder is a dataset the rest of the inspector reads
    from model.data import load_dataset

    assert len(load_dataset(tmp_path / "a", require_train=False).test) == 10
    assert all(r["severity"] is not None for r in labels["images"])
    # a transplant takes another good image's surface, the same one for the same seed
    one = write_synthetic(good, tmp_path / "t1", 3, ["transplant"], seed=5)
    assert all(r.severity is None for r in one)  # drawn over its full range: 0.096 and 0.996 were recorded for one image
    write_synthetic(good, tmp_path / "t2", 3, ["transplant"], seed=5)
    for r in one:
        assert np.array_equal(cv2.imread(str(tmp_path / "t1" / r.image)), cv2.imread(str(tmp_path / "t2" / r.image))) and r.area_px > 0


def test_bad_inputs(tmp_path):
    with pytest.raises(InspectorError, match="unknown"):
        check_types(["dent"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InspectorError, match="no images"):
        write_synthetic(empty, tmp_path / "o", 5)
    (empty / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InspectorError, match="none of the images can be used"):
        write_synthetic(empty, tmp_path / "o", 5)
    with pytest.raises(InspectorError, match="--n 0"):
        write_synthetic(empty, tmp_path / "o", 0)
    with pytest.raises(InspectorError, match="good folder .*nowhere: no such folder; point at a folder of good parts"):
        write_synthetic(tmp_path / "nowhere", tmp_path / "o", 5)
    (empty / "train" / "good").mkdir(parents=True)
    with pytest.raises(InspectorError, match="holds the MVTec AD layout; give its good images, .*train/good"):
        write_synthetic(empty, tmp_path / "o", 5)



def test_out_in_the_good_folder_a_synth_output_or_labelled_defects_are_refused(tmp_path):
    """fit learnt generated defects written into the good folder as good parts (and synth drew on its contact sheet)."""
    good = _goods(tmp_path, 3)
    for out in (good, good / "synth"):
        with pytest.raises(InspectorError, match="lies in the good folder .*where fit would learn the generated defects as good parts"):
            write_synthetic(good, out, 2)
    r = subprocess.run([sys.executable, "-m", "inspector", "synth", str(good), "--out", str(good), "--force"], capture_output=True, text=True)
    assert_one_line_error(r.returncode, r.stderr, "lies in the good folder")  # not "not empty; pass --force", which then wrote there
    write_synthetic(good, tmp_path / "syn", 2)
    (tmp_path / "syn" / "a.png").write_bytes(cv2.imencode(".png", good_image(0, 64))[1].tobytes())
    with pytest.raises(InspectorError, match="is an `inspector synth` output"):
        write_synthetic(tmp_path / "syn", tmp_path / "o2", 2)
    (good / "0.xml").write_text("<annotation/>")  # a labelled defect, as fit --labels takes it
    with pytest.raises(InspectorError, match="has a defect label beside it"):
        write_synthetic(good, tmp_path / "o3", 2)


@pytest.mark.parametrize("extra, message", [(["--n", "0"], "--n 0"), (["--types", "dent"], "'dent' is unknown"),
                                           (["--severity", "2,3"], "--severity")])
def test_cli_bad_inputs_are_one_line(tmp_path, extra, message):
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "a.png"), good_image(0, 64))
    r = subprocess.run([sys.executable, "-m", "inspector", "synth", str(good), "--out", str(tmp_path / "o"), *extra],
                       capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unusable_good_images_are_skipped_and_the_used_one_is_named(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "a.png"), good_image(0, 96))
    (good / "b.png").write_bytes(b"not a png")
    cv2.imwrite(str(good / "c.png"), good_image(1, 96)[:8, :8])  # readable, too small to draw on: a cv2 traceback before
    recs = write_synthetic(good, tmp_path / "o", 12, ["scratch", "cutpaste"], seed=1)
    assert {Path(r.source).name for r in recs} == {"a.png"}  # before: the unreadable image was named as the source
    err = capsys.readouterr().err
    assert "b.png: cannot be decoded" in err and "c.png: 8x8 px is too small" in err


def test_force_replaces_an_earlier_output(tmp_path, capsys):
    from tests.cli import cli

    good = _goods(tmp_path, 2)
    out = tmp_path / "out"
    assert cli(capsys, "synth", good, "--out", out, "--n", "6", "--types", "scratch,stain")[0] == 0
    (out / "notes.txt").write_text("mine")
    assert cli(capsys, "synth", good, "--out", out, "--n", "2", "--types", "pit", "--force")[0] == 0
    labels = json.loads((out / "labels.json").read_text())
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "test").rglob("*.png"))
    assert on_disk == sorted(r["image"] for r in labels["images"]) == ["test/pit/00000.png", "test/pit/00001.png"]  # 6 more before
    assert not (out / "test" / "scratch").exists() and (out / "notes.txt").read_text() == "mine"  # what synth did not write stays


def test_an_empty_mask_is_warned_about(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "flat.png"), np.full((96, 96, 3), 128, np.uint8))  # cut-paste of a flat image changes nothing
    recs = write_synthetic(good, tmp_path / "o", 8, ["cutpaste"], seed=0)
    assert any(r.area_px == 0 for r in recs)
    assert "have an empty mask (no visible defect)" in capsys.readouterr().err  # silent before


def test_an_interrupted_run_leaves_no_half_dataset(tmp_path, monkeypatch):
    import model.synth.writer as writer

    good = _goods(tmp_path, 3)
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    real, calls = writer.synthesize, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(writer, "synthesize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic(good, out, 10, ["scratch"], seed=0)
    assert sorted(p.name for p in out.rglob("*")) == ["notes.txt"]  # 3 images and masks were left, no labels.json


def test_a_failed_force_run_leaves_no_stale_list(tmp_path, monkeypatch):
    import model.synth.writer as writer

    good = _goods(tmp_path, 2)
    out = tmp_path / "o"
    write_synthetic(good, out, 4, ["scratch"], seed=0)
    monkeypatch.setattr(writer, "synthesize", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        write_synthetic(good, out, 4, ["pit"], seed=0, replace=True)
    assert not (out / "labels.json").exists() and not (out / "contact_sheet.png").exists()  # it listed 4 images gone


def test_a_grey_part_gets_grey_defects_in_grey_files(tmp_path):
    """Chips' and frays' noise was drawn per channel: a grey tile came out RGB, coloured only where the defect was."""
    grey = np.repeat(good_image(3, 96)[..., :1], 3, axis=2)
    for kind in ("chip", "fray"):
        img, _ = synthesize(grey, kind, np.random.default_rng(2), 0.9)
        assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all(), kind
    colour = good_image(3, 96).copy()
    colour[..., 0] //= 2  # a tinted part keeps its colour
    img, _ = synthesize(colour, "chip", np.random.default_rng(2), 0.9)
    assert not (img[..., 0] == img[..., 2]).all()
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "g.png"), grey[..., 0])
    rec = write_synthetic(good, tmp_path / "o", 2, ["chip"])[0]
    assert cv2.imread(str(tmp_path / "o" / rec.image), cv2.IMREAD_UNCHANGED).ndim == 2


def test_a_transplant_from_a_single_good_image_is_warned_about(tmp_path, capsys):
    write_synthetic(_goods(tmp_path, 1), tmp_path / "o", 1, ["transplant"])
    assert "has one image: a transplant takes its surface from the part itself" in capsys.readouterr().err
