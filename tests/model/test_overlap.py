"""Finding test images that are other captures of training images (model/overlap.py)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from model import overlap
from model.overlap import TWIN_RANK, describe, part_groups, twins
from tests.synthetic import defect_image, good_image


def _levels(n: int, g: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(n, 4, 8, 8, generator=g), torch.randn(n, 6, 8, 8, generator=g) * 5.0]


def _near(levels: list[torch.Tensor], i: int, g: torch.Generator) -> list[torch.Tensor]:
    return [t[i : i + 1] + 0.05 * t[i : i + 1].std() * torch.randn(t[i : i + 1].shape, generator=g) for t in levels]


def test_a_second_capture_is_a_twin_and_a_new_part_is_not():
    g = torch.Generator().manual_seed(0)
    train = _levels(8, g)
    test = [torch.cat(parts) for parts in zip(_near(train, 2, g), _levels(1, g), _near(train, 5, g))]
    assert twins(train, test).tolist() == [2, -1, 5]


def test_up_to_rank_minus_one_captures_of_a_part_may_be_in_training():
    g = torch.Generator().manual_seed(1)
    train, part = _levels(10, g), _levels(1, g)

    def capture_into(i: int) -> None:
        for t, c in zip(train, _near(part, 0, g)):
            t[i] = c[0]

    for i in range(TWIN_RANK - 1):
        capture_into(i)
    test = _near(part, 0, g)
    assert twins(train, test)[0] in range(TWIN_RANK - 1)
    capture_into(TWIN_RANK - 1)  # one capture more than the rule allows: the part no longer stands out
    assert twins(train, test)[0] == -1


def test_too_few_training_images_find_nothing():
    g = torch.Generator().manual_seed(2)
    train = _levels(TWIN_RANK - 1, g)
    assert twins(train, _near(train, 0, g)).tolist() == [-1]


def test_a_relit_copy_of_a_training_image_is_found_through_the_backbone(tmp_path):
    """The real backbone on files: another capture (other gain, offset and noise) of training image 3 is its
    twin; a new good part and a defect image are not."""
    for i in range(8):
        cv2.imwrite(str(tmp_path / f"train{i}.png"), good_image(i))
    rng = np.random.default_rng(0)
    relit = np.clip(good_image(3).astype(np.float32) * 0.8 + 20 + rng.normal(0, 3, (96, 96, 1)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "relit.png"), relit)
    cv2.imwrite(str(tmp_path / "new.png"), good_image(900))
    cv2.imwrite(str(tmp_path / "defect.png"), defect_image(0)[0])
    train = describe([tmp_path / f"train{i}.png" for i in range(8)])
    found = twins(train, describe([tmp_path / n for n in ("relit.png", "new.png", "defect.png")]))
    assert found.tolist() == [3, -1, -1]


def test_captures_of_one_part_share_a_part_id_and_other_parts_stand_alone():
    g = torch.Generator().manual_seed(3)
    base = _levels(9, g)
    # images 9-11 are further captures of image 0 (up to TWIN_RANK - 1 others of it), image 12 of image 4
    extra = [_near(base, 0, g), _near(base, 0, g), _near(base, 0, g), _near(base, 4, g)]
    images = [torch.cat([t, *(e[lvl] for e in extra)]) for lvl, t in enumerate(base)]
    parts = part_groups(images)
    assert len({parts[i] for i in (0, 9, 10, 11)}) == 1 and parts[4] == parts[12]
    others = [parts[i] for i in (1, 2, 3, 5, 6, 7, 8)] + [parts[0], parts[4]]
    assert len(set(others)) == len(others)


def test_distances_in_row_blocks_are_the_whole_matrix(monkeypatch):
    """The part check held [cells, N, N] at once: 12 GB for 5,000 training images."""
    g = torch.Generator().manual_seed(0)
    train = [torch.randn(9, 3, 8, 8, generator=g), torch.randn(9, 5, 8, 8, generator=g)]
    other = [torch.randn(7, 3, 8, 8, generator=g), torch.randn(7, 5, 8, 8, generator=g)]
    whole = overlap._distances(train, other)
    monkeypatch.setattr(overlap, "BLOCK_FLOATS", 64 * 9 * 2)  # two rows of `other` at a time
    assert torch.allclose(overlap._distances(train, other), whole, rtol=0, atol=1e-6) and whole.shape == (7, 9)
    assert overlap._distances(train, [t[:0] for t in other]).shape == (0, 9)


def test_overlap_report_leaves_twins_out_of_image_and_pixel_auroc():
    from pathlib import Path

    from model.data import Sample
    from model.evaluate import Scored, overlap_report

    test = [
        Sample(Path("g0.png")),
        Sample(Path("g1.png")),
        Sample(Path("d0.png"), "blob", Path("d0_mask.png")),
        Sample(Path("d1.png"), "blob"),
    ]  # d1 has no mask: its pixels are unknown
    maps = np.array([[[0.0, 0.0]], [[3.0, 5.0]], [[4.0, 2.0]], [[9.0, 9.0]]], dtype=np.float32)  # [N, 1, 2]
    masks = np.array([[[0, 0]], [[0, 0]], [[1, 0]], [[0, 0]]], dtype=bool)
    scored = Scored(np.array([0.0, 3.0, 2.0, 9.0]), maps, masks, [1.0], np.array([True, True, True, False]))
    report = overlap_report([Sample(Path("t0.png"))], test, scored, np.array([0, -1, -1, -1]))
    # without g0 (a twin): image scores good 3 against defects 2 and 9 -> 0.5; known pixels normal {3, 5, 2} against
    # defect {4} -> 2 of 3 pairs; with g0 both would read higher (0.75, 0.8)
    assert (report["good_twins"], report["defect_twins"]) == (1, 0)
    assert report["image_auroc_without_twins"] == 0.5 and report["pixel_auroc_without_twins"] == round(2 / 3, 4)
    both_good = overlap_report([Sample(Path("t0.png"))], test, scored, np.array([0, 0, -1, -1]))
    # no good image left: no image AUROC; d0's own normal pixel {2} still stands against its defect pixel {4}
    assert both_good["image_auroc_without_twins"] is None and both_good["pixel_auroc_without_twins"] == 1.0
    no_twins = overlap_report([Sample(Path("t0.png"))], test, scored, np.full(4, -1))
    assert no_twins["image_auroc_without_twins"] is None and no_twins["pixel_auroc_without_twins"] is None
